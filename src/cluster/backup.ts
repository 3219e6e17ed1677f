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
import { archiveGetCommand, archiverHealth, archiverQuery, type ArchiverHealth, type BackupType, PGBACKREST_FILES, pgbackrestCommand, repositoryHost } from "./backup-config.js";
import { type ArchiveReads, type BackupEntry, chooseBackupSet, parseRepositoryInfo, type RepositoryInfo, type RestoreTarget, segmentsBefore } from "./backup-info.js";
import type { ClusterPlaybook } from "./playbook.js";
import { ClusterOperation, type OperationOptions } from "./operations.js";
import { restoreWritableProblem } from "./safety.js";
import { recoverySettingsSql, type RecoverySetting, resetStatements } from "../postgres/overrides.js";

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

/** Marks the end of `pgbackrest info`'s JSON in readInfo's output; the history files follow it. */
const HISTORY_MARK = "--- pgprov: timeline history files";

/**
 * The repository's backups and the range it can restore, as pgBackRest reports them (`pgbackrest
 * info`), with the newest timeline's history file from the archive; and, given a database host
 * (which has pg_waldump), the newest commit archived on that timeline: the latest point a restore
 * can reach is in the WAL, not in when a file arrived.
 */
async function readInfo(inventory: Inventory, c: HostConnection, host: { name: string }, database?: { c: HostConnection; host: Host }): Promise<RepositoryInfo> {
  const b = requireBackups(inventory);
  const archive = shellQuote(`${b.repositoryPath}/archive/${b.stanza}`);
  const history = `for f in ${archive}/*/*.history*; do [ -f "$f" ] || continue; echo "==> \${f##*/}"; case "$f" in *.gz) gzip -dc "$f" ;; *.lz4) lz4 -dc "$f" ;; *.zst) zstd -dc "$f" ;; *.bz2) bzip2 -dc "$f" ;; *) cat "$f" ;; esac; done`;
  const out = await must(c, host, `${pgbackrestCommand(inventory, ["info", "--output=json"])} && echo && echo ${shellQuote(HISTORY_MARK)} && ${history}`, "reading the backup repository (pgbackrest info)");
  const at = out.lastIndexOf(HISTORY_MARK);
  const files = out.slice(at + HISTORY_MARK.length).split(/^==> /m).slice(1).map((chunk) => ({ name: chunk.slice(0, chunk.indexOf("\n")), text: chunk.slice(chunk.indexOf("\n") + 1) }));
  const newest = files.sort((x, y) => Number.parseInt(x.name.slice(0, 8), 16) - Number.parseInt(y.name.slice(0, 8), 16)).at(-1);
  const json = out.slice(0, at).trim();
  const reads: ArchiveReads = newest ? { history: { timeline: Number.parseInt(newest.name.slice(0, 8), 16), text: newest.text } } : {};
  const info = parseRepositoryInfo(json, b.stanza, reads);
  if (!database || !info.wal_max) return info;
  const newestCommit = await newestArchivedCommit(inventory, database.c, info.wal_max);
  return newestCommit ? parseRepositoryInfo(json, b.stanza, { ...reads, newestCommit }) : info;
}

/**
 * The time of the newest commit (or abort) in the archive's newest segments, read with pg_waldump
 * on a database host from what archive-get fetches: the latest time a restore can target. A few
 * segments back at most (a segment switched after a backup holds no commit); undefined when none has one.
 */
