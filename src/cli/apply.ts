import { loadInventory } from "../inventory/inventory.js";
import { FACT_KEYS } from "../engine/facts.js";
import { runPlaybook } from "../engine/run.js";
import { variableNames } from "../engine/variables.js";
import { loadPlaybook } from "../playbook/playbook.js";
import { JsonRenderer } from "../output/json.js";
import { PlainRenderer } from "../output/plain.js";
import type { Renderer } from "../output/renderer.js";
import { TreeRenderer } from "../output/tree.js";
import { PgprovError } from "../errors.js";

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
}

/** Exit codes: 0 done (or nothing to change under --check), 1 failed, 2 changes pending under --check. */
export async function applyCommand(args: ApplyArgs): Promise<number> {
  const inventory = loadInventory(args.inventory);
  for (const name of args.limit ?? []) {
    if (!inventory.hosts.some((h) => h.name === name)) throw new PgprovError(`--limit: no host named "${name}" in ${args.inventory}`);
  }
  const playbook = loadPlaybook(args.playbook, {
    hostNames: inventory.hosts.map((h) => h.name),
    variables: variableNames(inventory),
    factKeys: FACT_KEYS,
  });
  const renderer = pickRenderer(args);
  const summary = await runPlaybook(inventory, playbook, {
    check: args.check,
    ...(args.limit ? { limit: args.limit } : {}),
    ...(args.tags ? { tags: args.tags } : {}),
    ...(args.forks ? { forks: args.forks } : {}),
    acceptNewHostKeys: args.acceptNewHostKeys,
    secrets: inventory.secrets.map((s) => s.reveal()),
    emit: (e) => renderer.event(e),
  });
  await renderer.finish();
  if (summary.failed) return 1;
  return args.check && summary.changed ? 2 : 0;
}

function pickRenderer(args: ApplyArgs): Renderer {
  const write = (text: string) => process.stdout.write(text);
  if (args.json) return new JsonRenderer({ write });
  const options = { diff: args.diff, verbose: args.verbose, color: process.stdout.isTTY === true && !process.env.NO_COLOR, write };
  return process.stdout.isTTY && !process.env.CI ? new TreeRenderer(options) : new PlainRenderer(options);
}
