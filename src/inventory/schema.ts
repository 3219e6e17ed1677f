/**
 * The inventory file's schema. Every key is documented in inventory.example.yml; keys not listed
 * here are rejected (with a suggestion), so a typo never silently falls back to a default.
 */
import { isIP } from "node:net";
import { z } from "zod";
import { absolutePath, byteSizeArg } from "../common/args.js";
import { secretValue } from "../yaml/source.js";
import { closest, didYouMean } from "../yaml/suggest.js";
import { SETTINGS_BY_VERSION } from "../postgres/settings.js";
import { secretSource } from "./secret.js";
import { slotName } from "../postgres/slot-names.js";
import { parseProxyJump } from "../sshconfig/jump.js";
import { delayProblem, topologyProblems } from "./topology.js";
import { databaseName, objectSettings, roleName, SETTING_NAME, settingValue } from "../postgres/names.js";
import { KNOWN_EXTENSIONS } from "../postgres/extensions.js";
import { POOLER_AUTH_USER } from "../postgres/pooler.js";
import { isDnsName } from "../tls/index.js";
import { calendarProblem } from "./schedule.js";

export const hostName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, "a host name: letters, digits, '_', '-', '.'");

/** Words pg_hba.conf reads in its address field as more than one host. */
const HBA_ADDRESS_KEYWORDS = new Set(["all", "samehost", "samenet"]);

const address = z
  .string()
  .min(1)
  .refine((a) => isIP(a) !== 0 || /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(a), {
    message: "expected an IP address or a DNS name",
  })
  .refine((a) => !HBA_ADDRESS_KEYWORDS.has(a.toLowerCase()), {
    error: (i) => `"${String(i.input)}" is a keyword in pg_hba.conf (it would allow more than this host); use the host's address or DNS name`,
  });

/** A DNS name for a certificate's SAN: RFC 1123 labels, no wildcard (see tls/names.ts). */
const dnsName = z.string().refine(isDnsName, { error: (i) => `${JSON.stringify(i.input)} is not a DNS name (letters, digits and hyphens, in labels separated by dots; no wildcard, no trailing dot)` });

/** Template variables; names must be usable in `{{ name }}`. */
export const variables = z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "a variable name: letters, digits and _"), z.unknown());

/**
 * How to reach a host, for one host (`hosts.NAME.ssh`) or for all (`ssh`). No key has a default
 * here: a key not set lets the next place decide (the inventory's `ssh`, then ssh's
 * configuration, then defaults: see sshconfig/connection.ts).
 */
const hostSshShape = {
  user: z.string().regex(/^[a-z_][a-z0-9_-]*\$?$/, "a Unix user name").optional(),
  port: z.number().int().min(1).max(65535).optional(),
  private_key: z.string().min(1).optional(),
  /** Unlocks private_key (of the same section) when it is protected by a passphrase. */
  passphrase: secretSource.optional(),
  /** `[user@]host[:port]`, comma-separated for a chain, or `none`. */
  proxy_jump: z.string().superRefine((v, ctx) => {
    const hops = parseProxyJump(v);
    if (typeof hops === "string") ctx.addIssue({ code: "custom", message: hops });
  }).optional(),
};

export const hostSshSchema = z.strictObject(hostSshShape);

export const hostSchema = z.strictObject({
  address,
  /** backup: the pgBackRest repository host (issue 11), with no PostgreSQL server on it. */
  role: z.enum(["primary", "standby", "backup"], {
    error: (i) =>
      Array.isArray(i.input)
        ? "a host has one role: primary, standby or backup (a backup host holds no PostgreSQL server: give the repository a host of its own)"
        : undefined,
  }),
  ssh: hostSshSchema.optional(),
  /** The host it streams from while a standby (cascading); the primary by default. */
  upstream: hostName.optional(),
  /** A delayed standby: recovery_min_apply_delay, in PostgreSQL's units ("1h"). */
  apply_delay: z.string().refine((d) => delayProblem(d) === undefined, { error: (i) => delayProblem(String(i.input)) ?? "" }).optional(),
  /**
   * Other DNS names clients reach it by (a service name, a load balancer's): in its certificate's
   * SAN beside its name and address (issue 10). pgprov's own connection strings keep the address.
   */
  dns_names: z.array(dnsName).default([]),
  vars: variables.default({}),
});

