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

export function backupVariables(inventory: Inventory, host: Host | BackupHost) {
  const b = inventory.backup;
  // Every name a `when:` of the bundled playbook reads, so that a cluster without backups skips them.
  if (!b) return { enabled: false, remote: false, runs_backups: false, schedule: { full: "", diff: "", incr: "" }, timers: { full: false, diff: false, incr: false }, archive_command: "", restore_command: "" };
  const stanza = b.stanza;
  const remote = b.host !== undefined;
  const databases = inventory.hosts.map((h, i) => ({ index: i + 1, name: h.name, address: h.address }));
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
    backup_standby: inventory.standbys.length > 0,
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
    has_full_backup: `ls ${shellQuote(`${b.repositoryPath}/backup/${stanza}`)} | grep -Eq '^[0-9]{8}-[0-9]{6}F$'`,
  };
}
