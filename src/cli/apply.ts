import { loadInventoryWarning } from "./inventory.js";
import { applyCluster } from "../cluster/apply.js";
import { loadClusterPlaybook } from "../cluster/playbook.js";
import { JsonRenderer } from "../output/json.js";
import { PlainRenderer } from "../output/plain.js";
import type { Renderer } from "../output/renderer.js";
import { PgprovError } from "../common/errors.js";
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
  acceptNewHostKeys: boolean;
  reclone?: string[];
  /** Bound on waiting for the standbys to stream, after the playbook. */
  streamingTimeoutMs?: number;
}

/** Exit codes: 0 done (or nothing to change under --check), 1 failed, 2 changes pending under --check. */
export async function applyCommand(args: ApplyArgs): Promise<number> {
  const inventory = loadInventoryWarning(args.inventory);
  for (const [flag, names] of [["--limit", args.limit], ["--reclone", args.reclone]] as const) {
    for (const name of names ?? []) {
      if (!inventory.hosts.some((h) => h.name === name)) throw new PgprovError(`${flag}: no host named "${name}" in ${args.inventory}`);
    }
  }
  for (const name of args.reclone ?? []) {
    if (name === inventory.primary.name) throw new PgprovError(`--reclone: ${name} is the primary; pgprov never replaces the primary's data`);
  }
  const playbook = loadClusterPlaybook(args.playbook, inventory);
  const renderer = await pickRenderer(args);
  const summary = await applyCluster(inventory, playbook, {
    check: args.check,
    ...(args.limit ? { limit: args.limit } : {}),
    ...(args.tags ? { tags: args.tags } : {}),
    ...(args.forks ? { forks: args.forks } : {}),
    ...(args.reclone ? { reclone: args.reclone } : {}),
    ...(args.streamingTimeoutMs ? { streamingTimeoutMs: args.streamingTimeoutMs } : {}),
    acceptNewHostKeys: args.acceptNewHostKeys,
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
