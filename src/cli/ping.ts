import { loadInventoryWarning } from "./inventory.js";
import { ping } from "../cluster/ping.js";
import { formatTable } from "../output/table.js";
import { print, printJson } from "./print.js";
import { describeJumpFailure } from "../transport/fleet.js";

export async function pingCommand(inventoryPath: string, options: { acceptNewHostKeys: boolean; json: boolean }): Promise<number> {
  const inventory = loadInventoryWarning(inventoryPath);
  const { results, jumpFailures } = await ping(inventory, { acceptNewHostKeys: options.acceptNewHostKeys });
  if (options.json) {
    for (const r of results) {
      const { host, ...rest } = r;
      printJson({ type: "ping", host: host.name, address: host.address, ...rest });
    }
    for (const f of jumpFailures) printJson({ type: "jump_host", host: f.jumpHost, message: f.message, hosts: f.hosts });
  } else {
    const rows = results.map((r) =>
      r.reachable
        ? [r.host.name, r.host.address, "ok", r.os, `systemd ${r.systemd}`, `rtt ${r.rttMs.toFixed(1)} ms`, r.path, `as ${r.user} with ${r.identity}`]
        : [r.host.name, r.host.address, "UNREACHABLE", r.path === "direct" ? r.message : `${r.path}: ${r.message}`],
    );
    for (const line of formatTable(rows)) print(`${line}\n`);
    for (const f of jumpFailures) print(`${describeJumpFailure(f)}\n`);
    for (const r of results) {
      if (r.reachable && r.learnedHostKey) print(`recorded the host key of ${r.host.name}: ${r.learnedHostKey}\n`);
    }
  }
  return results.every((r) => r.reachable) ? 0 : 1;
}
