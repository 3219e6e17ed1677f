/**
 * Rendering a task for one host: its name, `when` and arguments, with the variables the caller
 * gives (the cluster layer's: inventory, host, groups, facts, what the run has read so far) and
 * the values earlier tasks registered on top.
 */
import { z } from "zod";
import { isTruthy, renderValue } from "../playbook/template.js";
import type { Task } from "../playbook/playbook.js";
import { type Module, type ModuleContext, type Probe, type ProbeOutput, TaskFailure } from "./module.js";

/** One task made ready on one host: rendered, validated, and either skipped or with its probe. */
export interface Prepared {
  task: Task<Module>;
  name: string;
  skip?: string;
  args?: unknown;
  probe?: Probe;
  /** What the probe printed, once read. */
  output?: ProbeOutput;
}

/** Renders `when` and the arguments, validates them, and lets the module prepare them. Throws on bad input. */
export function prepareTask(task: Task<Module>, vars: Record<string, unknown>, context: ModuleContext): Prepared {
  const name = renderName(task, vars);
  if (task.when !== undefined && !isTruthy(renderValue(task.when, vars, `${task.where}: when`))) {
    return { task, name, skip: `when: ${String(task.when)}` };
  }
  const rendered = renderValue(task.args, vars, `${task.where}: ${task.moduleName}`);
  const parsed = task.module.args.safeParse(rendered);
  if (!parsed.success) {
    throw new TaskFailure(`${task.where}: invalid ${task.moduleName} arguments after templating:\n${z.prettifyError(parsed.error)}`);
  }
  const args = task.module.prepare ? task.module.prepare(parsed.data, context) : parsed.data;
  return { task, name, args, probe: task.module.probe(args, context) };
}

export function renderName(task: Task<Module>, vars: Record<string, unknown>): string {
  try {
    return String(renderValue(task.name, vars, `${task.where}: name`));
  } catch {
    return task.name;
  }
}

/**
 * Tasks from `from` on that can be rendered together: up to the first that reads a value a task
 * between them registers (its check must wait for that value).
 */
export function batchFrom(tasks: Task<Module>[], from: number): number[] {
  const registeredHere = new Set<string>();
  const batch: number[] = [];
  for (let i = from; i < tasks.length; i++) {
    if (i > from && tasks[i]!.reads.some((v) => registeredHere.has(v))) break;
    batch.push(i);
    if (tasks[i]!.register) registeredHere.add(tasks[i]!.register!);
  }
  return batch;
}
