import { backupFindings, caOf, CHECK_EXIT, judgeHealth, overallStatus, readHealth, worstFirst } from "../cluster/check.js";
import { backupStatus } from "../cluster/backup.js";
import { repositoryHost } from "../cluster/backup-config.js";
import { PgprovError } from "../common/errors.js";
import { loadInventory } from "../inventory/inventory.js";
import { formatTable } from "../output/table.js";
import { print, printJson } from "./print.js";

/**
 * Exit codes as Nagios reads them: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (a host that cannot be
 * read, or check itself could not run: a bad inventory, say). The first line is the summary.
 */
export async function checkCommand(inventoryPath: string, options: { json: boolean; acceptNewHostKeys: boolean }): Promise<number> {
  let findings;
  let primary: string;
  try {
    const inventory = loadInventory(inventoryPath);
    primary = inventory.primary.name;
    const ca = caOf(inventory);
    const health = await readHealth(inventory, { acceptNewHostKeys: options.acceptNewHostKeys });
    findings = judgeHealth(health, inventory.checks, primary, { ...(ca ? { ca } : {}), backups: inventory.backup !== undefined });
    if (inventory.backup) {
      // The primary's archiver as readHealth read it: one read of pg_stat_archiver serves both.
      const server = health.find((h) => h.host === primary)?.server;
      const archiver = server && "replication" in server ? server.replication?.archiver : undefined;
      // pgBackRest's check switches WAL segments and may take a minute: only when the archiver is not
      // clearly healthy (as apply does), not on every run of a monitor.
      const pgbackrestCheck = !archiver || archiver.failing || archiver.stale;
      const b = await backupStatus(inventory, { acceptNewHostKeys: options.acceptNewHostKeys, pgbackrestCheck, ...(archiver ? { archiver } : {}) });
      findings = worstFirst([...findings, ...backupFindings(b, inventory.checks, primary, repositoryHost(inventory).name)]);
    }
  } catch (e) {
    if (e instanceof PgprovError) throw new PgprovError(`UNKNOWN: ${e.message}`, CHECK_EXIT.unknown);
    throw e;
  }
  const status = overallStatus(findings);
  const counts = Object.fromEntries((["critical", "warning", "unknown", "ok"] as const).map((s) => [s, findings.filter((f) => f.status === s).length]));
  if (options.json) {
    for (const f of findings) printJson({ type: "finding", ...f });
    printJson({ type: "check", status, exitCode: CHECK_EXIT[status], counts });
  } else {
    const worst = findings.filter((f) => f.status === status && status !== "ok").map((f) => `${f.host ? `${f.host} ` : ""}${f.check}`);
    print(`${status.toUpperCase()}: ${Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(", ")}${worst.length ? ` (${worst.join(", ")})` : ""}\n`);
    for (const line of formatTable(findings.map((f) => [f.status.toUpperCase(), f.host ?? "cluster", f.check, f.message]))) print(`${line}\n`);
  }
  return CHECK_EXIT[status];
}
