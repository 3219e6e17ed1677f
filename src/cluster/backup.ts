/**
 * `pgprov backup`, `pgprov backups` and `pgprov restore` (issue 11): pgBackRest run on the hosts,
 * never a backup format of pgprov's own. Backups run on the repository host (the backup host, or
 * the primary holding its own repository); a restore runs on the primary's host, which reads the
 * repository through pgBackRest's TLS server, then the standbys are cloned again from it.
 */
import { PgprovError } from "../common/errors.js";
import { lastLines } from "../common/text.js";
import { shellQuote } from "../common/shell.js";
import type { BackupHost, Host, Inventory } from "../inventory/inventory.js";
import { closeAll, connectAll, type Reached } from "../transport/fleet.js";
import type { HostConnection } from "../transport/ssh.js";
import { applyCluster } from "./apply.js";
import { archiverHealth, archiverQuery, type ArchiverHealth, type BackupType, PGBACKREST_FILES, pgbackrestCommand, repositoryHost } from "./backup-config.js";
import { type BackupEntry, parseRepositoryInfo, type RepositoryInfo, type RestoreTarget, restoreTargetProblem } from "./backup-info.js";
import type { ClusterPlaybook } from "./playbook.js";
import { ClusterOperation, type OperationOptions } from "./operations.js";
import { restoreWritableProblem } from "./safety.js";

function requireBackups(inventory: Inventory): NonNullable<Inventory["backup"]> {
  if (!inventory.backup) throw new PgprovError(`${inventory.file} has no backup section and no host with role: backup; see README, Backups`);
  return inventory.backup;
}

/** Runs `work` on the repository host's connection; `exclusive`: holding its pgprov lock (a backup). */
async function onRepository<T>(inventory: Inventory, options: { acceptNewHostKeys?: boolean; exclusive: boolean }, work: (c: HostConnection, host: Host | BackupHost) => Promise<T>): Promise<T> {
  const host = repositoryHost(inventory);
  const reached: Reached<Host | BackupHost>[] = await connectAll([host], inventory.ssh, { acceptNewHostKeys: options.acceptNewHostKeys ?? false, exclusive: options.exclusive });
  try {
    const r = reached[0]!;
    if (!("connection" in r)) throw new PgprovError(`${host.name}, which holds the backup repository, cannot be reached: ${r.error.detail}`);
    return await work(r.connection, host);
  } finally {
    closeAll(reached);
  }
}

async function must(c: HostConnection, host: { name: string }, script: string, purpose: string, timeoutMs = 120_000): Promise<string> {
  const r = await c.run(script, { timeoutMs, purpose });
  if (r.code !== 0) {
    throw new PgprovError(`host ${host.name}: ${purpose} failed (exit ${r.code})\n  command: ${script.split("\n")[0]}\n  output: ${lastLines(`${r.stdout}\n${r.stderr}`.trim(), 8).join("\n          ")}`);
  }
  return r.stdout;
}

/** The repository's backups and the range it can restore, as pgBackRest reports them (`pgbackrest info`). */
async function readInfo(inventory: Inventory, c: HostConnection, host: { name: string }): Promise<RepositoryInfo> {
  const b = requireBackups(inventory);
  // The newest archived WAL's arrival time: pgBackRest's info names the segment, not when it came.
  const archive = shellQuote(`${b.repositoryPath}/archive/${b.stanza}`);
  const script = `${pgbackrestCommand(inventory, ["info", "--output=json"])} && echo && echo "newest-wal=$(find ${archive} -name '0000*' -type f -printf '%T@\\n' 2>/dev/null | sort -n | tail -1)"`;
  const out = await must(c, host, script, "reading the backup repository (pgbackrest info)");
  const newest = /newest-wal=([\d.]*)/.exec(out)?.[1];
  return parseRepositoryInfo(out.slice(0, out.lastIndexOf("newest-wal=")).trim(), b.stanza, newest ? Number(newest) : undefined);
}

export async function listBackups(inventory: Inventory, options: { acceptNewHostKeys?: boolean } = {}): Promise<RepositoryInfo> {
  requireBackups(inventory);
  return onRepository(inventory, { ...options, exclusive: false }, (c, host) => readInfo(inventory, c, host));
}