/**
 * An apt proxy: an http or https URL, kept in its normal form, which is what apt's configuration
 * gets. Characters that mean something in that configuration (a quote ends its string, `;` its
 * statement) are refused, not escaped. The messages never repeat the URL: it may hold a password.
 */
const aptProxy = z.string().transform((raw, ctx) => {
  const problem = aptProxyProblem(raw);
  if (problem === undefined) return new URL(raw).href;
  ctx.addIssue({ code: "custom", message: problem });
  return z.NEVER;
});

function aptProxyProblem(raw: string): string | undefined {
  if (/["';\\\s\u0000-\u001f\u007f]/.test(raw)) return "an apt proxy URL cannot hold quotes, semicolons, backslashes, whitespace or control characters";
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return "expected an http:// or https:// URL, like http://proxy.example:3142";
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return `expected an http:// or https:// URL, like http://proxy.example:3142 (the scheme is ${url.protocol.slice(0, -1)})`;
  }
  return undefined;
}

export const aptSchema = z.strictObject({
  /** For networks without direct access: given to apt for the run only, never left on the host. May carry a password, so never echoed in an error. */
  proxy: secretValue(aptProxy).optional(),
});

export const sshSchema = z.strictObject({
  ...hostSshShape,
  known_hosts: z.string().min(1).optional(),
  connect_timeout: z.number().positive().max(300).optional().describe("seconds"),
  /** OpenSSH's client configuration: a file (like `ssh -F`), or false for none; default ~/.ssh/config and /etc/ssh/ssh_config. */
  config: z.union([z.string().min(1), z.literal(false)]).optional(),
});

/** Settings pgprov derives itself: set by hand they would break replication or be overwritten. */
export const MANAGED_SETTINGS = new Set([
  "listen_addresses",
  "port",
  "wal_level",
  "hot_standby",
  "max_wal_senders",
  "max_replication_slots",
  "primary_conninfo",
  "primary_slot_name",
  "synchronous_standby_names",
  "recovery_min_apply_delay",
  "wal_log_hints",
  "hba_file",
  "ident_file",
  "data_directory",
]);

const cidr = z.string().refine((c) => {
  const [addr, bits, ...rest] = c.split("/");
  const family = isIP(addr ?? "");
  const max = family === 4 ? 32 : 128;
  return rest.length === 0 && family !== 0 && bits !== undefined && /^\d+$/.test(bits) && Number(bits) <= max;
}, "expected a network like 10.0.0.0/24");

/** A Debian package name (an extension's, say). */
const packageName = z.string().regex(/^[a-z0-9][a-z0-9+.-]+$/, "a Debian package name like postgresql-15-cron");

export const postgresqlSchema = z.strictObject({
  /** Default: the one the host's Debian release ships (bookworm 15, trixie 17). */
  version: z
    .number()
    .int()
    .refine((v) => v in SETTINGS_BY_VERSION, `expected one of ${Object.keys(SETTINGS_BY_VERSION).join(", ")}`)
    .optional(),
  port: z.number().int().min(1).max(65535).default(5432),
  settings: z.record(z.string(), settingValue).default({}),
  clients: z.array(cidr).default([]),
  /** Debian packages installed beside the server: those of extensions outside contrib. */
  packages: z.array(packageName).default([]),
  /**
   * Where WAL was archived before backups came (issue 11): apply and plan report the directory as
   * left in place, never deleted (default /var/lib/postgresql/VERSION/wal-archive).
   */
  // It is also part of a shell command: letters, digits and _ . / - only.
  archive_directory: absolutePath.regex(/^[A-Za-z0-9_./-]+$/, "an absolute path of letters, digits, _ . / -").optional(),
});

export const replicationSchema = z.strictObject({
  user: z.string().regex(/^[a-z_][a-z0-9_]*$/, "a role name: lower-case letters, digits and _").default("replicator"),
  /** Default: generated once and kept next to the inventory (mode 0600). */
  password: secretSource.optional(),
  slots: z.boolean().default(true),
  /**
   * The most WAL a replication slot may hold on its primary (max_slot_wal_keep_size): past it, a
   * stopped standby's slot is invalidated instead of filling the disk, and the standby catches up
   * from the backup repository's archive (restore_command). -1: no limit.
   */
  max_slot_wal_keep_size: z.union([z.literal(-1), byteSizeArg]).default(10 * 1024 ** 3),
  /** Synchronous or quorum commit: synchronous_standby_names (see inventory/topology.ts). */
  synchronous: z
    .strictObject({
      mode: z.enum(["quorum", "priority"]).default("quorum"),
      count: z.number().int(),
      standbys: z.array(hostName).optional(),
    })
    .optional(),
});

/**
 * `pgprov check`'s thresholds: a finding is a warning past `warning`, critical past `critical`.
 * Sizes in bytes or with PostgreSQL's units (16MB); free space in percent, warning above critical.
 */
function thresholds<T extends z.ZodType<number, unknown>>(value: T, defaults: { warning: number; critical: number }, falling = false) {
  return z
    .strictObject({ warning: value.optional(), critical: value.optional() })
    .transform((t) => ({ warning: t.warning ?? defaults.warning, critical: t.critical ?? defaults.critical }))
    .refine((t) => (falling ? t.warning >= t.critical : t.warning <= t.critical), falling ? "warning must be at least critical (what is measured falls)" : "warning must not be above critical")
    .default({ ...defaults });
}

const MB = 1024 ** 2;
const GB = 1024 ** 3;
const seconds = z.number().nonnegative();
const percent = z.number().min(0).max(100);

export const checksSchema = z.strictObject({
  /** A standby's replay lag, as its primary sees it. */
  replay_lag: thresholds(byteSizeArg, { warning: 16 * MB, critical: GB }),
  replay_lag_seconds: thresholds(seconds, { warning: 60, critical: 300 }),
  /** WAL a replication slot keeps on the primary (pg_current_wal_lsn() - restart_lsn). */
  slot_retained_wal: thresholds(byteSizeArg, { warning: GB, critical: 10 * GB }),
  /** Free space of the file systems holding the data directory and pg_wal. */
  disk_free_percent: thresholds(percent, { warning: 20, critical: 10 }, true),
  /** Days left to a server's TLS certificate, or to the CA's (issue 10); apply renews within 30. */
  tls_expiry_days: thresholds(z.number().int().nonnegative(), { warning: 30, critical: 7 }, true),
  /** Hours since the last backup finished (with a backup section or host). */
  backup_age_hours: thresholds(seconds, { warning: 8 * 24, critical: 15 * 24 }),
});

export type CheckThresholds = z.output<typeof checksSchema>;

const tlsFile = z.string().min(1);

/**
 * TLS (issue 10), on by default: the cluster's own CA in .pgprov/ next to the inventory, or an
 * existing one; certificates issued elsewhere only checked and installed.
 */
export const tlsSchema = z.strictObject({
  /** false only for a lab or a network the user trusts: plan and apply warn on every run. */
  enabled: z.boolean().default(true),
  /** An existing CA; without `key` pgprov issues nothing, and every host needs `certificates`. */
  ca: z.strictObject({ cert: tlsFile, key: tlsFile.optional() }).optional(),
  certificates: z.record(hostName, z.strictObject({ cert: tlsFile, key: tlsFile })).default({}),
});

/** The server settings the inventory's tls section decides. */
export const TLS_SETTINGS = new Set(["ssl", "ssl_cert_file", "ssl_key_file", "ssl_ca_file", "ssl_min_protocol_version"]);

const attribute = z.boolean();

export const roleSchema = z.strictObject({
  /** Default: the password is not managed (a role that does not log in, say). */
  password: secretSource.optional(),
  /** absent: dropped if it exists and owns nothing; a role left out of the inventory is left alone. */
  state: z.enum(["present", "absent"]).default("present"),
  login: attribute.default(true),
  superuser: attribute.default(false),
  createdb: attribute.default(false),
  createrole: attribute.default(false),
  connection_limit: z.number().int().min(-1).default(-1),
  member_of: z.array(z.string().min(1)).default([]),
  settings: objectSettings,
});

export const databaseSchema = z.strictObject({
  owner: z.string().min(1).default("postgres"),
  encoding: z.string().regex(/^[A-Za-z0-9_-]+$/, "an encoding name like UTF8").optional(),
  locale: z.string().regex(/^[A-Za-z0-9_.@-]+$/, "a locale name like en_US.UTF-8 or C").optional(),
  template: databaseName.optional(),
  extensions: z.array(z.string().min(1)).default([]),
  settings: objectSettings,
  state: z
    .enum(["present", "absent"])
    .refine((s) => s === "present", {
      message:
        "pgprov never drops a database (DROP DATABASE loses its data for good): drop it yourself, after a backup, and remove it from the inventory",
    })
    .optional(),
});

/** The methods an access rule may use: no trust, password or md5 (a password in cleartext or MD5). */
export const ACCESS_METHODS = ["scram-sha-256", "cert", "reject"] as const;
const REFUSED_METHODS: Record<string, string> = {
  trust: "lets anyone in without a password",
  password: "sends the password in cleartext",
  md5: "MD5 password hashes can be replayed and are deprecated",
};

const accessMethod = z.string().superRefine((m, ctx) => {
  if ((ACCESS_METHODS as readonly string[]).includes(m)) return;
  const why = REFUSED_METHODS[m.toLowerCase()];
  ctx.addIssue({
    code: "custom",
    message: why ? `method ${m} is not accepted (${why}); use scram-sha-256, cert or reject` : `expected one of ${ACCESS_METHODS.join(", ")}, found "${m}"`,
  });
});

/** Where an access rule lets clients in from: a network, or one host (an IP address or a DNS name). */
const accessFrom = z.string().refine((f) => (f.includes("/") ? cidr.safeParse(f).success : address.safeParse(f).success), {
  error: (i) => `"${String(i.input)}" is not a network (like 10.0.0.0/24), an IP address or a DNS name`,
});

export const accessRuleSchema = z.strictObject({
  database: z.union([z.literal("all"), databaseName]).default("all"),
  user: z.union([z.literal("all"), roleName]).default("all"),
  from: accessFrom,
  method: accessMethod,
});

export const poolerSchema = z.strictObject({
  pool_mode: z.enum(["transaction", "session"]).default("transaction"),
  /** Server connections per database and user. */
  default_pool_size: z.number().int().min(1).max(10000).default(20),
  max_client_conn: z.number().int().min(1).max(100000).default(100),
  port: z.number().int().min(1).max(65535).default(6432),
});

/** A systemd OnCalendar expression (see schedule.ts): validated before anything connects. */
const calendar = z.string().superRefine((v, ctx) => {
  const problem = calendarProblem(v);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});

/** Backups and point-in-time recovery with pgBackRest (issue 11). */
export const backupSchema = z.strictObject({
  /** pgBackRest's stanza: the cluster's name in the repository. */
  stanza: z.string().regex(/^[A-Za-z0-9_-]+$/, "a stanza name: letters, digits, _ and -").default("main"),
  /** On the backup host; without one, on the primary (a mounted volume): plan warns. */
  repository_path: absolutePath.regex(/^[A-Za-z0-9_./-]+$/, "an absolute path of letters, digits, _ . / -").default("/var/lib/pgbackrest"),
  retention: z
    .strictObject({
      full: z.number().int().min(1, "keep at least 1 full backup (0 would expire every backup and the WAL to restore from)").default(2),
      diff: z.number().int().min(1, "keep at least 1 differential backup").default(7),
    })
    .default({ full: 2, diff: 7 }),
  schedule: z
    .strictObject({ full: calendar.default("Sun 02:00"), diff: calendar.optional(), incr: calendar.optional() })
    .default({ full: "Sun 02:00", diff: "Mon..Sat 02:00" }),
  /**
   * The most WAL pgBackRest's asynchronous spool holds on a database host while the repository
   * cannot take it (archive-push-queue-max): past it, WAL is dropped from the archive (a gap that
   * check reports until a backup is taken after it) instead of filling the primary's disk.
   */
  archive_queue_max: byteSizeArg
    .refine((v) => v >= 64 * MB, "at least 64MB (four WAL segments): less would drop WAL on the first slow push")
    .default(4 * GB),
  /** archive_timeout in seconds: a quiet primary still archives its last writes this often (PITR); 0: only full segments. */
  archive_timeout: z
    .number()
    .int()
    .refine((v) => v === 0 || (v >= 10 && v <= 86400), "seconds between 10 and 86400, or 0 (archive full segments only)")
    .default(60),
  /** The longest a scheduled backup may run (its service's TimeoutStartSec), in hours: a hung one is stopped, not left to block the next. */
  timeout_hours: z.number().int().min(1).max(7 * 24).default(12),
  /** Encryption of the repository's content at rest (repo1-cipher-type), with cipher_passphrase. */
  cipher: z.enum(["none", "aes-256-cbc"]).default("none"),
  /**
   * The repository's passphrase (repo1-cipher-pass), from the environment or a file of mode 0600:
   * never made by pgprov, since a new one over a lost one would make every backup unreadable.
   */
  cipher_passphrase: secretSource.optional(),
}).superRefine((b, ctx) => {
  if (b.cipher !== "none" && !b.cipher_passphrase) {
    ctx.addIssue({ code: "custom", path: ["cipher"], message: `cipher ${b.cipher} needs cipher_passphrase: { env: VARIABLE } or { file: PATH } (keep a copy: without it no backup can be restored)` });
  }
});

const inventoryObject = z.strictObject({
  ssh: sshSchema.default({}),
  apt: aptSchema.default({}),
  postgresql: postgresqlSchema.default(postgresqlSchema.parse({})),
  replication: replicationSchema.default(replicationSchema.parse({})),
  tls: tlsSchema.default(tlsSchema.parse({})),
  vars: variables.default({}),
  checks: checksSchema.default(checksSchema.parse({})),
  // Names are checked in checkRolesAndDatabases, where the message can say what is wrong with one.
  roles: z.record(z.string(), roleSchema).default({}),
  databases: z.record(z.string(), databaseSchema).default({}),
  access: z.array(accessRuleSchema).default([]),
  pooler: poolerSchema.optional(),
  backup: backupSchema.optional(),
  hosts: z.record(hostName, hostSchema).refine((h) => Object.keys(h).length > 0, "at least one host is required"),
});

export const inventorySchema = inventoryObject.superRefine((inv, ctx) => {
  const backupHosts = Object.keys(inv.hosts).filter((n) => inv.hosts[n]!.role === "backup");
  checkBackupHosts(inv, backupHosts, ctx);
  const names = Object.keys(inv.hosts).filter((n) => inv.hosts[n]!.role !== "backup");
  const primaries = names.filter((n) => inv.hosts[n]!.role === "primary");
  if (primaries.length !== 1) {
    ctx.addIssue({
      code: "custom",
      path: ["hosts", ...(primaries.length > 1 ? [primaries[1]!, "role"] : [])],
      message:
        primaries.length === 0
          ? "no host has role: primary; exactly one must"
          : `exactly one host may be the primary, found ${primaries.join(", ")}`,
    });
  }
  const known = inv.postgresql.version ? SETTINGS_BY_VERSION[inv.postgresql.version]! : new Set(Object.values(SETTINGS_BY_VERSION).flatMap((s) => [...s]));
  for (const name of Object.keys(inv.postgresql.settings)) {
    const path = ["postgresql", "settings", name];
    // PostgreSQL reads names in any case: WAL_LEVEL is wal_level.
    const lower = name.toLowerCase();
    if (!SETTING_NAME.test(name)) {
      ctx.addIssue({
        code: "custom",
        path,
        message: "not a setting name: letters, digits, _ and $, with at most one dot (after an extension's prefix)",
      });
    } else if (MANAGED_SETTINGS.has(lower)) {
      ctx.addIssue({ code: "custom", path, message: `${lower} is managed by pgprov (derived from the inventory); remove it here` });
    } else if (inv.tls.enabled && TLS_SETTINGS.has(lower)) {
      ctx.addIssue({ code: "custom", path, message: `${lower} is managed by pgprov while TLS is on (the inventory's tls section); remove it here` });
    } else if (!name.includes(".") && !known.has(lower)) {
      // Names with a dot belong to extensions (pg_stat_statements.max): PostgreSQL accepts them.
      const suggestion = closest(name, known);
      ctx.addIssue({
        code: "custom",
        path,
        message: `unknown PostgreSQL setting "${name}"${inv.postgresql.version ? ` (PostgreSQL ${inv.postgresql.version})` : ""}${suggestion ? ` (did you mean "${suggestion}"?)` : ""}`,
      });
    }
  }
  for (const name of Object.keys(inv.tls.certificates)) {
    if (!inv.hosts[name]) {
      ctx.addIssue({ code: "custom", path: ["tls", "certificates", name], message: `no host named "${name}" in hosts${didYouMean(name, names)}` });
    }
  }
  if (inv.tls.enabled && Object.keys(inv.tls.certificates).length > 0 && !inv.tls.ca) {
    ctx.addIssue({ code: "custom", path: ["tls", "certificates"], message: "certificates issued elsewhere need their CA: give its certificate as tls.ca.cert" });
  }
  if (inv.tls.enabled && inv.tls.ca && !inv.tls.ca.key) {
    const without = names.filter((n) => !inv.tls.certificates[n]);
    if (without.length) {
      ctx.addIssue({
        code: "custom",
        path: ["tls", "ca"],
        message: `without tls.ca.key pgprov cannot issue certificates, and ${without.join(", ")} ha${without.length === 1 ? "s" : "ve"} none in tls.certificates`,
      });
    }
  }
  checkRolesAndDatabases(inv, ctx);
  const slots = new Map<string, string>();
  for (const name of names) {
    const slot = slotName(name);
    const other = slots.get(slot);
    if (other) ctx.addIssue({ code: "custom", path: ["hosts", name], message: `hosts ${other} and ${name} would share the replication slot ${slot}; rename one` });
    slots.set(slot, name);
  }
  const topology = Object.entries(inv.hosts).filter(([, h]) => h.role !== "backup").map(([name, h]) => ({ name, role: h.role as "primary" | "standby", upstream: h.upstream, applyDelay: h.apply_delay }));
  for (const p of topologyProblems(topology, inv.replication.synchronous)) ctx.addIssue({ code: "custom", path: p.path, message: p.message });
  const seen = new Map<string, string>();
  for (const name of Object.keys(inv.hosts)) {
    const a = inv.hosts[name]!.address;
    const other = seen.get(a);
    if (other) ctx.addIssue({ code: "custom", path: ["hosts", name, "address"], message: `address ${a} is already used by host ${other}` });
    seen.set(a, name);
  }
});

export type InventoryFile = z.output<typeof inventorySchema>;

/**
 * The repository host: at most one, holding no PostgreSQL server (nothing streams from it, it is
 * in no synchronous list), and only with TLS on: the database hosts reach its pgBackRest server
 * with certificates from the cluster's CA (see README, Backups).
 */
function checkBackupHosts(inv: z.output<typeof inventoryObject>, backupHosts: string[], ctx: z.RefinementCtx): void {
  if (backupHosts.length > 1) {
    ctx.addIssue({ code: "custom", path: ["hosts", backupHosts[1]!, "role"], message: `exactly one host may hold the backup repository, found ${backupHosts.join(", ")}` });
  }
  const backup = backupHosts[0];
  if (backup === undefined) return;
  const host = inv.hosts[backup]!;
  for (const key of ["upstream", "apply_delay"] as const) {
    if (host[key] !== undefined) {
      ctx.addIssue({ code: "custom", path: ["hosts", backup, key], message: `${backup} is the backup host (role: backup): it runs no PostgreSQL server, so ${key} means nothing there` });
    }
  }
  inv.replication.synchronous?.standbys?.forEach((s, i) => {
    if (s === backup) ctx.addIssue({ code: "custom", path: ["replication", "synchronous", "standbys", i], message: `${backup} is the backup host, not a standby` });
  });
  if (!inv.tls.enabled) {
    ctx.addIssue({
      code: "custom",
      path: ["hosts", backup, "role"],
      message:
        "a backup host needs TLS (tls.enabled: true): the database hosts and the repository reach each other through pgBackRest's TLS server, authenticated by certificates from the cluster's CA; without TLS, keep the repository on the primary (backup.repository_path, no backup host)",
    });
  } else if (inv.tls.ca && !inv.tls.ca.key) {
    ctx.addIssue({ code: "custom", path: ["tls", "ca"], message: "a backup host needs tls.ca.key: pgprov issues pgBackRest's client and server certificates from the cluster's CA" });
  }
}

/** Names the roles, databases and access rules refer to: each must be one the inventory declares. */
function checkRolesAndDatabases(inv: z.output<typeof inventoryObject>, ctx: z.RefinementCtx): void {
  const present = new Set(Object.entries(inv.roles).filter(([, r]) => r.state === "present").map(([n]) => n));
  const named = (schema: typeof roleName, path: (string | number)[], name: string) => {
    const result = schema.safeParse(name);
    if (!result.success) ctx.addIssue({ code: "custom", path, message: result.error.issues[0]!.message });
  };
  for (const name of Object.keys(inv.roles)) named(roleName, ["roles", name], name);
  for (const name of Object.keys(inv.databases)) named(databaseName, ["databases", name], name);
  for (const [name, role] of Object.entries(inv.roles)) {
    if (name === POOLER_AUTH_USER) ctx.addIssue({ code: "custom", path: ["roles", name], message: `${name} is pgbouncer's own role, which pgprov manages itself` });
    if (name === "postgres") ctx.addIssue({ code: "custom", path: ["roles", name], message: "postgres is the server's own superuser; pgprov does not manage it" });
    if (name === inv.replication.user) {
      ctx.addIssue({ code: "custom", path: ["roles", name], message: `${name} is the replication user (replication.user), which pgprov manages itself` });
    }
    role.member_of.forEach((group, i) => {
      // pg_ roles are PostgreSQL's predefined ones (pg_monitor, pg_read_all_data...).
      if (group.startsWith("pg_") || present.has(group)) return;
      ctx.addIssue({ code: "custom", path: ["roles", name, "member_of", i], message: `member_of: "${group}" is not a role of the inventory's roles${didYouMeanRole(group, present)}` });
    });
  }
  for (const [name, db] of Object.entries(inv.databases)) {
    if (db.owner !== "postgres" && !present.has(db.owner)) {
      ctx.addIssue({
        code: "custom",
        path: ["databases", name, "owner"],
        message: `owner "${db.owner}" is not a role of the inventory's roles${didYouMeanRole(db.owner, present)}: declare it there, or use postgres`,
      });
    }
    db.extensions.forEach((e, i) => {
      if (e in KNOWN_EXTENSIONS) return;
      const suggestion = closest(e, Object.keys(KNOWN_EXTENSIONS));
      const packaged = Object.keys(KNOWN_EXTENSIONS).filter((n) => KNOWN_EXTENSIONS[n]!.package);
      ctx.addIssue({
        code: "custom",
        path: ["databases", name, "extensions", i],
        message: `unknown extension "${e}"${suggestion ? ` (did you mean "${suggestion}"?)` : ""}: pgprov knows PostgreSQL's contrib and ${packaged.join(", ")}`,
      });
    });
  }
}

function didYouMeanRole(name: string, roles: Set<string>): string {
  const match = closest(name, roles);
  return match ? ` (did you mean "${match}"?)` : "";
}
