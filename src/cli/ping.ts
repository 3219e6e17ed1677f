import { loadInventoryWarning } from "./inventory.js";
import { ping } from "../cluster/ping.js";
import { formatTable } from "../output/table.js";
import { print, printJson } from "./print.js";

export async function pingCommand(inventoryPath: string, options: { acceptNewHostKeys: boolean; json: boolean }): Promise<number> {
  const inventory = loadInventoryWarning(inventoryPath);
  const results = await ping(inventory, { acceptNewHostKeys: options.acceptNewHostKeys });
  if (options.json) {
    for (const r of results) {
      const { host, ...rest } = r;
      printJson({ type: "ping", host: host.name, address: host.address, ...rest });
    }
  } else {
    const rows = results.map((r) =>
      r.reachable
        ? [r.host.name, r.host.address, "ok", r.os, `systemd ${r.systemd}`, `rtt ${r.rttMs.toFixed(1)} ms`, r.path, `as ${r.user} with ${r.identity}`]
        : [r.host.name, r.host.address, "UNREACHABLE", r.path === "direct" ? r.message : `${r.path}: ${r.message}`],
    );
    for (const line of formatTable(rows)) print(`${line}\n`);
    for (const r of results) {
      if (r.reachable && r.learnedHostKey) print(`recorded the host key of ${r.host.name}: ${r.learnedHostKey}\n`);
    }
  }
  return results.every((r) => r.reachable) ? 0 : 1;
}
