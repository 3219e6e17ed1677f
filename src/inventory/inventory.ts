/**
 * Loading an inventory: read with positions, validate, resolve paths relative to the file.
 * Nothing connects before this has succeeded.
 */
import { randomBytes } from "node:crypto";
import { accessSync, constants, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { basename, dirname, extname, join, resolve } from "node:path";
import { FileError, PgprovError, type SourceProblem } from "../common/errors.js";
import type { SshSettings } from "../transport/target.js";
import { YamlSource, type YamlPath } from "../yaml/source.js";
import { inventorySchema } from "./schema.js";
import { Secret } from "../common/secret.js";
import { readSecret, secretSource } from "./secret.js";

export type { SshSettings };

export type Role = "primary" | "standby";

export interface Host {
  name: string;
  address: string;
  role: Role;
  /** This host's template variables; they override the inventory's `vars`. */
  vars: Record<string, unknown>;
}

export interface PostgresSettings {
  /** Undefined: each host's Debian release decides (see engine/variables.ts). */
  version?: number;
  port: number;
  /** The user's extra server settings, names already checked. */
  settings: Record<string, string | number | boolean>;
  /** Networks allowed to connect with scram-sha-256. */
  clients: string[];
  /** Debian packages installed beside the server (extensions outside contrib). */
  packages: string[];
  archiveDirectory?: string;
}

export interface ReplicationSettings {
  user: string;
  /** Undefined until ensureReplicationPassword() has generated or read the stored one. */
  password?: Secret;
  slots: boolean;
}

/** A role of the inventory's `roles`, in the form the pg_roles module takes (password revealed only there). */
export interface RoleSettings {
  name: string;
  password?: Secret;
  state: "present" | "absent";
  login: boolean;
  superuser: boolean;
  createdb: boolean;
  createrole: boolean;
  connection_limit: number;
  member_of: string[];
  settings: Record<string, string | number | boolean>;
}

export interface DatabaseSettings {
  name: string;
  owner: string;
  encoding?: string;
  locale?: string;
  template?: string;
  extensions: string[];
  settings: Record<string, string | number | boolean>;
}

/** One line of pg_hba.conf the inventory asks for, after pgprov's own. */
export interface AccessRule {
  database: string;
  user: string;
  /** A network, or one host (IP address or DNS name). */
  from: string;
  method: "scram-sha-256" | "cert" | "reject";
}

export interface PoolerSettings {
  /** Of pgbouncer's own role; undefined until ensurePoolerPassword(). */
  password?: Secret;
  poolMode: "transaction" | "session";
  defaultPoolSize: number;
  maxClientConn: number;
  port: number;
}

export interface Inventory {
  file: string;
  /** Directory of the inventory file: relative paths and pgprov's state files live here. */
  dir: string;
  ssh: SshSettings;
  aptProxy?: string;
  /** Template variables for every host. A `{ secret: { env | file } }` value is a Secret here. */
  vars: Record<string, unknown>;
  /** Every secret the inventory holds: masked in all output. */
  secrets: Secret[];
  postgresql: PostgresSettings;
  replication: ReplicationSettings;
  /** In file order, like databases and access rules. */
  roles: RoleSettings[];
  databases: DatabaseSettings[];
  access: AccessRule[];
  /** pgbouncer on every host, in front of its server. */
  pooler?: PoolerSettings;
  /** In file order. */
  hosts: Host[];
  primary: Host;
  standbys: Host[];
}

export function loadInventory(file: string): Inventory {
  const source = YamlSource.read(file);
  const parsed = source.validate(inventorySchema);
  const dir = dirname(resolve(file));

  const privateKey = parsed.ssh.private_key ? resolve(dir, parsed.ssh.private_key) : undefined;
  if (privateKey) {
    try {
      accessSync(privateKey, constants.R_OK);
    } catch (e) {
      throw new FileError([
        source.problem(["ssh", "private_key"], `ssh.private_key: cannot read ${privateKey} (${(e as NodeJS.ErrnoException).code})`),
      ]);
    }
  }

  const secrets: Secret[] = [];
  const problems: SourceProblem[] = [];
  const withSecrets = (value: Record<string, unknown>, path: YamlPath) =>
    resolveSecrets(value, path, { source, dir, secrets, problems }) as Record<string, unknown>;
  const vars = withSecrets(parsed.vars, ["vars"]);
  const hosts: Host[] = Object.entries(parsed.hosts).map(([name, h]) => ({
    name,
    address: h.address,
    role: h.role,
    vars: withSecrets(h.vars, ["hosts", name, "vars"]),
  }));
  if (parsed.apt.proxy) {
    // A proxy's password is masked in all output like any other secret.
    const proxyPassword = new URL(parsed.apt.proxy).password;
    if (proxyPassword) secrets.push(new Secret(proxyPassword, "apt.proxy"), new Secret(percentDecoded(proxyPassword), "apt.proxy"));
  }
  let password: Secret | undefined;
  if (parsed.replication.password) {
    try {
      password = readSecret(parsed.replication.password, (p) => resolve(dir, p));
      secrets.push(password);
    } catch (e) {
      problems.push(source.problem(["replication", "password"], `replication.password: ${(e as Error).message}`));
    }
  }
  const roles: RoleSettings[] = Object.entries(parsed.roles).map(([name, r]) => {
    const { password: from, ...attributes } = r;
    let secret: Secret | undefined;
    if (from) {
      const at = ["roles", name, "password"];
      try {
        secret = readSecret(from, (p) => resolve(dir, p));
        secrets.push(secret);
        // As the module takes it; said here, with the position, and never with the value.
        if (secret.reveal().length < 8) problems.push(source.problem(at, `roles.${name}.password: a password of at least 8 characters`));
      } catch (e) {
        problems.push(source.problem(at, `roles.${name}.password: ${(e as Error).message}`));
      }
    }
    return { name, ...attributes, ...(secret ? { password: secret } : {}) };
  });
  if (problems.length) throw new FileError(problems);
  return {
    file: resolve(file),
    dir,
    ssh: {
      user: parsed.ssh.user,
      port: parsed.ssh.port,
      privateKey,
      knownHosts: parsed.ssh.known_hosts ? resolve(dir, parsed.ssh.known_hosts) : resolve(homedir(), ".ssh/known_hosts"),
      connectTimeoutMs: parsed.ssh.connect_timeout * 1000,
    },
    ...(parsed.apt.proxy ? { aptProxy: parsed.apt.proxy } : {}),
    vars,
    secrets,
    postgresql: {
      ...(parsed.postgresql.version !== undefined ? { version: parsed.postgresql.version } : {}),
      port: parsed.postgresql.port,
      settings: parsed.postgresql.settings,
      clients: parsed.postgresql.clients,
      packages: parsed.postgresql.packages,
      ...(parsed.postgresql.archive_directory ? { archiveDirectory: parsed.postgresql.archive_directory } : {}),
    },
    replication: { user: parsed.replication.user, ...(password ? { password } : {}), slots: parsed.replication.slots },
    roles,
    databases: Object.entries(parsed.databases).map(([name, { state: _state, ...d }]) => ({ name, ...d })),
    access: parsed.access.map((a) => ({ ...a, method: a.method as AccessRule["method"] })),
    ...(parsed.pooler
      ? {
          pooler: {
            poolMode: parsed.pooler.pool_mode,
            defaultPoolSize: parsed.pooler.default_pool_size,
            maxClientConn: parsed.pooler.max_client_conn,
            port: parsed.pooler.port,
          },
        }
      : {}),
    hosts,
    primary: hosts.find((h) => h.role === "primary")!,
    standbys: hosts.filter((h) => h.role === "standby"),
  };
}

interface SecretScope {
  source: YamlSource;
  dir: string;
  secrets: Secret[];
  problems: SourceProblem[];
}

/** Replaces every `{ secret: { env: NAME } }` or `{ secret: { file: PATH } }` with its Secret. */
function resolveSecrets(value: unknown, path: YamlPath, scope: SecretScope): unknown {
  if (Array.isArray(value)) return value.map((v, i) => resolveSecrets(v, [...path, i], scope));
  if (!value || typeof value !== "object") return value;
  const entries = Object.entries(value);
  if (entries.length === 1 && entries[0]![0] === "secret") {
    const parsed = secretSource.safeParse(entries[0]![1]);
    if (!parsed.success) {
      scope.problems.push(...scope.source.describeIssues(secretSource, parsed.error.issues, [...path, "secret"]));
      return undefined;
    }
    try {
      const secret = readSecret(parsed.data, (p) => resolve(scope.dir, p));
      scope.secrets.push(secret);
      return secret;
    } catch (e) {
      scope.problems.push(scope.source.problem([...path, "secret"], `${path.join(".")}: ${(e as Error).message}`));
      return undefined;
    }
  }
  return Object.fromEntries(entries.map(([k, v]) => [k, resolveSecrets(v, [...path, k], scope)]));
}

/** Where pgprov keeps what it must remember about this inventory: next to it, in .pgprov/. */
export function stateDirectory(inventory: Pick<Inventory, "file" | "dir">): string {
  return join(inventory.dir, ".pgprov");
}

export function stateFile(inventory: Pick<Inventory, "file" | "dir">, suffix: string): string {
  return join(stateDirectory(inventory), `${basename(inventory.file, extname(inventory.file))}.${suffix}`);
}

/**
 * The replication password when the inventory names none: generated once (256 random bits),
 * stored next to the inventory with mode 0600, and the same on every later run.
 */
export function ensureReplicationPassword(inventory: Inventory): Secret {
  if (inventory.replication.password) return inventory.replication.password;
  inventory.replication.password = generatedSecret(inventory, "replication", "the stored replication password");
  return inventory.replication.password;
}

/**
 * The password of pgbouncer's own role (the one that runs auth_query): never the inventory's to
 * choose, generated once and kept like a generated replication password.
 */
export function ensurePoolerPassword(inventory: Inventory): Secret | undefined {
  if (!inventory.pooler) return undefined;
  inventory.pooler.password ??= generatedSecret(inventory, "pgbouncer", "the stored pgbouncer password");
  return inventory.pooler.password;
}

/** `.pgprov/NAME.<kind>.secret`: made once (mode 0600), read on every run, masked in all output. */
function generatedSecret(inventory: Inventory, kind: string, what: string): Secret {
  const path = stateFile(inventory, `${kind}.secret`);
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // base64url: no character that needs escaping in a passfile, a conninfo, SQL or pgbouncer's auth_file.
    writeFileSync(path, `${randomBytes(32).toString("base64url")}\n`, { mode: 0o600, flag: "wx" });
  }
  let secret: Secret;
  try {
    secret = readSecret({ file: path }, (p) => p);
  } catch (e) {
    throw new PgprovError(`${what}: ${(e as Error).message}`);
  }
  inventory.secrets.push(secret);
  return secret;
}

/** A URL's percent-encoded part decoded, leaving a stray '%' as it is (URLs allow it). */
function percentDecoded(text: string): string {
  return text.replace(/(%[0-9A-Fa-f]{2})+/g, (escaped) => {
    try {
      return decodeURIComponent(escaped);
    } catch {
      return escaped; // bytes that are not UTF-8
    }
  });
}