async function newestArchivedCommit(inventory: Inventory, c: HostConnection, walMax: string): Promise<Date | undefined> {
  const version = inventory.postgresql.version !== undefined ? String(inventory.postgresql.version) : "*";
  const get = pgbackrestCommand(inventory, ["--no-archive-async", "archive-get"]);
  const script = [
    `bin=$(ls -d /usr/lib/postgresql/${version}/bin 2>/dev/null | sort -V | tail -1)`,
    `d=$(mktemp -d) && chown postgres "$d" && trap 'rm -rf "$d"' EXIT`,
    `for s in ${segmentsBefore(walMax, 4).join(" ")}; do`,
    `  ${get} "$s" "$d/$s" >/dev/null 2>&1 || continue`,
    `  t=$(TZ=UTC "$bin/pg_waldump" "$d/$s" 2>/dev/null | sed -n 's/.*desc: \\(COMMIT\\|ABORT\\) \\([0-9-]* [0-9:.]*\\) UTC.*/\\2/p' | tail -1)`,
    `  rm -f "$d/$s"`,
    `  if [ -n "$t" ]; then echo "newest-commit=$t"; exit 0; fi`,
    "done",
  ].join("\n");
  const r = await c.run(script, { timeoutMs: 120_000, purpose: "reading the newest archived commit (pg_waldump)" });
  const m = /newest-commit=(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(\.\d{1,3})?/.exec(r.stdout);
  return m ? new Date(`${m[1]}T${m[2]}${m[3] ?? ""}Z`) : undefined;
}

/** A database host's connection, the primary's first, for what only a database host can read (pg_waldump). */
function databaseConnection(inventory: Inventory, reached: Reached<Host>[]): { c: HostConnection; host: Host } | undefined {
  const up = reached.filter((r): r is Reached<Host> & { connection: HostConnection } => "connection" in r);
  const r = up.find((x) => x.host === inventory.primary) ?? up[0];
  return r ? { c: r.connection, host: r.host } : undefined;
}

/** `newestCommit: false`: the backups only, without reading the archive's newest commit on a database host (the restorable range's end is then the newest backup's). */
export async function listBackups(inventory: Inventory, options: { acceptNewHostKeys?: boolean; newestCommit?: boolean } = {}): Promise<RepositoryInfo> {
  requireBackups(inventory);
  if (options.newestCommit === false) return onRepository(inventory, { ...options, exclusive: false }, (c, host) => readInfo(inventory, c, host));
  const databases = await connectAll(inventory.hosts, inventory.ssh, { acceptNewHostKeys: options.acceptNewHostKeys ?? false, exclusive: false });
  try {
    return await onRepository(inventory, { ...options, exclusive: false }, (c, host) => readInfo(inventory, c, host, databaseConnection(inventory, databases)));
  } finally {
    closeAll(databases);
  }
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
  /** Bound on the restored server's recovery up to its promotion. */
  recoveryTimeoutMs?: number;
}

/** pgprov's backup timers on the repository host: paused during a restore, then put back as they were. */
const BACKUP_UNITS = ["full", "diff", "incr"].map((t) => `pgprov-backup-${t}`);

/** "20261127T140500Z": the suffix of the directories a restore makes beside the data directory. */
function stampOf(d: Date): string {
  return d.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
}

/** What restore reads of the data directory's place before choosing to restore beside it. */
export interface DataLayout {
  sameFileSystem: boolean;
  mountPoint: boolean;
  symlink: boolean;
  walSymlink: boolean;
  tablespaces: number;
}

/**
 * Why the restored directory cannot replace the data directory by two renames on one file
 * system; undefined when it can. pgBackRest would restore a tablespace or a linked pg_wal to the
 * paths the running server uses (or as plain directories), so those are refused too.
 */
export function restoreLayoutProblem(host: string, data: string, l: DataLayout): string | undefined {
  const beside = "the restore goes beside it and is renamed into its place, which needs one file system";
  if (l.mountPoint) return `${host}: ${data} is a mount point: ${beside}; restore by hand (pgbackrest restore --delta) or mount its parent instead`;
  if (l.symlink) return `${host}: ${data} is a symbolic link: ${beside} (renaming the link would move the database off its volume)`;
  if (!l.sameFileSystem) return `${host}: ${data} is not on its parent directory's file system: ${beside}`;
  if (l.walSymlink) return `${host}: ${data}/pg_wal is a symbolic link (WAL on another volume): pgprov's restore beside the data directory does not handle it yet`;
  if (l.tablespaces) return `${host}: ${data} has ${l.tablespaces} tablespaces: pgBackRest would restore them over the paths the running server uses; pgprov's restore does not handle them yet`;
  return undefined;
}

/** Room a restore needs beside the data directory: the backup's database, a tenth more, and 256 MiB of WAL. */
export function restoreSpaceNeeded(databaseBytes: number): number {
  return Math.ceil(databaseBytes * 1.1) + 256 * 1024 ** 2;
}

function mib(bytes: number): string {
  return `${Math.ceil(bytes / 1024 ** 2)} MiB`;
}

/**
 * Restores the primary to the target with pgBackRest, then clones every standby from it again:
 * the one deliberate exception to "never clone over data", behind the confirmation. The target
 * is checked against what the repository holds before anything is stopped, and pgprov picks the
 * backup set (--set). The restore goes into a new directory beside the data directory while the
 * server still runs; only once pgBackRest succeeded is the server stopped and the directories
 * swapped, the old one kept (never deleted) as the way back. The repository's backup timers are
 * paused meanwhile, and the repository host's lock held, so no backup or expire runs against a
 * half-restored cluster or expires the set being restored.
 */
export async function restore(inventory: Inventory, playbook: ClusterPlaybook, options: RestoreOptions): Promise<{ primary: string; target: string; recloned: string[]; kept?: string; failed: boolean } | undefined> {
  const b = requireBackups(inventory);
  if (!b.host) {
    // The repository on the primary's own path: the operation's connection to it, and its lock.
    const op = await ClusterOperation.open(inventory, "restore", options);
    try {
      return await restoreWith(inventory, playbook, options, op, { c: op.connection(inventory.primary), host: inventory.primary });
    } finally {
      await op.close();
    }
  }
  return onRepository(inventory, { ...options, exclusive: !options.dryRun }, async (repo, repoHost) => {
    const op = await ClusterOperation.open(inventory, "restore", options);
    try {
      return await restoreWith(inventory, playbook, options, op, { c: repo, host: repoHost });
    } finally {
      await op.close();
    }
  });
}

async function restoreWith(
  inventory: Inventory,
  playbook: ClusterPlaybook,
  options: RestoreOptions,
  op: ClusterOperation,
  repo: { c: HostConnection; host: Host | BackupHost },
): Promise<{ primary: string; target: string; recloned: string[]; kept?: string; failed: boolean } | undefined> {
  const primary = inventory.primary;
  const target = options.target;
  const info = await readInfo(inventory, repo.c, repo.host, databaseConnection(inventory, op.connections));
  const chosen = chooseBackupSet(target, info, new Date());
  if ("problem" in chosen) throw new PgprovError(`refusing to restore: ${chosen.problem}; nothing was stopped`);
  const set = chosen.set;
  const describe = target.kind === "time" ? `to ${target.time.toISOString()}` : target.kind === "latest" ? "to the newest WAL in the archive" : `to the end of backup ${target.label}`;
  const row = (await op.trySql(primary, "select now()::text as now, pg_current_wal_lsn()::text as lsn, pg_is_in_recovery() as in_recovery"))?.[0];
  const writable = row?.in_recovery === false;
  const lost =
    target.kind === "time"
      ? `every write committed after ${target.time.toISOString()}${row ? ` (up to ${row.now}, LSN ${row.lsn} on ${primary.name})` : ""}`
      : target.kind === "backup"
        ? `every write committed after backup ${target.label} ended`
        : writable
          ? `every write committed after the WAL switch pgprov makes on ${primary.name} just before stopping it (everything before is archived first)`
          : "every write that had not reached the archive (WAL still only on the primary)";
  const paths = await op.pathsOf(primary);
  const data = paths.data_directory;
  const stamp = stampOf(new Date());
  const fresh = `${data}.restore-${stamp}`;
  const kept = `${data}.before-restore-${stamp}`;
  const pgArgs = [
    `--set=${set.label}`,
    `--pg1-path=${fresh}`,
    // pgBackRest's own would carry --pg1-path, the directory's name before the swap.
    `--recovery-option=restore_command=${archiveGetCommand(inventory.backup!.stanza)}`,
    ...(target.kind === "time" ? ["--type=time", `--target=${target.time.toISOString().replace("T", " ").replace("Z", "+00")}`, "--target-action=promote"] : []),
    // The set's own timeline: one a later restore abandoned is no ancestor of the newest.
    ...(target.kind === "backup" ? ["--type=immediate", "--target-action=promote", "--target-timeline=current"] : []),
    "restore",
  ];
  const standbys = inventory.standbys.filter((h) => op.reachable(h));
  const states = await Promise.all(standbys.map(async (h) => ({ name: h.name, data: await op.dataDirectory(h) })));
  const twoPrimaries = restoreWritableProblem(primary.name, states);
  if (twoPrimaries) throw new PgprovError(`refusing to restore: ${twoPrimaries}; nothing was stopped`);

  // Beside the data directory, on its file system (renames, not copies): room for the backup's database.
  const parent = data.slice(0, data.lastIndexOf("/"));
  const d = shellQuote(data);
  const room = await op.shell(
    primary,
    [
      `df -B1 --output=avail,target ${shellQuote(parent)} | tail -1`,
      `if test -d ${d}; then echo data-exists; fi`,
      `if test -L ${d}; then echo symlink; fi`,
      `if test -L ${d}/pg_wal; then echo wal-symlink; fi`,
      `if mountpoint -q ${d}; then echo mount-point; fi`,
      `if test -e ${d} && [ "$(stat -L -c %d ${d})" != "$(stat -c %d ${shellQuote(parent)})" ]; then echo other-file-system; fi`,
      `echo "tablespaces $(ls -A ${d}/pg_tblspc 2>/dev/null | wc -l)"`,
      // Sizes are only for the plan: bounded, a name without its size rather than a stuck restore.
      `for k in ${d}.before-restore-* ${d}.restore-*; do [ -d "$k" ] && echo "kept $(timeout 20 du -sb "$k" | cut -f1) $k"; done`,
      "true",
    ].join("; "),
    "reading the data directory's place and the free space beside it",
  );
  const layout = restoreLayoutProblem(primary.name, data, {
    sameFileSystem: !/^other-file-system$/m.test(room),
    mountPoint: /^mount-point$/m.test(room),
    symlink: /^symlink$/m.test(room),
    walSymlink: /^wal-symlink$/m.test(room),
    tablespaces: Number(/^tablespaces (\d+)$/m.exec(room)?.[1] ?? 0),
  });
  if (layout) throw new PgprovError(`refusing to restore: ${layout}; nothing was stopped`);
  const [avail, mount] = room.trim().split("\n")[0]!.trim().split(/\s+/);
  const needed = restoreSpaceNeeded(set.size_bytes);
  if (Number(avail) < needed) {
    throw new PgprovError(
      `refusing to restore: ${primary.name}: the restore goes into a new directory beside ${data} (the old one is kept), which needs ${mib(needed)} (backup ${set.label}'s database, ${mib(set.size_bytes)}, and room for WAL); ${mib(Number(avail))} is free on ${mount}; nothing was stopped`,
    );
  }
  const hasData = /^data-exists$/m.test(room);
  const earlier = [...room.matchAll(/^kept (\d*) (.+)$/gm)].map((m) => ({ bytes: m[1] ? Number(m[1]) : undefined, path: m[2]! }));
  const backupRunning = async () => {
    const running = await repo.c.run(`systemctl is-active ${BACKUP_UNITS.map((u) => `${u}.service`).join(" ")}`, { timeoutMs: 30_000, purpose: "reading whether a backup runs now" });
    const active = running.stdout.split("\n").map((l, i) => (l.trim() === "active" || l.trim() === "activating" ? BACKUP_UNITS[i] : undefined)).filter(Boolean);
    if (active.length) throw new PgprovError(`refusing to restore: a backup runs now on ${repo.host.name} (${active.join(", ")}.service); restore once it has ended; nothing was stopped`);
  };
  // A backup running now would read the cluster while it is replaced: asked before the confirmation, and again once the timers are paused.
  await backupRunning();

  const proceed = await op.proceed(
    {
      primary: primary.name,
      target: describe,
      backup_set: set.label,
      lost,
      restorable_from: info.restorable!.earliest.toISOString(),
      restorable_to: info.restorable!.latest.toISOString(),
      standbys: standbys.map((h) => h.name),
      kept: hasData ? kept : "none (no data directory)",
    },
    restorePlanSteps({
      file: inventory.file,
      primary: primary.name,
      describe,
      lost,
      pgArgs,
      data,
      fresh,
      kept: hasData ? kept : undefined,
      earlier: earlier.map((e) => `${e.path}${e.bytes === undefined ? "" : ` (${mib(e.bytes)})`}`),
      repository: repo.host.name,
      switchWal: writable,
      cloned: standbys.map((h) => h.name),
      unreached: inventory.standbys.filter((h) => !op.reachable(h)).map((h) => ({ name: h.name, reason: op.unreachableReason(h) })),
    }),
  );
  if (!proceed) return undefined;

  const timers = await pauseBackupTimers(repo);
  try {
    await backupRunning();
    op.step(`${primary.name}: pgBackRest restore ${describe} from backup ${set.label} into ${fresh}`);
    const c = op.connection(primary);
    try {
      await must(c, primary, `install -d -o postgres -g postgres -m 0700 ${shellQuote(fresh)} && ${pgbackrestCommand(inventory, pgArgs)}`, "pgBackRest's restore", 4 * 3600_000);
      if (writable) {
        // The newest WAL into the archive before the stop, for a restore to the latest point, and waited for there.
        const seg = String((await op.sql(primary, "select pg_walfile_name(pg_switch_wal()) as seg"))[0]?.seg ?? "");
        op.step(`${primary.name}: switched WAL; waiting for ${seg} in the repository`);
        const archive = shellQuote(`${inventory.backup!.repositoryPath}/archive/${inventory.backup!.stanza}`);
        await op.waitFor(`${seg} in the repository on ${repo.host.name}`, 120_000, async () => {
          const r = await repo.c.run(`find ${archive} -name ${shellQuote(`${seg}*`)} | grep -q .`, { timeoutMs: 30_000, purpose: "looking for the switched WAL in the repository" });
          return { done: r.code === 0, seen: "not archived yet" };
        });
      }
    } catch (e) {
      // Only the new directory, made moments ago under a name of this restore's own, is removed; the server was not stopped.
      await c.run(`rm -rf --one-file-system ${shellQuote(fresh)}`, { timeoutMs: 600_000, purpose: "removing the failed restore's directory" });
      throw new PgprovError(`${(e as Error).message}\n  nothing was stopped: ${primary.name} runs on from ${data}, untouched`);
    }
    op.step(`${primary.name}: stopping PostgreSQL`);
    await op.stopServer(primary);
    op.step(hasData ? `${primary.name}: ${data} kept as ${kept}; the restored directory put in its place` : `${primary.name}: the restored directory put in place of ${data}`);
    try {
      await op.shell(primary, `${hasData ? `mv ${shellQuote(data)} ${shellQuote(kept)} && ` : ""}mv ${shellQuote(fresh)} ${shellQuote(data)} && sync ${shellQuote(parent)}`, "swapping the restored data directory in");
    } catch (e) {
      throw new PgprovError(`${(e as Error).message}\n  PostgreSQL is stopped on ${primary.name}; the restored directory is ${fresh}${hasData ? `, the data directory of before is ${data} or, if that is gone, ${kept} (\`mv ${kept} ${data}\` puts it back)` : ""}`);
    }
    const wayBack = hasData
      ? `; the data directory of before the restore is kept as ${kept}: to go back to it, \`systemctl stop ${paths.service} && mv ${data} ${data}.failed-restore-${stamp} && mv ${kept} ${data} && systemctl start ${paths.service}\`, then \`pgprov apply ${inventory.file}\``
      : "";
    op.step(`${primary.name}: starting PostgreSQL; it replays WAL from the archive, then is promoted`);
    const logTail = async () =>
      (await c.run(`tail -n 5 /var/log/postgresql/postgresql-${paths.version}-main.log`, { timeoutMs: 30_000, purpose: "reading PostgreSQL's log" })).stdout.trim().split("\n").join("\n  ");
    try {
      try {
        await op.startServer(primary);
      } catch (e) {
        throw new PgprovError(`${(e as Error).message}\n  PostgreSQL's log ends:\n  ${await logTail()}`);
      }
      await op.waitFor(`${primary.name} to finish recovery and accept writes`, options.recoveryTimeoutMs ?? 30 * 60_000, async () => {
        const r = await op.trySql(primary, "select pg_is_in_recovery() as in_recovery");
        if (r) return { done: r[0]?.in_recovery === false, seen: `in recovery: ${String(r[0]?.in_recovery)}` };
        // A server that stopped (recovery ended before its target, say) does not come back by waiting.
        const unit = await c.run(`systemctl is-active ${shellQuote(paths.service)}`, { timeoutMs: 30_000, purpose: "reading whether PostgreSQL runs" });
        if (unit.stdout.trim() === "failed" || unit.stdout.trim() === "inactive") {
          throw new PgprovError(`host ${primary.name}: PostgreSQL stopped during recovery (${unit.stdout.trim()}); its log ends:\n  ${await logTail()}`);
        }
        return { done: false, seen: "not answering yet" };
      });
    } catch (e) {
      throw new PgprovError(`${(e as Error).message}\n  the restore did not reach its target${wayBack}`);
    }
    // pgBackRest's recovery settings, now that the server is promoted: a later recovery of this
    // server (as a standby, after a switchover) must not stop at the old target.
    await resetRecoverySettings(op, primary);
    op.step(`${primary.name}: restored ${describe} and accepting writes; cloning the standbys again`);
    const summary = await applyCluster(inventory, playbook, {
      reached: op.connections,
      // The database hosts only: the repository's play would start the timers paused here.
      limit: inventory.hosts.map((h) => h.name),
      reclone: standbys.map((h) => h.name),
      cloneAlways: standbys.map((h) => h.name),
      emit: options.emit,
      ...(options.streamingTimeoutMs ? { streamingTimeoutMs: options.streamingTimeoutMs } : {}),
    });
    const strays = await standbysOffTimeline(op, primary, standbys, options.streamingTimeoutMs ?? 120_000);
    for (const s of strays) options.emit({ type: "failure", host: s.host, message: `${s.host} does not stream on ${primary.name}'s new timeline after the restore (${s.seen}): run \`pgprov apply ${inventory.file} --reclone ${s.host}\`` });
    return { primary: primary.name, target: describe, recloned: standbys.map((h) => h.name), ...(hasData ? { kept } : {}), failed: summary.failed || strays.length > 0 };
  } finally {
    await resumeBackupTimers(repo, timers, options.emit);
  }
}

/** Stops the backup timers that run (they are put back by resumeBackupTimers); returns which. */
async function pauseBackupTimers(repo: { c: HostConnection; host: Host | BackupHost }): Promise<string[]> {
  const units = BACKUP_UNITS.map((u) => `${u}.timer`);
  const r = await repo.c.run(`for u in ${units.join(" ")}; do systemctl is-active --quiet "$u" && echo "$u"; done; true`, { timeoutMs: 30_000, purpose: "reading the backup timers" });
  const active = r.stdout.split("\n").map((l) => l.trim()).filter((l) => units.includes(l));
  if (active.length) await must(repo.c, repo.host, `systemctl stop ${active.join(" ")}`, "pausing the backup timers during the restore");
  return active;
}

async function resumeBackupTimers(repo: { c: HostConnection; host: Host | BackupHost }, timers: string[], emit: RestoreOptions["emit"]): Promise<void> {
  if (!timers.length) return;
  const r = await repo.c.run(`systemctl start ${timers.join(" ")}`, { timeoutMs: 60_000, purpose: "starting the backup timers again" }).catch((e: Error) => ({ code: 1, stdout: "", stderr: e.message }));
  if (r.code !== 0) emit({ type: "failure", host: repo.host.name, message: `the backup timers ${timers.join(", ")} could not be started again (${r.stderr.trim()}): \`pgprov apply\` starts them` });
}

/** The recovery settings pgBackRest's restore wrote to postgresql.auto.conf, read and reset as pg_setting_overrides does outside a restore. */
async function resetRecoverySettings(op: ClusterOperation, host: Host): Promise<void> {
  const [row] = await op.sql(host, `select ${recoverySettingsSql()}`);
  const names = ((row?.recovery_settings as RecoverySetting[] | null) ?? []).map((r) => r.name);
  for (const statement of resetStatements(names)) await op.sql(host, statement);
  await op.sql(host, "select pg_reload_conf()");
}

/** The restored standbys that do not stream on the primary's timeline within the bound (a clone left to chance is checked). */
async function standbysOffTimeline(op: ClusterOperation, primary: Host, standbys: Host[], timeoutMs: number): Promise<{ host: string; seen: string }[]> {
  // The apply restarted them (the clones, pending settings): connections of before are gone.
  for (const h of [primary, ...standbys]) await op.dropSql(h);
  const tl = await op.sql(primary, "select ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int as timeline");
  const timeline = Number(tl[0]?.timeline);
  const off: { host: string; seen: string }[] = [];
  await Promise.all(
    standbys.map(async (h) => {
      let seen = "";
      try {
        await op.waitFor(`${h.name} to stream on timeline ${timeline}`, timeoutMs, async () => {
          const r = (await op.trySql(h, "select status, received_tli from pg_stat_wal_receiver"))?.[0];
          seen = r ? `${String(r.status)} on timeline ${String(r.received_tli)}` : "no WAL receiver";
          return { done: r?.status === "streaming" && Number(r.received_tli) === timeline, seen };
        });
      } catch {
        off.push({ host: h.name, seen });
      }
    }),
  );
  return off;
}

/**
 * What restore will do, for the confirmation. A standby it cannot reach is not cloned and keeps
 * the data of before: it is named, with its way back (should it have been promoted meanwhile,
 * the boot check fences it when it starts again, the restored primary being on a later timeline).
 */
export function restorePlanSteps(p: {
  file: string;
  primary: string;
  describe: string;
  lost: string;
  pgArgs: string[];
  data: string;
  fresh: string;
  kept: string | undefined;
  earlier: string[];
  repository: string;
  switchWal: boolean;
  cloned: string[];
  unreached: { name: string; reason: string }[];
}): string[] {
  return [
    `LOST: ${p.lost}`,
    `pause the backup timers on ${p.repository} (started again at the end, whatever happens)`,
    `restore ${p.describe} into a new directory, ${p.fresh}, while ${p.primary} runs on (pgbackrest ${p.pgArgs.join(" ")}); should that fail, nothing is stopped`,
    ...(p.switchWal ? [`switch ${p.primary}'s WAL and wait until it is in the repository`] : []),
    `stop PostgreSQL on ${p.primary}`,
    p.kept
      ? `rename ${p.data} to ${p.kept} (kept, never deleted by pgprov: the way back should the restore not do), and the new directory to ${p.data}`
      : `rename the new directory to ${p.data}`,
    ...p.earlier.map((e) => `left by an earlier restore, and still taking room (pgprov never deletes it): ${e}`),
    `start it: it replays archived WAL up to the target and is promoted (a new timeline); pgBackRest's recovery settings are then reset`,
    `clone every standby again from it (${p.cloned.join(", ") || "none"}): their data is replaced`,
    ...p.unreached.map(
      (u) => `NOT CLONED: ${u.name} cannot be reached (${u.reason}): it keeps the data of before the restore; once it is back, run \`pgprov apply ${p.file} --reclone ${u.name}\``,
    ),
    "wait until every standby streams on the new timeline",
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
