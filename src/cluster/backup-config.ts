/**
 * Backups with pgBackRest (issue 11): what the playbook's templates and tasks see of the
 * inventory's backup section (`backup` variable), and the commands pgprov runs with pgBackRest.
 * The transport is pgBackRest's own TLS server on every host, with certificates from the
 * cluster's CA (see README, Backups, for why not SSH).
 */
import { shellQuote } from "../common/shell.js";
import type { BackupHost, Host, Inventory } from "../inventory/inventory.js";

/** pgBackRest's files on every host of a cluster with backups: its own, beside Debian's /etc/pgbackrest.conf. */
export const PGBACKREST_FILES = {
  directory: "/etc/pgbackrest",
  config: "/etc/pgbackrest/pgbackrest.conf",
  cert_file: "/etc/pgbackrest/pgprov.crt",
  key_file: "/etc/pgbackrest/pgprov.key",
  ca_file: "/etc/pgbackrest/pgprov-ca.crt",
  /** Takes a backup of the type its argument names: what the timers and `pgprov backup` run. */
  backup_script: "/usr/local/lib/pgprov/pgbackrest-backup",
};

/** check's and apply's warning without a backup section or host: archive_command archives nowhere (see pgprov.conf.hbs). */
export const NO_BACKUPS = "no backups configured: WAL is archived nowhere and there is nothing to restore from (add a backup host or a backup section: see README, Backups)";

export const BACKUP_TYPES = ["full", "diff", "incr"] as const;
export type BackupType = (typeof BACKUP_TYPES)[number];

/**
 * The subject's CN of a host's pgBackRest certificate, which tls-server-auth names: its address,
 * the certificate's only name (see the playbook's task for why).
 */
export function certificateCommonName(host: { address: string }): string {
  return host.address;
}

/** `pgbackrest --stanza=S ARGS...` as the postgres user, which owns the repository and the spool. */
export function pgbackrestCommand(inventory: Inventory, args: string[]): string {
  return `runuser -u postgres -- pgbackrest --stanza=${shellQuote(inventory.backup!.stanza)} ${args.map(shellQuote).join(" ")}`;
}

/** restore_command on every database host, and the one a restore's recovery runs (not pgBackRest's, which names the directory restored into). */
export function archiveGetCommand(stanza: string): string {
  return `pgbackrest --stanza=${stanza} archive-get %f "%p"`;
}

/** The host where backups run and the repository is read: the backup host, or the primary. */
export function repositoryHost(inventory: Inventory): Host | BackupHost {
  return inventory.backup?.host ?? inventory.primary;
}

/**
 * The database hosts the repository host's pgBackRest knows (pg1, pg2...), in the order it looks
 * for the standby to copy a backup from (backup-standby takes the first one that answers in
 * recovery): the primary, then the standbys that stream from it (synchronous ones first: the
 * least behind), then the cascading ones. A delayed standby (apply_delay) is left out: it is behind
 * on purpose, and pgBackRest would wait for it to replay the backup's start, then fail.
 */
export function backupSources(inventory: Inventory): Host[] {
  const sync = new Set(inventory.replication.synchronous?.standbys ?? (inventory.replication.synchronous ? inventory.standbys.map((h) => h.name) : []));
  const rank = (h: Host) => (h.role === "primary" ? 0 : h.upstream ? 3 : sync.has(h.name) ? 1 : 2);
  return inventory.hosts.filter((h) => !(h.role === "standby" && h.applyDelay)).sort((a, b) => rank(a) - rank(b));
}

/** The binaries and data of a database host, from its own facts (the repository host has no server to read them from). */
type DatabasePaths = (host: Host) => { data_directory: string } | undefined;

/**
 * A read of pg_stat_archiver, for `pgprov check`, `status` and apply's "is archiving healthy":
 * `failing`, a failure after the last success; `stale`, a completed segment waiting to be archived
 * (its .ready file in archive_status) for more than STALE_FACTOR × archive_timeout (at least
 * 5 min): pgBackRest's check is then run. The oldest waiting segment, not the last success: a
 * quiet server archives nothing for hours, and is not stale for it.
 */
export const STALE_FACTOR = 5;
export function archiverQuery(archiveTimeoutSeconds: number): string {
  const staleAfter = Math.max(300, STALE_FACTOR * archiveTimeoutSeconds);
  return `select current_setting('archive_mode') <> 'off' as enabled, failed_count,
  last_failed_wal, last_failed_time::text as last_failed_time, last_archived_time::text as last_archived_time,
  (last_failed_time is not null and (last_archived_time is null or last_failed_time > last_archived_time)) as failing,
  coalesce((select min(modification) from pg_ls_archive_statusdir() where name like '%.ready'), now()) < now() - interval '${staleAfter} seconds' as stale,
  ${staleAfter} as stale_after_seconds
  from pg_stat_archiver`;
}

export interface ArchiverHealth {
  /** archive_mode is on (or always). */
  enabled: boolean;
  /** A failure after the last success. */
  failing: boolean;
  /** WAL written, nothing archived for staleAfterSeconds. */
  stale: boolean;
  staleAfterSeconds: number;
  failedCount: number;
  lastFailedWal?: string;
  lastFailedTime?: string;
  lastArchivedTime?: string;
}

