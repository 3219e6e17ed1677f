/**
 * Loading an inventory: read with positions, validate, resolve paths relative to the file.
 * Nothing connects before this has succeeded.
 */
import { randomBytes } from "node:crypto";
import { accessSync, constants, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, extname, join, resolve } from "node:path";
import { DAY_MS, endText } from "../common/days.js";
import { FileError, PgprovError, type SourceProblem } from "../common/errors.js";
import { type Connection, type InventoryHost, type InventorySsh, ProxyJumpCycle, resolveConnection } from "../sshconfig/connection.js";
import { homePath, localContext, otherHomeRefused } from "../sshconfig/expand.js";
import { loadDefaultSshConfig, loadSshConfigFile, type SshConfig } from "../sshconfig/load.js";
import { type Passphrase, terminalAsk, type Unlocking } from "../transport/identities.js";
import { YamlSource, type YamlPath } from "../yaml/source.js";
import { backupSchema, type CheckThresholds, inventorySchema, type InventoryFile } from "./schema.js";
import { Secret } from "../common/secret.js";
import { readSecret, secretSource } from "./secret.js";
import type { SynchronousSettings } from "./topology.js";
import { type CaFilesMaybeKey, type CertificateAuthority, checkGivenCertificate, createCa, ensureCa, loadCa, renewCa, replaceCaCertificate, serverNames } from "../tls/index.js";

/** How pgprov unlocks keys, and what it read but does not honour (printed as warnings). */
export interface SshAccess extends Unlocking {
  warnings: SourceProblem[];
}

/** A user name as pg_ident.conf gets it (`ssh_user`): whatever its origin, nothing else. */
const UNIX_USER = /^[a-z_][a-z0-9_-]*\$?$/;

export type Role = "primary" | "standby";

export interface Host {
  name: string;
  address: string;
  role: Role;
  /** How pgprov reaches it: user, port, keys, jump hosts, each with where it came from. */
  connection: Connection;
  /** The host it streams from while a standby; the primary when undefined (see topology.ts). */
  upstream?: string;
  /** recovery_min_apply_delay of a delayed standby ("1h"). */
  applyDelay?: string;
  /** Other DNS names it is reached by: in its certificate's SAN (issue 10). */
  dnsNames: string[];
  /** This host's template variables; they override the inventory's `vars`. */
  vars: Record<string, unknown>;
}

/** The pgBackRest repository host (role: backup): no PostgreSQL server runs on it. */
export type BackupHost = Omit<Host, "role" | "upstream" | "applyDelay"> & { role: "backup" };

/** Backups with pgBackRest (issue 11): on a repository host, or on the primary's own path. */
export interface BackupSettings {
  stanza: string;
  /** Undefined: the repository is on a path of the primary (it does not survive that host's loss). */
  host?: BackupHost;
  repositoryPath: string;
  retention: { full: number; diff: number };
  /** systemd OnCalendar expressions, by backup type. */
  schedule: { full: string; diff?: string; incr?: string };
  /** archive-push-queue-max, in bytes: the spool's bound while the repository is out of reach. */
  archiveQueueMax: number;
  /** archive_timeout, in seconds (0: off). */
  archiveTimeout: number;
  /** TimeoutStartSec of the backup services, in hours. */
  timeoutHours: number;
  cipher: "none" | "aes-256-cbc";
  /** With a cipher: the repository's passphrase (backup.cipher_passphrase), masked in all output. */
  cipherPassphrase?: Secret;
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
  /** max_slot_wal_keep_size in bytes; -1: no limit. */
  maxSlotWalKeepSize: number;
  /** synchronous_standby_names; undefined: asynchronous. */
  synchronous?: SynchronousSettings;
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
  ssh: SshAccess;
  aptProxy?: string;
  /** Template variables for every host. A `{ secret: { env | file } }` value is a Secret here. */
  vars: Record<string, unknown>;
  /** Every secret the inventory holds: masked in all output. */
  secrets: Secret[];
  postgresql: PostgresSettings;
  replication: ReplicationSettings;
  /** `pgprov check`'s thresholds, defaults filled in. */
  checks: CheckThresholds;
  tls: TlsSettings;
  /** In file order, like databases and access rules. */
  roles: RoleSettings[];
  databases: DatabaseSettings[];
  access: AccessRule[];
  /** pgbouncer on every host, in front of its server. */
  pooler?: PoolerSettings;
  /** Backups and PITR with pgBackRest: with a `backup` section or a backup host. */
  backup?: BackupSettings;
  /** The database hosts, in file order (the backup host is backup.host). */
  hosts: Host[];
  primary: Host;
  standbys: Host[];
}

