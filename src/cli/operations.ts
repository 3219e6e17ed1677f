/** switchover, failover and rejoin: timed steps, then the cluster playbook's output. */
import { failover } from "../cluster/failover.js";
import { rejoin } from "../cluster/rejoin.js";
import { switchover } from "../cluster/switchover.js";
import { FACT_KEYS } from "../engine/facts.js";
import { variableNames } from "../engine/variables.js";
import { loadInventory, type Inventory } from "../inventory/inventory.js";
import { PlainRenderer } from "../output/plain.js";
import { BUNDLED_PLAYBOOK } from "../paths.js";
import { loadPlaybook, type Playbook } from "../playbook/playbook.js";
import { print } from "./print.js";

interface Common {
  inventory: string;
  acceptNewHostKeys: boolean;
}

function prepare(args: Common): { inventory: Inventory; playbook: Playbook; log: (l: string) => void; renderer: PlainRenderer } {
  const inventory = loadInventory(args.inventory);
  const playbook = loadPlaybook(BUNDLED_PLAYBOOK, { hostNames: inventory.hosts.map((h) => h.name), variables: variableNames(inventory), factKeys: FACT_KEYS });
  const write = print;
  const renderer = new PlainRenderer({ diff: false, verbose: false, color: process.stdout.isTTY === true && !process.env.NO_COLOR, write });
  return { inventory, playbook, log: (l) => write(`${l}\n`), renderer };
}

export async function switchoverCommand(args: Common & { to: string; maxLag: number }): Promise<number> {
  const { inventory, playbook, log, renderer } = prepare(args);
  const r = await switchover(inventory, playbook, {
    to: args.to,
    maxLagBytes: args.maxLag,
    catchUpTimeoutMs: 30_000,
    acceptNewHostKeys: args.acceptNewHostKeys,
    log,
    emit: (e) => renderer.event(e),
  });
  log(`\nswitchover to ${args.to}: ${r.failed ? "FAILED after the promotion (see above)" : "done"}; no server accepted writes for ${r.writeWindowSeconds.toFixed(2)} s`);
  log(`inventory rewritten: ${r.inventoryChanges.join(", ")}`);
  return r.failed ? 1 : 0;
}

export async function failoverCommand(args: Common & { to?: string; force: boolean }): Promise<number> {
  const { inventory, playbook, log, renderer } = prepare(args);
  const r = await failover(inventory, playbook, {
    ...(args.to ? { to: args.to } : {}),
    force: args.force,
    acceptNewHostKeys: args.acceptNewHostKeys,
    log,
    emit: (e) => renderer.event(e),
  });
  log(`\nfailover: ${r.promoted} is the primary${r.failed ? ", but the cluster playbook FAILED (see above)" : ""}`);
  log(`inventory rewritten: ${r.inventoryChanges.join(", ")}`);
  return r.failed ? 1 : 0;
}

export async function rejoinCommand(args: Common & { host: string; reclone: boolean }): Promise<number> {
  const { inventory, playbook, log, renderer } = prepare(args);
  const r = await rejoin(inventory, playbook, args.host, { reclone: args.reclone, acceptNewHostKeys: args.acceptNewHostKeys, log, emit: (e) => renderer.event(e) });
  log(`\nrejoin of ${args.host}: ${r.failed ? "FAILED (see above)" : `done${r.rewound ? " (pg_rewind)" : ""}`}`);
  return r.failed ? 1 : 0;
}
