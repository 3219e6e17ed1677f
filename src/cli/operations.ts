/**
 * switchover, failover and rejoin: timed steps, the plan, then the cluster playbook's output; with
 * --json, one event per line, the last the result; with --dry-run, the checks and the plan only.
 */
import type { ClusterEvent, OperationName } from "../cluster/events.js";
import { failover } from "../cluster/failover.js";
import { rejoin } from "../cluster/rejoin.js";
import { switchover } from "../cluster/switchover.js";
import { type ClusterPlaybook, loadClusterPlaybook } from "../cluster/playbook.js";
import type { Inventory } from "../inventory/inventory.js";
import { loadInventoryWarning } from "./inventory.js";
import { parseByteSize } from "../common/args.js";
import { JsonRenderer } from "../output/json.js";
import { PlainRenderer } from "../output/plain.js";
import type { OperationPlan } from "../cluster/events.js";
import { confirmation } from "./confirm.js";
import { restore } from "../cluster/backup.js";
import { parseRestoreTime, type RestoreTarget } from "../cluster/backup-info.js";
import { print, printJson } from "./print.js";
import { PgprovError } from "../common/errors.js";

interface Common {
  inventory: string;
  /** The playbook that reconfigures the cluster after the operation (as apply's --playbook). */
  playbook: string;
  acceptNewHostKeys: boolean;
  json: boolean;
  dryRun: boolean;
}

interface Prepared {
  inventory: Inventory;
  playbook: ClusterPlaybook;
  emit: (e: ClusterEvent) => void;
  /** The operation's last word: a line, or the result event under --json. */
  result: (operation: OperationName, r: { failed: boolean } & Record<string, unknown>, lines: string[]) => number;
  /** After a dry run: every check passed, nothing changed. */
  dryRunDone: (operation: OperationName) => number;
}

function prepare(args: Common): Prepared {
  const inventory = loadInventoryWarning(args.inventory);
  const playbook = loadClusterPlaybook(args.playbook, inventory);
  const renderer = args.json
    ? new JsonRenderer(printJson)
    : new PlainRenderer({ diff: false, verbose: false, color: process.stdout.isTTY === true && !process.env.NO_COLOR, write: print });
  const emit = (e: ClusterEvent) => renderer.event(e);
  return {
    inventory,
    playbook,
    emit,
    result: (operation, r, lines) => {
      if (args.json) emit({ type: "result", operation, dryRun: false, ...r });
      else print(`\n${lines.join("\n")}\n`);
      return r.failed ? 1 : 0;
    },
    dryRunDone: (operation) => {
      if (args.json) emit({ type: "result", operation, dryRun: true, failed: false, wouldProceed: true });
      else print(`\ndry run: nothing was changed; ${operation} would proceed as above\n`);
      return 0;
    },
  };
}

/** The question a terminal is asked once the plan is shown (confirm.ts). */
function askFor(operation: string, args: { yes: boolean; dryRun: boolean }) {
  const ask = confirmation(operation, args);
  return ask ? { confirm: (plan: OperationPlan) => ask(`${plan.operation}: carry out the steps above?`) } : {};
}

export async function switchoverCommand(args: Common & { to: string; maxLag: string }): Promise<number> {
  const maxLagBytes = parseByteSize(args.maxLag, "--max-lag");
  const { inventory, playbook, emit, result, dryRunDone } = prepare(args);
  const r = await switchover(inventory, playbook, { to: args.to, maxLagBytes, catchUpTimeoutMs: 30_000, acceptNewHostKeys: args.acceptNewHostKeys, dryRun: args.dryRun, emit });
  if (!r) return dryRunDone("switchover");
  return result("switchover", { ...r }, [
    `switchover to ${r.newPrimary}: ${r.failed ? "FAILED after the promotion (see above)" : "done"}; no server accepted writes for ${r.writeWindowSeconds.toFixed(2)} s`,
    `inventory rewritten: ${r.inventoryChanges.join(", ")}`,
  ]);
}

export async function failoverCommand(args: Common & { to?: string; force: boolean; yes: boolean }): Promise<number> {
  const { inventory, playbook, emit, result, dryRunDone } = prepare(args);
  const consent = askFor("failover", args);
  const r = await failover(inventory, playbook, { ...(args.to ? { to: args.to } : {}), force: args.force, acceptNewHostKeys: args.acceptNewHostKeys, dryRun: args.dryRun, ...consent, emit });
  if (!r) return dryRunDone("failover");
  return result("failover", { ...r }, [`failover: ${r.newPrimary} is the primary${r.failed ? ", but the cluster playbook FAILED (see above)" : ""}`, `committed transactions: ${r.committedTransactionsSafe ? "none lost (proven by the synchronous standbys read, or by the old primary's WAL read to its clean end)" : "may be lost (see above)"}`, `inventory rewritten: ${r.inventoryChanges.join(", ")}`]);
}

export async function rejoinCommand(args: Common & { host: string; reclone: boolean; discardDiverged: boolean; yes: boolean }): Promise<number> {
  const { inventory, playbook, emit, result, dryRunDone } = prepare(args);
  const consent = askFor("rejoin", args);
  const r = await rejoin(inventory, playbook, args.host, { reclone: args.reclone, discardDiverged: args.discardDiverged, acceptNewHostKeys: args.acceptNewHostKeys, dryRun: args.dryRun, ...consent, emit });
  if (!r) return dryRunDone("rejoin");
  const how = { rewind: " (pg_rewind)", clone: " (cloned)", configure: "" }[r.method];
  return result("rejoin", { ...r }, [`rejoin of ${r.host}: ${r.failed ? "FAILED (see above)" : `done${how}`}`]);
}

export async function restoreCommand(args: Common & { to?: string; latest: boolean; backup?: string; yes: boolean }): Promise<number> {
  const given = [args.to !== undefined, args.latest, args.backup !== undefined].filter(Boolean).length;
  if (given !== 1) throw new PgprovError("restore: give exactly one of --to TIME, --latest or --backup LABEL");
  const target: RestoreTarget = args.to !== undefined ? { kind: "time", time: parseRestoreTime(args.to) } : args.latest ? { kind: "latest" } : { kind: "backup", label: args.backup! };
  const consent = askFor("restore", args);
  const { inventory, playbook, emit, result, dryRunDone } = prepare(args);
  const r = await restore(inventory, playbook, { target, acceptNewHostKeys: args.acceptNewHostKeys, dryRun: args.dryRun, ...consent, emit });
  if (!r) return dryRunDone("restore");
  return result("restore", { ...r }, [
    `restore of ${r.primary} ${r.target}: ${r.failed ? "FAILED after the restore (see above)" : "done"}; cloned again: ${r.recloned.join(", ") || "none"}`,
    ...(r.kept ? [`the data directory of before the restore is kept as ${r.kept}: pgprov never deletes it; remove it once the restore is what you wanted`] : []),
  ]);
}