export function loadInventory(file: string): Inventory {
  const source = YamlSource.read(file);
  // Every problem in one run: the schema's, and those of the key files and the secrets wherever
  // the file names them well enough to look, even when the schema found others.
  const checked = source.check(inventorySchema);
  const problems: SourceProblem[] = "problems" in checked ? [...checked.problems] : [];
  const parsed = "data" in checked ? checked.data : undefined;
  const raw = objectAt(checked.raw, []);
  const dir = dirname(resolve(file));

  const secrets: Secret[] = [];
  const scope: SecretScope = { source, dir, secrets, problems, others: [] };
  // With the schema refused, the inventory-wide key as far as the file names it (sshAccess checks them all otherwise).
  const rawKey = objectAt(raw, ["ssh"])?.private_key;
  if (!parsed && typeof rawKey === "string" && rawKey) readableKeyFile(rawKey, ["ssh"], scope);
  const withSecrets = (value: unknown, path: YamlPath) => (resolveSecrets(value ?? {}, path, scope) ?? {}) as Record<string, unknown>;
  const vars = withSecrets(parsed ? parsed.vars : raw?.vars, ["vars"]);
  const hostVars = Object.fromEntries(
    Object.entries(parsed ? parsed.hosts : (objectAt(raw, ["hosts"]) ?? {})).map(([name, h]) => [name, withSecrets(objectAt(h, [])?.vars, ["hosts", name, "vars"])]),
  );
  let password: Secret | undefined;
  const passwordSource = secretSource.safeParse(parsed ? parsed.replication.password : objectAt(raw, ["replication"])?.password);
  if (passwordSource.success && passwordSource.data) {
    try {
      password = readSecret(passwordSource.data, (p) => fromInventory(dir, p));
      secrets.push(password);
    } catch (e) {
      problems.push(source.problem(["replication", "password"], `replication.password: ${(e as Error).message}`));
    }
  }
  // Every key file and passphrase when the schema holds; without it, only the inventory-wide key
  // was checked, above. A problem here hides none of those below (roles' passwords, TLS files).
  const access = parsed ? sshAccess(file, parsed, scope) : undefined;
  if (!parsed) return stopOn(scope) as never;
  const hosts: Host[] = [];
  let backupHost: BackupHost | undefined;
  for (const [name, h] of Object.entries(parsed.hosts)) {
    // connection: undefined only when a problem is reported below, before anything uses it.
    const common = { name, address: h.address, connection: access?.connections[name] as Connection, dnsNames: h.dns_names, vars: hostVars[name]! };
    if (h.role === "backup") backupHost = { ...common, role: "backup" };
    else {
      hosts.push({
        ...common,
        role: h.role,
        ...(h.upstream !== undefined ? { upstream: h.upstream } : {}),
        ...(h.apply_delay !== undefined ? { applyDelay: h.apply_delay } : {}),
      });
    }
  }
  if (parsed.apt.proxy) {
    // A proxy's password is masked in all output like any other secret.
    const proxyPassword = new URL(parsed.apt.proxy).password;
    if (proxyPassword) secrets.push(new Secret(proxyPassword, "apt.proxy"), new Secret(percentDecoded(proxyPassword), "apt.proxy"));
  }
  const roles: RoleSettings[] = Object.entries(parsed.roles).map(([name, r]) => {
    const { password: from, ...attributes } = r;
    let secret: Secret | undefined;
    if (from) {
      const at = ["roles", name, "password"];
      try {
        secret = readSecret(from, (p) => fromInventory(dir, p));
        secrets.push(secret);
        // As the module takes it; said here, with the position, and never with the value.
        if (secret.reveal().length < 8) problems.push(source.problem(at, `roles.${name}.password: a password of at least 8 characters`));
      } catch (e) {
        problems.push(source.problem(at, `roles.${name}.password: ${(e as Error).message}`));
      }
    }
    return { name, ...attributes, ...(secret ? { password: secret } : {}) };
  });
  // TLS once the hosts are known: a certificate issued elsewhere is checked against its host.
  const tls = loadTls(parsed.tls, { source, file, dir, hosts: backupHost ? [...hosts, backupHost] : hosts, secrets, problems });
  const backupSection = parsed.backup ?? (backupHost ? backupSchema.parse({}) : undefined);
  let cipherPassphrase: Secret | undefined;
  if (backupSection?.cipher_passphrase) {
    try {
      cipherPassphrase = readSecret(backupSection.cipher_passphrase, (p) => fromInventory(dir, p));
      secrets.push(cipherPassphrase);
    } catch (e) {
      problems.push(source.problem(["backup", "cipher_passphrase"], `backup.cipher_passphrase: ${(e as Error).message}`));
    }
  }
  stopOn(scope);
  if (!access) throw new Error("bug: no connections and no problem reported");
  return {
    file: resolve(file),
    dir,
    ssh: access.ssh,
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
    replication: {
      user: parsed.replication.user,
      ...(password ? { password } : {}),
      slots: parsed.replication.slots,
      maxSlotWalKeepSize: parsed.replication.max_slot_wal_keep_size,
      ...(parsed.replication.synchronous ? { synchronous: parsed.replication.synchronous } : {}),
    },
    checks: parsed.checks,
    tls,
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
    ...(backupSection
      ? {
          backup: {
            stanza: backupSection.stanza,
            ...(backupHost ? { host: backupHost } : {}),
            repositoryPath: backupSection.repository_path,
            retention: backupSection.retention,
            schedule: backupSection.schedule,
            archiveQueueMax: backupSection.archive_queue_max,
            archiveTimeout: backupSection.archive_timeout,
            timeoutHours: backupSection.timeout_hours,
            cipher: backupSection.cipher,
            ...(cipherPassphrase ? { cipherPassphrase } : {}),
          },
        }
      : {}),
    hosts,
    primary: hosts.find((h) => h.role === "primary")!,
    standbys: hosts.filter((h) => h.role === "standby"),
  };
}

