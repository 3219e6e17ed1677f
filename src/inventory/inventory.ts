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
import { type InventoryFile, inventorySchema } from "./schema.js";
import { Secret } from "../common/secret.js";
import { readSecret, secretSource } from "./secret.js";
import { type CaFilesMaybeKey, type CertificateAuthority, checkGivenCertificate, createCa, ensureCa, loadCa, serverNames } from "../tls/index.js";

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
  archiveDirectory?: string;
}

export interface ReplicationSettings {
  user: string;
  /** Undefined until ensureReplicationPassword() has generated or read the stored one. */
  password?: Secret;
  slots: boolean;
}

export interface TlsSettings {
  enabled: boolean;
  /** The CA's files: the inventory's tls.ca, or pgprov's own in .pgprov/ (see ownCaFiles). */
  caFiles: CaFilesMaybeKey;
  /** Loaded with the inventory when its files exist; otherwise made by ensureCertificateAuthority. */
  authority?: CertificateAuthority;
  /** Certificates issued elsewhere, checked when the inventory was loaded: by host. */
  given: Record<string, { certPem: string; keyPem: Secret }>;
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
  tls: TlsSettings;
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
  const tls = loadTls(parsed.tls, { source, file, dir, hosts, secrets, problems });
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
      ...(parsed.postgresql.archive_directory ? { archiveDirectory: parsed.postgresql.archive_directory } : {}),
    },
    replication: { user: parsed.replication.user, ...(password ? { password } : {}), slots: parsed.replication.slots },
    tls,
    hosts,
    primary: hosts.find((h) => h.role === "primary")!,
    standbys: hosts.filter((h) => h.role === "standby"),
  };
}

/**
 * The tls section, checked before anything connects: the CA the inventory names (or pgprov's own,
 * when it exists already) loaded, and each certificate issued elsewhere checked against it and its
 * host. A problem names the inventory's line, the file and the host.
 */
function loadTls(
  parsed: InventoryFile["tls"],
  scope: { source: YamlSource; file: string; dir: string; hosts: Host[]; secrets: Secret[]; problems: SourceProblem[] },
): TlsSettings {
  const { source, dir, problems } = scope;
  const caFiles = parsed.ca
    ? { cert: resolve(dir, parsed.ca.cert), ...(parsed.ca.key ? { key: resolve(dir, parsed.ca.key) } : {}) }
    : ownCaFiles({ file: resolve(scope.file), dir });
  const tls: TlsSettings = { enabled: parsed.enabled, caFiles, given: {} };
  if (!parsed.enabled) return tls;
  try {
    // pgprov's own is loaded once it exists; one of its files without the other is an error (loadCa names the missing one).
    if (parsed.ca || existsSync(caFiles.cert) || existsSync(caFiles.key!)) tls.authority = loadCa(caFiles);
  } catch (e) {
    problems.push(source.problem(parsed.ca ? ["tls", "ca", "cert"] : ["tls"], `tls.ca: ${(e as Error).message}`));
    return tls;
  }
  for (const [name, files] of Object.entries(parsed.certificates)) {
    const host = scope.hosts.find((h) => h.name === name);
    if (!host || !tls.authority) continue;
    try {
      const given = checkGivenCertificate(
        { cert: resolve(dir, files.cert), key: resolve(dir, files.key) },
        { host: name, ca: tls.authority, expectedNames: serverNames(host.name, host.address) },
      );
      const keyPem = new Secret(given.keyPem, `tls.certificates.${name}.key`);
      scope.secrets.push(keyPem);
      tls.given[name] = { certPem: given.certPem, keyPem };
    } catch (e) {
      problems.push(source.problem(["tls", "certificates", name], `tls.certificates.${name}: ${(e as Error).message}`));
    }
  }
  return tls;
}

/** pgprov's own CA for an inventory: in .pgprov/ next to it (the directory 0700, the key 0600). */
export function ownCaFiles(inventory: Pick<Inventory, "file" | "dir">): { cert: string; key: string } {
  return { cert: stateFile(inventory, "ca.crt"), key: stateFile(inventory, "ca.key") };
}

/**
 * The cluster's CA for a run: the one loaded with the inventory, or pgprov's own made now (and
 * saved when `save`; plan makes one in memory only, so it changes nothing and still shows every
 * certificate to issue). Undefined when TLS is off.
 */
export async function ensureCertificateAuthority(inventory: Inventory, { save }: { save: boolean }): Promise<CertificateAuthority | undefined> {
  const tls = inventory.tls;
  if (!tls.enabled) return undefined;
  if (tls.authority) return tls.authority;
  const options = { commonName: `pgprov CA of ${basename(inventory.file, extname(inventory.file))}`.slice(0, 64) };
  tls.authority = save ? (await ensureCa(ownCaFiles(inventory), options)).ca : await createCa(options);
  return tls.authority;
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
  const path = stateFile(inventory, "replication.secret");
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // base64url: no character that needs escaping in a passfile, a conninfo or SQL.
    writeFileSync(path, `${randomBytes(32).toString("base64url")}\n`, { mode: 0o600, flag: "wx" });
  }
  let secret: Secret;
  try {
    secret = readSecret({ file: path }, (p) => p);
  } catch (e) {
    throw new PgprovError(`the stored replication password: ${(e as Error).message}`);
  }
  inventory.replication.password = secret;
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
