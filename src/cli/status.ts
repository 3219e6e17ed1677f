import { clusterStatus, replicationTree } from "../cluster/status.js";
import { loadInventoryWarning } from "./inventory.js";
import { formatBytes } from "../output/format.js";
import { formatTable } from "../output/table.js";
import { print, printJson } from "./print.js";

/** Exit codes: 0 every host answers as the inventory says, 1 otherwise (unreachable, stopped, two primaries...). */
export async function statusCommand(inventoryPath: string, options: { json: boolean; acceptNewHostKeys: boolean }): Promise<number> {
  const inventory = loadInventoryWarning(inventoryPath);
  const status = await clusterStatus(inventory, { acceptNewHostKeys: options.acceptNewHostKeys });
  const write = (line: string) => print(`${line}\n`);
  if (options.json) {
    for (const h of status.hosts) printJson({ type: "status", ...h });
    printJson({ type: "cluster", warnings: status.warnings, connection_strings: status.connectionStrings });
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