/**
 * A key file the inventory names at `path` (`ssh`, or `hosts.NAME.ssh`): its absolute path, and a
 * problem at that place when pgprov cannot read it; undefined for a path it refuses (a problem
 * then, once: the unexpanded value would be read again later, and reported without its place).
 */
function readableKeyFile(keyFile: string, path: YamlPath, scope: SecretScope): string | undefined {
  const { source, problems } = scope;
  const at = [...path, "private_key"];
  const file = inventoryPath(keyFile, at, scope);
  if (file === undefined) return undefined;
  try {
    accessSync(file, constants.R_OK);
    // A directory is readable too ("~", say): ssh would fail on it at connect time, host after host.
    if (statSync(file).isDirectory()) problems.push(source.problem(at, `${path.join(".")}.private_key: ${file} is a directory, not a key file`));
  } catch (e) {
    problems.push(source.problem(at, `${path.join(".")}.private_key: cannot read ${file} (${(e as NodeJS.ErrnoException).code})`));
  }
  return file;
}

/**
 * A path the inventory gives, read as ssh reads one on its command line: `~` and `~/` from the
 * home directory of the user running pgprov, a relative one from the inventory's directory (not
 * the working directory). Throws a plain message for `~user` (the caller adds the position).
 */
function fromInventory(dir: string, value: string): string {
  const expanded = homePath(value, localContext().home);
  if (expanded === undefined) throw new Error(otherHomeRefused(value));
  return resolve(dir, expanded);
}

