import { loadInventoryWarning } from "./inventory.js";
import { applyCluster } from "../cluster/apply.js";
import { loadClusterPlaybook } from "../cluster/playbook.js";
import { JsonRenderer } from "../output/json.js";
import { PlainRenderer } from "../output/plain.js";
import type { Renderer } from "../output/renderer.js";
import { PgprovError } from "../common/errors.js";
import { matchHosts } from "../inventory/select.js";
import { confirmation } from "./confirm.js";
import { print, printJson } from "./print.js";

export interface ApplyArgs {
  inventory: string;
  playbook: string;
  check: boolean;
  diff: boolean;
  limit?: string[];
  tags?: string[];
  forks?: number;
  json: boolean;
  verbose: boolean;
  /** No confirmation for --reclone. */
  yes: boolean;
  acceptNewHostKeys: boolean;
  reclone?: string[];
  /** Bound on waiting for the standbys to stream, after the playbook. */
  streamingTimeoutMs?: number;
}

/** Exit codes: 0 done (or nothing to change under --check), 1 failed, 2 changes pending under --check. */
export async function applyCommand(args: ApplyArgs): Promise<number> {
  const inventory = loadInventoryWarning(args.inventory);
  const names = inventory.hosts.map((h) => h.name);
  const limit = args.limit ? matchHosts(args.limit, names, "--limit") : undefined;
  const reclone = args.reclone ? matchHosts(args.reclone, names, "--reclone") : undefined;
  for (const name of reclone ?? []) {
    if (name === inventory.primary.name) throw new PgprovError(`--reclone: ${name} is the primary; pgprov never replaces the primary's data`);
  }
  const playbook = loadClusterPlaybook(args.playbook, inventory);
  if (reclone && !args.check) {
    const ask = confirmation("apply --reclone", { yes: args.yes });
    const question = `apply may replace the data of ${reclone.join(", ")} with a fresh clone of ${inventory.primary.name} (where it is not the primary's), losing what is there: go on?`;
    if (ask && !(await ask(question))) throw new PgprovError("apply --reclone not confirmed: nothing was changed");
  }
  const renderer = await pickRenderer(args);
  const summary = await applyCluster(inventory, playbook, {
    check: args.check,
    ...(limit ? { limit } : {}),
    ...(args.tags ? { tags: args.tags } : {}),
    ...(args.forks ? { forks: args.forks } : {}),
    ...(reclone ? { reclone } : {}),
    ...(args.streamingTimeoutMs ? { streamingTimeoutMs: args.streamingTimeoutMs } : {}),
    acceptNewHostKeys: args.acceptNewHostKeys,
    // Only the tree on a terminal shows an act's progress (pg_basebackup's -P costs a pass over the primary's files).
    progress: renderer.showsProgress === true,
    emit: (e) => renderer.event(e),
  });
  await renderer.finish();
  if (summary.failed) return 1;
  return args.check && summary.changed ? 2 : 0;
}

async function pickRenderer(args: ApplyArgs): Promise<Renderer> {
  const write = print;
  if (args.json) return new JsonRenderer(printJson);
  const options = { diff: args.diff, verbose: args.verbose, color: process.stdout.isTTY === true && !process.env.NO_COLOR, write };
  if (!process.stdout.isTTY || process.env.CI) return new PlainRenderer(options);
  // Loaded only for a terminal: logs, CI and --json runs do not pay for listr2's start-up.
  const { TreeRenderer } = await import("../output/tree.js");
  return new TreeRenderer(options);
}
