/** `pgprov backup` and `pgprov backups`: a line per fact, or JSON. */
import { backupNow, listBackups } from "../cluster/backup.js";
import type { BackupType } from "../cluster/backup-config.js";
import type { RepositoryInfo } from "../cluster/backup-info.js";
import { formatBytes } from "../output/format.js";
import { loadInventoryWarning } from "./inventory.js";
import { print, printJson } from "./print.js";

export async function backupCommand(file: string, options: { type: BackupType; json: boolean; acceptNewHostKeys: boolean }): Promise<number> {
  const inventory = loadInventoryWarning(file);
  const r = await backupNow(inventory, options.type, {
    acceptNewHostKeys: options.acceptNewHostKeys,
    progress: (line) => (options.json ? printJson({ type: "step", operation: "backup", message: line }) : print(`${line}\n`)),
  });
  if (options.json) printJson({ ...r, backup_type: r.type, type: "result", operation: "backup", failed: false });
  else print(`\nbackup ${r.label} (${r.type}): ${formatBytes(r.size_bytes)} of data, ${formatBytes(r.repository_bytes)} in the repository on ${r.host}, in ${r.seconds.toFixed(1)} s\n`);
  return 0;
}

export async function backupsCommand(file: string, options: { json: boolean; acceptNewHostKeys: boolean }): Promise<number> {
  const inventory = loadInventoryWarning(file);
  const info = await listBackups(inventory, { acceptNewHostKeys: options.acceptNewHostKeys });
  if (options.json) printJson(info);
  else print(backupsText(info));
  return info.backups.length ? 0 : 1;
}

function backupsText(info: RepositoryInfo): string {
  const lines = [`stanza ${info.stanza}: ${info.status}`];
  if (info.wal_min) lines.push(`archived WAL: ${info.wal_min} to ${info.wal_max}`);
  if (info.restorable) lines.push(`restorable: from ${info.restorable.earliest.toISOString()} to ${info.restorable.latest.toISOString()}`);
  const rows = info.backups.map((b) => [b.label, b.type, b.start.toISOString(), b.stop.toISOString(), formatBytes(b.size_bytes), formatBytes(b.repository_bytes), `${b.wal_start}..${b.wal_stop}`]);
  const header = ["label", "type", "start", "stop", "size", "in repository", "WAL"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return `${lines.join("\n")}\n\n${[header, ...rows].map(line).join("\n")}\n`;
}