/** fromInventory, with a problem at `at` instead of an exception: undefined then. */
function inventoryPath(value: string, at: YamlPath, scope: { source: YamlSource; dir: string; problems: SourceProblem[] }): string | undefined {
  try {
    return fromInventory(scope.dir, value);
  } catch (e) {
    scope.problems.push(scope.source.problem(at, `${at.join(".")}: ${(e as Error).message}`));
    return undefined;
  }
}

/**
 * Each host's connection, resolved before anything connects: the inventory's keys (paths against
 * its directory), then ssh's configuration, then defaults. A key file the inventory names must be
 * readable, and its passphrase is read here; a ProxyJump cycle, a bad line of ssh's
 * configuration or a user name pg_ident.conf cannot take stops here, naming where it is written.
 */
function sshAccess(file: string, parsed: InventoryFile, scope: SecretScope): { ssh: SshAccess; connections: Record<string, Connection> } | undefined {
  const { source, dir, problems } = scope;
  const passphrases = new Map<string, Passphrase>();
  const keys = (section: InventoryFile["ssh"] | NonNullable<InventoryFile["hosts"][string]["ssh"]>, path: YamlPath): InventorySsh => {
    const out: InventorySsh = {};
    if (section.user !== undefined) out.user = section.user;
    if (section.port !== undefined) out.port = section.port;
    if (section.proxy_jump !== undefined) out.proxy_jump = section.proxy_jump;
    const key = section.private_key === undefined ? undefined : readableKeyFile(section.private_key, path, scope);
    if (key !== undefined) out.private_key = key;
    if (section.passphrase !== undefined) {
      const where = `${file}: ${path.join(".")}.passphrase`;
      if (section.private_key === undefined) {
        problems.push(source.problem([...path, "passphrase"], `${path.join(".")}.passphrase unlocks ${path.join(".")}.private_key, which is not set`));
      } else {
        try {
          const secret = readSecret(section.passphrase, (p) => fromInventory(dir, p));
          scope.secrets.push(secret);
          if (key !== undefined) passphrases.set(key, { secret, where });
        } catch (e) {
          problems.push(source.problem([...path, "passphrase"], `${path.join(".")}.passphrase: ${(e as Error).message}`));
        }
      }
    }
    return out;
  };
  const shared = keys(parsed.ssh, ["ssh"]);
  const knownHosts = parsed.ssh.known_hosts === undefined ? undefined : inventoryPath(parsed.ssh.known_hosts, ["ssh", "known_hosts"], scope);
  if (knownHosts !== undefined) shared.known_hosts = knownHosts;
  if (parsed.ssh.connect_timeout !== undefined) shared.connect_timeout = parsed.ssh.connect_timeout;
  const hosts: Record<string, InventoryHost> = Object.fromEntries(
    Object.entries(parsed.hosts).map(([name, h]) => [name, { address: h.address, ...(h.ssh ? { ssh: keys(h.ssh, ["hosts", name, "ssh"]) } : {}) }]),
  );
  let config: SshConfig | undefined;
  try {
    if (parsed.ssh.config === undefined) config = loadDefaultSshConfig();
    else if (typeof parsed.ssh.config === "string") {
      const path = inventoryPath(parsed.ssh.config, ["ssh", "config"], scope);
      if (path === undefined) return undefined;
      if (!existsSync(path)) {
        problems.push(source.problem(["ssh", "config"], `ssh.config: ${path} does not exist`));
        return undefined;
      }
      config = loadSshConfigFile(path);
    }
  } catch (e) {
    if (!(e instanceof FileError)) throw e;
    problems.push(...e.problems);
    return undefined;
  }
  const local = localContext();
  const warnings: SourceProblem[] = [...(config?.warnings ?? [])];
  const connections: Record<string, Connection> = {};
  let resolved = true;
  const cycles = new Set<string>();
  for (const name of Object.keys(parsed.hosts)) {
    let connection: Connection;
    try {
      connection = resolveConnection({ name, inventoryFile: file, hosts, ssh: shared, ...(config ? { config } : {}), local });
    } catch (e) {
      if (!(e instanceof PgprovError)) throw e;
      resolved = false;
      // Once: a cycle shows again, from its other end, on every host of it (and behind it). The
      // other hosts go on: their problems are reported in the same run.
      const cycle = e instanceof ProxyJumpCycle ? [...e.members].sort().join(" ") : undefined;
      if (cycle === undefined || !cycles.has(cycle)) scope.others.push(e.message);
      if (cycle !== undefined) cycles.add(cycle);
      continue;
    }
    // A jump host's user goes nowhere but the SSH handshake; the host's own goes into pg_ident.conf.
    if (!UNIX_USER.test(connection.user.value)) {
      scope.others.push(`${connection.user.from.where}: "${connection.user.value}" is not a user name pgprov can use (letters, digits, _ and -) (host ${name})`);
      resolved = false;
    }
    warnings.push(...connection.warnings);
    connections[name] = connection;
  }
  if (!resolved) return undefined;
  // One warning per line, however many hosts it applies to.
  const seen = new Set<string>();
  const unique = warnings.filter((w) => {
    const key = `${w.file}:${w.line}`;
    return !seen.has(key) && (seen.add(key), true);
  });
  const ask = terminalAsk();
  return { ssh: { passphrases, warnings: unique, ...(ask ? { ask } : {}) }, connections };
}

