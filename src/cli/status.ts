import { type ClusterStatus, replicationTree, StatusReader } from "../cluster/status.js";
import { loadInventoryWarning } from "./inventory.js";
import { formatBytes } from "../output/format.js";
import { formatTable } from "../output/table.js";
import { describePool } from "../postgres/pooler.js";
import { print, printJson } from "./print.js";
import { type BackupStatus, backupStatus } from "../cluster/backup.js";

export interface StatusOptions {
  json: boolean;
  acceptNewHostKeys: boolean;
  /** `--watch`: read again every this many seconds, until `stop`. */
  watchSeconds?: number;
  stop?: AbortSignal;
}

/**
 * Exit codes: 0 every host answers as the inventory says, 1 otherwise (unreachable, stopped, two
 * primaries...). Watching, 0 when stopped by Ctrl-C: the state is on screen, not in the code.
 */
export async function statusCommand(inventoryPath: string, options: StatusOptions): Promise<number> {
  const inventory = loadInventoryWarning(inventoryPath);
  const reader = await StatusReader.open(inventory, { acceptNewHostKeys: options.acceptNewHostKeys });
  try {
    if (options.watchSeconds === undefined) {
      const code = show(await reader.read(), options.json);
      if (inventory.backup) showBackups(await backupStatus(inventory, { acceptNewHostKeys: options.acceptNewHostKeys }), options.json);
      return code;
    }
    // On a terminal the screen is redrawn in place; in a log, each reading follows the last.
    const redraw = process.stdout.isTTY === true && !options.json;
    while (!options.stop?.aborted) {
      const status = await reader.read();
      if (options.stop?.aborted) break;
      if (redraw) print("\x1b[H\x1b[2J");
      if (!options.json) print(`-- ${new Date().toTimeString().slice(0, 8)}  every ${options.watchSeconds} s; Ctrl-C stops\n`);
      show(status, options.json);
      if (!redraw && !options.json) print("\n");
      await pause(options.watchSeconds * 1000, options.stop);
    }
    return 0;
  } finally {
    await reader.close();
  }
}

/** The last backup's age and type, and whether archiving fails (pg_stat_archiver), below the servers. */
function showBackups(b: BackupStatus, json: boolean): void {
  if (json) {
    printJson({ type: "backups", ...b });
    return;
  }
  const last = b.last ? `last ${b.last.type} backup ${b.last.label}, ${(b.last.ageSeconds / 3600).toFixed(1)} h ago` : b.error ? `repository not read: ${b.error}` : "no backup yet";
  const a = b.archiver;
  const archiving = a ? `archiving: ${a.failedCount} failed${a.lastFailedWal ? ` (last ${a.lastFailedWal} at ${a.lastFailedTime})` : ""}, last archived ${a.lastArchivedTime ?? "never"}${a.stale ? `, STALE (nothing archived for more than ${a.staleAfterSeconds} s though WAL was written)` : ""}` : "archiving: not read";
  // Loud: a dropped segment is a gap in the archive (see check's archive_gap).
  const gap = b.dropped ? `; WAL DROPPED from the archive: ${b.dropped.wal} at ${b.dropped.time.toISOString()} (archive-push-queue-max)` : "";
  print(`backups:       ${last}; ${archiving}${gap}\n`);
}

function pause(ms: number, stop?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    stop?.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });
}

/** Prints one reading; its exit code. */
function show(status: ClusterStatus, json: boolean): number {
  const write = (line: string) => print(`${line}\n`);
  if (json) {
    for (const h of status.hosts) printJson({ type: "status", ...h });
    printJson({ type: "cluster", warnings: status.warnings, connectionStrings: status.connectionStrings });
  } else {
    const rows = [["host", "role", "version", "timeline", "lsn", "lag", "slot", "streaming"]];
    for (const h of status.hosts) {
      rows.push([
        h.host,
        h.role === h.expectedRole ? h.role : `${h.role} (inventory: ${h.expectedRole})`,
        h.version ?? "",
        h.timeline !== undefined ? String(h.timeline) : "",
        h.lsn ?? "",
        h.lagBytes !== undefined ? `${formatBytes(h.lagBytes)}, ${h.lagSeconds!.toFixed(1)} s` : "",
        h.slot ? `${h.slot}${h.slotActive === undefined ? "" : h.slotActive ? " (active)" : " (inactive)"}` : "",
        h.streaming ?? h.reason ?? "",
      ]);
    }
    for (const line of formatTable(rows)) write(line);
    write("");
    for (const line of replicationTree(status.hosts)) write(line);
    for (const h of status.hosts.filter((x) => x.pooler)) {
      const p = h.pooler!;
      write(`pgbouncer ${h.host}: ${"error" in p ? `its pools cannot be read: ${p.error}` : p.pools.length ? p.pools.map(describePool).join(" | ") : "no pool in use"}`);
    }
    for (const w of status.warnings) write(`WARNING: ${w}`);
    write("");
    write(`writes:        ${status.connectionStrings.readWrite}`);
    write(`reads:         ${status.connectionStrings.preferStandby}`);
  }
  const healthy =
    status.warnings.length === 0 &&
    status.hosts.every((h) => h.role === h.expectedRole && (h.role === "primary" || h.streaming === "streaming"));
  return healthy ? 0 : 1;
}