export interface BackupResult {
  label: string;
  type: BackupType;
  size_bytes: number;
  repository_bytes: number;
  seconds: number;
  host: string;
}

/** A backup now, with the script the timers run (from a standby when one streams); then expire, by pgBackRest. */
export async function backupNow(inventory: Inventory, type: BackupType, options: { acceptNewHostKeys?: boolean; progress: (line: string) => void }): Promise<BackupResult> {
  requireBackups(inventory);
  return onRepository(inventory, { ...options, exclusive: true }, async (c, host) => {
    const before = new Set((await readInfo(inventory, c, host)).backups.map((b) => b.label));
    const started = performance.now();
    options.progress(`${host.name}: pgBackRest ${type} backup of stanza ${inventory.backup!.stanza}`);
    // Bounded as the timers' backups are (backup.timeout_hours, their services' TimeoutStartSec).
    const out = await must(c, host, `${PGBACKREST_FILES.backup_script} ${type} --log-level-console=info`, `the ${type} backup`, inventory.backup!.timeoutHours * 3600_000);
    for (const line of out.split("\n").filter((l) => /backup (start|stop)|new backup label|full backup size|expire|^pgprov: /.test(l))) options.progress(`${host.name}: ${line.replace(/^\S+ \S+ P\d+\s+INFO: /, "")}`);
    const seconds = (performance.now() - started) / 1000;
    const made: BackupEntry | undefined = (await readInfo(inventory, c, host)).backups.find((b) => !before.has(b.label));
    if (!made) throw new PgprovError(`host ${host.name}: the ${type} backup finished, but pgbackrest info shows no new backup`);
    return { label: made.label, type: made.type, size_bytes: made.size_bytes, repository_bytes: made.repository_bytes, seconds, host: host.name };
  });
}

export interface RestoreOptions extends OperationOptions {
  target: RestoreTarget;
  streamingTimeoutMs?: number;
}

/**
 * Restores the primary to the target with pgBackRest, then clones every standby from it again:
 * the one deliberate exception to "never clone over data", behind the confirmation. The target
 * is checked against what the repository holds before anything is stopped.
 */