/**
 * The tls section, checked before anything connects: the CA the inventory names (or pgprov's own,
 * when it exists already) loaded, and each certificate issued elsewhere checked against it and its
 * host. A problem names the inventory's line, the file and the host.
 */
function loadTls(
  parsed: InventoryFile["tls"],
  scope: { source: YamlSource; file: string; dir: string; hosts: (Host | BackupHost)[]; secrets: Secret[]; problems: SourceProblem[] },
): TlsSettings {
  const { source, dir, problems } = scope;
  // A path refused is a problem at its place, once (inventoryPath): nothing is read from it.
  const path = (value: string, at: YamlPath) => inventoryPath(value, at, scope);
  const caCert = parsed.ca ? path(parsed.ca.cert, ["tls", "ca", "cert"]) : undefined;
  const caKey = parsed.ca?.key ? path(parsed.ca.key, ["tls", "ca", "key"]) : undefined;
  const refused = parsed.ca !== undefined && (caCert === undefined || (parsed.ca.key !== undefined && caKey === undefined));
  const caFiles = parsed.ca ? { cert: caCert ?? parsed.ca.cert, ...(parsed.ca.key ? { key: caKey ?? parsed.ca.key } : {}) } : ownCaFiles({ file: resolve(scope.file), dir });
  const tls: TlsSettings = { enabled: parsed.enabled, caFiles, given: {} };
  if (!parsed.enabled || refused) return tls;
  try {
    // pgprov's own is loaded once it exists; one of its files without the other is an error (loadCa names the missing one).
    // pgprov's own even when it has ended: apply renews it with the same key (renewCertificateAuthority).
    if (parsed.ca || existsSync(caFiles.cert) || existsSync(caFiles.key!)) tls.authority = loadCa(caFiles, { acceptEnded: !parsed.ca });
  } catch (e) {
    problems.push(source.problem(parsed.ca ? ["tls", "ca", "cert"] : ["tls"], `tls.ca: ${(e as Error).message}`));
    return tls;
  }
  for (const [name, files] of Object.entries(parsed.certificates)) {
    const host = scope.hosts.find((h) => h.name === name);
    if (!host || !tls.authority) continue;
    const cert = path(files.cert, ["tls", "certificates", name, "cert"]);
    const key = path(files.key, ["tls", "certificates", name, "key"]);
    if (cert === undefined || key === undefined) continue;
    try {
      const given = checkGivenCertificate(
        { cert, key },
        { host: name, ca: tls.authority, expectedNames: serverNames(host.name, host.address, host.dnsNames) },
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

/** pgprov renews its own CA when it has less than this left: a year for clients to fetch the new one. */
export const RENEW_CA_WITHIN_DAYS = 365;

export interface CaRenewal {
  /** What to warn about now: a CA the inventory gives near its end, or what apply will renew (plan). */
  warning: string;
  /**
   * pgprov's own CA, renewed in memory: writes it over NAME.ca.crt and returns what to warn about.
   * apply calls it only once the run holds its hosts' locks and its safety checks have passed (see
   * applyCluster), so a refused run, or one that never got its locks, leaves the file as it was.
   */
  save?: () => string;
}

/**
 * The CA's end, before anything connects: pgprov's own CA within RENEW_CA_WITHIN_DAYS of its end
 * is renewed (renewCa: the same key, subject and key identifier, so every certificate it issued
 * stays valid) in memory, for the playbook to put on every host as drift; `save` writes it. A CA
 * the inventory gives (tls.ca) is never renewed: its owner may keep it elsewhere too.
 */
export async function renewCertificateAuthority(inventory: Inventory, { now = new Date() }: { now?: Date } = {}): Promise<CaRenewal | undefined> {
  const ca = inventory.tls.authority;
  if (!inventory.tls.enabled || !ca) return undefined;
  if (ca.notAfter.getTime() - now.getTime() >= RENEW_CA_WITHIN_DAYS * DAY_MS) return undefined;
  const end = endText(ca.notAfter, now);
  const own = ownCaFiles(inventory);
  if (ca.files?.cert !== own.cert || !ca.canSign) {
    return {
      warning:
        `the CA ${ca.label} (tls.ca) ${end}: pgprov never renews a CA the inventory gives; renew it, keeping its key, subject and ` +
        `subject key identifier, so that every certificate it issued stays valid (otherwise every server's certificate ends with it)`,
    };
  }
  const renewed = await renewCa(ca, { now });
  inventory.tls.authority = renewed;
  const until = renewed.notAfter.toISOString().slice(0, 10);
  const save = (): string => {
    // Another run may have renewed it since this one loaded it (two applies with different --limit):
    // its certificate is as good as this one's, and the hosts should get the one the file keeps.
    if (readFileSync(own.cert, "utf8") !== ca.certPem) {
      const theirs = loadCa(own, { now });
      inventory.tls.authority = theirs;
      return `the CA ${own.cert} was renewed by another run meanwhile (valid until ${theirs.notAfter.toISOString().slice(0, 10)}): this run puts that one on its hosts`;
    }
    replaceCaCertificate(renewed, own.cert);
    return (
      `renewed the CA ${own.cert}, which ${end}: valid until ${until} (the same key, subject and key identifier, so every certificate ` +
      `it issued stays valid); every host gets it by a reload; refresh every client's copy: pgprov ca ${inventory.file}`
    );
  };
  return {
    warning: `the CA ${ca.label} ${end}: apply renews it (the same key, subject and key identifier, valid until ${until}), puts it on every host, and then every client's copy needs refreshing (pgprov ca)`,
    save,
  };
}

/** pgprov's own CA once it has ended (it still loads: apply renews it): what every command says on stderr. */
export function endedCaWarning(inventory: Inventory, now = new Date()): string | undefined {
  const ca = inventory.tls.enabled ? inventory.tls.authority : undefined;
  if (!ca || ca.notAfter.getTime() > now.getTime()) return undefined;
  return (
    `the CA ${ca.label} ${endText(ca.notAfter, now)}: no client can verify the servers with it; ` +
    `\`pgprov apply ${inventory.file}\` renews it (the same key), then give clients the new one (pgprov ca)`
  );
}

interface SecretScope {
  source: YamlSource;
  dir: string;
  secrets: Secret[];
  problems: SourceProblem[];
  /** Problems that name their place themselves (a ProxyJump cycle, a user name from ssh's configuration). */
  others: string[];
}

/** Every problem found, in one error: those with a position in the inventory first. */
function stopOn(scope: SecretScope): void {
  if (!scope.problems.length && !scope.others.length) return;
  const problems = [...new Map(scope.problems.map((p) => [`${p.line}:${p.col}:${p.message}`, p])).values()];
  throw new FileError(problems, scope.others);
}

/** The mapping at `path` of a value parsed from YAML, or undefined when there is none. */
function objectAt(value: unknown, path: string[]): Record<string, unknown> | undefined {
  let v = value;
  for (const key of path) v = v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>)[key] : undefined;
  return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
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
      const secret = readSecret(parsed.data, (p) => fromInventory(scope.dir, p));
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
