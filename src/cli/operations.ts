/** switchover, failover and rejoin: timed steps, then the cluster playbook's output. */
import { failover } from "../cluster/failover.js";
import { rejoin } from "../cluster/rejoin.js";
import { switchover } from "../cluster/switchover.js";
import { type ClusterPlaybook, loadClusterPlaybook } from "../cluster/playbook.js";
import type { Inventory } from "../inventory/inventory.js";
import { loadInventoryWarning } from "./inventory.js";
import { PgprovError } from "../common/errors.js";
import { PlainRenderer } from "../output/plain.js";
import { print } from "./print.js";

interface Common {
  inventory: string;
  /** The playbook that reconfigures the cluster after the operation (as apply's --playbook). */
  playbook: string;
  acceptNewHostKeys: boolean;
}

/** PostgreSQL's memory units (multiples of 1024, spelt as PostgreSQL spells them). */
const BYTE_UNITS: Record<string, number> = { B: 1, kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };

/** "16MB", "512kB", "2 GB", or a whole number of bytes; anything else is refused, naming `option`. */
export function parseByteSize(text: string, option: string): number {
  const m = /^\s*(\d+)\s*(B|kB|MB|GB|TB)?\s*$/.exec(text);
  const bytes = m ? Number(m[1]) * BYTE_UNITS[m[2] ?? "B"]! : Number.NaN;
  if (!Number.isSafeInteger(bytes)) {
    throw new PgprovError(`${option}: expected a whole number of bytes, or one with a unit (kB, MB, GB, TB), such as 16MB; found "${text}"`);
  }
  return bytes;
}

function prepare(args: Common): { inventory: Inventory; playbook: ClusterPlaybook; log: (l: string) => void; renderer: PlainRenderer } {
  const inventory = loadInventoryWarning(args.inventory);
  const playbook = loadClusterPlaybook(args.playbook, inventory);
  const write = print;
  const renderer = new PlainRenderer({ diff: false, verbose: false, color: process.stdout.isTTY === true && !process.env.NO_COLOR, write });
  return { inventory, playbook, log: (l) => write(`${l}\n`), renderer };
}

export async function switchoverCommand(args: Common & { to: string; maxLag: string }): Promise<number> {
  const maxLagBytes = parseByteSize(args.maxLag, "--max-lag");
  const { inventory, playbook, log, renderer } = prepare(args);
  const r = await switchover(inventory, playbook, {
    to: args.to,
    maxLagBytes,
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
  log(`committed transactions: ${r.committedTransactionsSafe ? "none lost (proven by the synchronous standbys read)" : "may be lost (see above)"}`);
  log(`inventory rewritten: ${r.inventoryChanges.join(", ")}`);
  return r.failed ? 1 : 0;
}

export async function rejoinCommand(args: Common & { host: string; reclone: boolean; discardDiverged: boolean }): Promise<number> {
  const { inventory, playbook, log, renderer } = prepare(args);
  const r = await rejoin(inventory, playbook, args.host, { reclone: args.reclone, discardDiverged: args.discardDiverged, acceptNewHostKeys: args.acceptNewHostKeys, log, emit: (e) => renderer.event(e) });
  log(`\nrejoin of ${args.host}: ${r.failed ? "FAILED (see above)" : `done${r.rewound ? " (pg_rewind)" : ""}`}`);
  return r.failed ? 1 : 0;
}