export async function restore(inventory: Inventory, playbook: ClusterPlaybook, options: RestoreOptions): Promise<{ primary: string; target: string; recloned: string[]; failed: boolean } | undefined> {
  requireBackups(inventory);
  const info = await listBackups(inventory, options);
  const problem = restoreTargetProblem(options.target, info, new Date());
  if (problem) throw new PgprovError(`refusing to restore: ${problem}; nothing was stopped`);
  const primary = inventory.primary;
  const target = options.target;
  const describe = target.kind === "time" ? `to ${target.time.toISOString()}` : target.kind === "latest" ? "to the newest WAL in the archive" : `to the end of backup ${target.label}`;
  const op = await ClusterOperation.open(inventory, "restore", options);
  try {
    const now = await op.trySql(primary, "select now()::text as now, pg_current_wal_lsn()::text as lsn, pg_is_in_recovery() as in_recovery");
    const row = now?.[0];
    const lost =
      target.kind === "time"
        ? `every write committed after ${target.time.toISOString()}${row ? ` (up to ${row.now}, LSN ${row.lsn} on ${primary.name})` : ""}`
        : target.kind === "backup"
          ? `every write committed after backup ${target.label} ended`
          : "every write that had not reached the archive (WAL still only on the primary)";
    const pgArgs = [
      "--delta",
      ...(target.kind === "time" ? ["--type=time", `--target=${target.time.toISOString().replace("T", " ").replace("Z", "+00")}`, "--target-action=promote"] : []),
      ...(target.kind === "backup" ? [`--set=${target.label}`, "--type=immediate", "--target-action=promote"] : []),
      "restore",
    ];
    const standbys = inventory.standbys.filter((h) => op.reachable(h));
    const states = await Promise.all(standbys.map(async (h) => ({ name: h.name, data: await op.dataDirectory(h) })));
    const twoPrimaries = restoreWritableProblem(primary.name, states);
    if (twoPrimaries) throw new PgprovError(`refusing to restore: ${twoPrimaries}; nothing was stopped`);
    const proceed = await op.proceed(
      { primary: primary.name, target: describe, lost, restorable_from: info.restorable!.earliest.toISOString(), restorable_to: info.restorable!.latest.toISOString(), standbys: standbys.map((h) => h.name) },
      restorePlanSteps({
        file: inventory.file,
        primary: primary.name,
        describe,
        lost,
        pgArgs,
        cloned: standbys.map((h) => h.name),
        unreached: inventory.standbys.filter((h) => !op.reachable(h)).map((h) => ({ name: h.name, reason: op.unreachableReason(h) })),
      }),
    );
    if (!proceed) return undefined;
    const paths = await op.pathsOf(primary);
    op.step(`${primary.name}: stopping PostgreSQL`);
    await op.stopServer(primary);
    op.step(`${primary.name}: pgBackRest restore ${describe}`);
    const c = op.connection(primary);
    // A data directory lost with its files is made again, empty and postgres's, for pgBackRest to fill.
    await must(c, primary, `install -d -o postgres -g postgres -m 0700 ${shellQuote(paths.data_directory)} && ${pgbackrestCommand(inventory, pgArgs)}`, "pgBackRest's restore", 4 * 3600_000);
    op.step(`${primary.name}: starting PostgreSQL; it replays WAL from the archive, then is promoted`);
    await op.startServer(primary);
    await op.waitFor(`${primary.name} to finish recovery and accept writes`, 30 * 60_000, async () => {
      const r = await op.trySql(primary, "select pg_is_in_recovery() as in_recovery");
      return { done: r?.[0]?.in_recovery === false, seen: r ? `in recovery: ${String(r[0]?.in_recovery)}` : "not answering yet" };
    });
    // pgBackRest's recovery settings stay in postgresql.auto.conf after the promotion: a later
    // recovery of this server (as a standby, after a switchover) must not stop at the old target.
    await op.sql(primary, "alter system reset recovery_target_time");
    for (const setting of ["recovery_target_action", "recovery_target", "restore_command"]) await op.sql(primary, `alter system reset ${setting}`);
    await op.sql(primary, "select pg_reload_conf()");
    op.step(`${primary.name}: restored ${describe} and accepting writes; cloning the standbys again`);
    const summary = await applyCluster(inventory, playbook, {
      reached: op.connections,
      reclone: standbys.map((h) => h.name),
      cloneAlways: standbys.map((h) => h.name),
      emit: options.emit,
      ...(options.streamingTimeoutMs ? { streamingTimeoutMs: options.streamingTimeoutMs } : {}),
    });
    return { primary: primary.name, target: describe, recloned: standbys.map((h) => h.name), failed: summary.failed };
  } finally {
    await op.close();
  }
}

/**
 * What restore will do, for the confirmation. A standby it cannot reach is not cloned and keeps
 * the data of before: it is named, with its way back (should it have been promoted meanwhile,
 * the boot check fences it when it starts again, the restored primary being on a later timeline).
 */
export function restorePlanSteps(p: { file: string; primary: string; describe: string; lost: string; pgArgs: string[]; cloned: string[]; unreached: { name: string; reason: string }[] }): string[] {
  return [
    `LOST: ${p.lost}`,
    `stop PostgreSQL on ${p.primary}`,
    `restore ${p.primary}'s data directory ${p.describe} (pgbackrest ${p.pgArgs.join(" ")}), in place (--delta)`,
    `start it: it replays archived WAL up to the target and is promoted (a new timeline)`,
    `clone every standby again from it (${p.cloned.join(", ") || "none"}): their data is replaced`,
    ...p.unreached.map(
      (u) => `NOT CLONED: ${u.name} cannot be reached (${u.reason}): it keeps the data of before the restore; once it is back, run \`pgprov apply ${p.file} --reclone ${u.name}\``,
    ),
    "wait until every standby streams",
  ];
}