/** archiverQuery's row, from the pg client or from psql's row_to_json. */
export function archiverHealth(a: Record<string, unknown>): ArchiverHealth {
  return {
    enabled: a.enabled === true,
    failing: a.failing === true,
    stale: a.stale === true,
    staleAfterSeconds: Number(a.stale_after_seconds ?? 0),
    failedCount: Number(a.failed_count ?? 0),
    ...(a.last_failed_wal ? { lastFailedWal: String(a.last_failed_wal) } : {}),
    ...(a.last_failed_time ? { lastFailedTime: String(a.last_failed_time) } : {}),
    ...(a.last_archived_time ? { lastArchivedTime: String(a.last_archived_time) } : {}),
  };
}

export function backupVariables(inventory: Inventory, host: Host | BackupHost, paths?: DatabasePaths) {
  const b = inventory.backup;
  // Every name a `when:` of the bundled playbook reads, so that a cluster without backups skips them.
  if (!b) return { enabled: false, remote: false, runs_backups: false, schedule: { full: "", diff: "", incr: "" }, timers: { full: false, diff: false, incr: false }, archive_command: "", restore_command: "" };
  const stanza = b.stanza;
  const remote = b.host !== undefined;
  const databases = backupSources(inventory).map((h, i) => ({ index: i + 1, name: h.name, address: h.address, path: paths?.(h)?.data_directory ?? "" }));
  // Who may ask this host's TLS server for what: the database hosts the repository, the repository the database hosts.
  const clients = host.role === "backup" ? inventory.hosts.map(certificateCommonName) : b.host ? [certificateCommonName(b.host)] : [];
  // This host runs the backups (and their timers): the backup host, or the primary holding its own repository.
  const runsBackups = host.role === "backup" || (!remote && host.role === "primary");
  return {
    enabled: true,
    remote,
    stanza,
    repository_path: b.repositoryPath,
    retention: b.retention,
    host: b.host ? { name: b.host.name, address: b.host.address } : { name: "", address: "" },
    databases,
    /** tls-server-auth, once per client (a comma would list stanzas, not clients). */
    server_auth: clients.map((cn) => `${cn}=${stanza}`),
    // Only with a standby listed (backupSources: no delayed one), else every backup failed first.
    backup_standby: backupSources(inventory).some((h) => h.role === "standby"),
    runs_backups: runsBackups,
    /** OnCalendar expressions by backup type; "" for a type with no timer. */
    schedule: { full: b.schedule.full, diff: b.schedule.diff ?? "", incr: b.schedule.incr ?? "" },
    /** Which timers run here; the others are stopped and disabled (a type taken out of the schedule, a repository moved). */
    timers: { full: runsBackups, diff: runsBackups && b.schedule.diff !== undefined, incr: runsBackups && b.schedule.incr !== undefined },
    ...PGBACKREST_FILES,
    archive_command: `pgbackrest --stanza=${stanza} archive-push %p`,
    restore_command: archiveGetCommand(stanza),
    /** Commands of the repository host's tasks (run as postgres). */
    stanza_create: `${pgbackrestCommand(inventory, ["stanza-create"])} && ${pgbackrestCommand(inventory, ["check"])}`,
    stanza_exists: `test -f ${shellQuote(`${b.repositoryPath}/backup/${stanza}/backup.info`)} && test -f ${shellQuote(`${b.repositoryPath}/archive/${stanza}/archive.info`)}`,
    // The first full backup is taken only when pgBackRest's info says "no valid backups" (its
    // status 2): an interrupted one leaves its directory (resumed by the next backup) but is not
    // listed. Any other failure of info (the repository unreadable) starts no backup: the checks of
    // the stanza and of archiving say what is wrong.
    has_full_backup: `info=$(${pgbackrestCommand(inventory, ["info", "--output=json"])}) || exit 0; printf '%s' "$info" | grep -q '"status":{"code":2,' && exit 1; exit 0`,
    archive_queue_max: b.archiveQueueMax,
    archive_timeout: b.archiveTimeout,
    timeout_hours: b.timeoutHours,
    /** The first full backup's bound in apply: the same as the timers' (TimeoutStartSec) and `pgprov backup`'s. */
    timeout_seconds: b.timeoutHours * 3600,
    cipher: b.cipher === "none" ? "" : b.cipher,
    cipher_passphrase: b.cipherPassphrase?.reveal() ?? "",
    // pgBackRest's own check (WAL reaches the repository), on the primary, only when its archiver
    // fails or is stale: a gap in the archive shows at the next apply, at the cost of one query otherwise.
    archive_check: pgbackrestCommand(inventory, ["check", "--archive-timeout=60"]),
    archiver_healthy: `runuser -u postgres -- psql -XAtq -p ${inventory.postgresql.port} -c ${shellQuote(`select not (failing or stale) from (${archiverQuery(b.archiveTimeout)}) a`)} | grep -qx t`,
  };
}