export interface BackupStatus {
  /** The newest backup, and how long ago it ended; undefined when there is none. */
  last?: { label: string; type: string; stop: Date; ageSeconds: number };
  /** When the oldest backup kept started: a gap in the archive before it no longer matters. */
  oldestStart?: Date;
  /** pg_stat_archiver on the primary (see archiverQuery): the same read as check's. */
  archiver?: ArchiverHealth;
  /** The last WAL segment pgBackRest dropped from the archive (archive-push-queue-max): a gap. */
  dropped?: { wal: string; time: Date };
  /** `pgbackrest check`'s outcome, when asked for (check): WAL reaches the repository. */
  check?: { ok: true } | { ok: false; command: string; output: string };
  /** What could not be read (the repository host unreachable, say). */
  error?: string;
}

/**
 * For `status` and `check`: the last backup's age and type, the primary's archiver (unless the
 * caller read it already: check's readHealth did) and the WAL pgBackRest dropped; with
 * `pgbackrestCheck`, pgBackRest's own check on the repository host (it switches the primary to a
 * new WAL segment: check asks for it only when the archiver fails or is stale). No lock.
 */
export async function backupStatus(
  inventory: Inventory,
  options: { acceptNewHostKeys?: boolean; archiver?: ArchiverHealth; pgbackrestCheck?: boolean } = {},
): Promise<BackupStatus> {
  const b = requireBackups(inventory);
  const out: BackupStatus = {};
  try {
    await onRepository(inventory, { acceptNewHostKeys: options.acceptNewHostKeys ?? false, exclusive: false }, async (c, host) => {
      try {
        const info = await readInfo(inventory, c, host);
        const last = info.backups.at(-1);
        if (last) out.last = { label: last.label, type: last.type, stop: last.stop, ageSeconds: Math.max(0, (Date.now() - last.stop.getTime()) / 1000) };
        if (info.backups[0]) out.oldestStart = info.backups[0].start;
      } catch (e) {
        if (!(e instanceof PgprovError)) throw e;
        out.error = e.message;
      }
      if (options.pgbackrestCheck) {
        // Bounded: pgBackRest waits archive-timeout for the segment it switched to reach the repository.
        const command = pgbackrestCommand(inventory, ["check", "--archive-timeout=30"]);
        const r = await c.run(`${command} 2>&1`, { timeoutMs: 90_000, purpose: "pgBackRest's check" });
        out.check = r.code === 0 ? { ok: true } : { ok: false, command, output: lastLines(r.stdout.trim() || `exit ${r.code}`, 4).join(" ") };
      }
    });
  } catch (e) {
    if (!(e instanceof PgprovError)) throw e;
    out.error = e.message;
  }
  const reached = await connectAll([inventory.primary], inventory.ssh, { acceptNewHostKeys: options.acceptNewHostKeys ?? false });
  try {
    const r = reached[0]!;
    if ("connection" in r) {
      if (options.archiver) out.archiver = options.archiver;
      else {
        const sql = `select row_to_json(a) from (${archiverQuery(b.archiveTimeout)}) a`;
        const q = await r.connection.run(`runuser -u postgres -- psql -XAtq -p ${inventory.postgresql.port} -c ${shellQuote(sql)}`, { timeoutMs: 30_000, purpose: "reading pg_stat_archiver" });
        if (q.code === 0 && q.stdout.trim()) out.archiver = archiverHealth(JSON.parse(q.stdout.trim()) as Record<string, unknown>);
      }
      const logs = `/var/log/pgbackrest/${b.stanza}-archive-push*.log`;
      const d = await r.connection.run(`timeout 10 grep -h 'dropped WAL file' ${logs} 2>/dev/null | tail -n 1; true`, { timeoutMs: 30_000, purpose: "reading pgBackRest's archive-push log" });
      const dropped = parseDroppedWal(d.stdout);
      if (dropped) out.dropped = dropped;
    }
  } finally {
    closeAll(reached);
  }
  return out;
}

/** pgBackRest's "dropped WAL file" warning (its log's time is the host's, UTC on pgprov's hosts as Debian's default). */
export function parseDroppedWal(line: string): { wal: string; time: Date } | undefined {
  const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?) .*dropped WAL file '?([0-9A-F]{24})'?/m.exec(line);
  return m ? { wal: m[3]!, time: new Date(`${m[1]}T${m[2]}Z`) } : undefined;
}
