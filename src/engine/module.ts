/**
 * What a task module is: read, then decide. `probe` produces shell that prints the state;
 * `decide` is pure and returns the changes with the commands that carry them out, so every check
 * a module makes is a unit-testable function of the probe's output, and check mode and apply share
 * one path (apply runs the commands of the very decisions check mode prints).
 */
import type { z } from "zod";
import type { Decision } from "./change.js";

/** Everything a module may know about where it runs, besides its own arguments. */
export interface ModuleContext {
  /** The directory of the playbook, for `src` paths. */
  playbookDir: string;
  /** Renders a template with this host's variables; `where` names it in errors. */
  render(text: string, where: string): string;
  /** Whether a terminal shows an act's progress (Command.progress): otherwise a module need not pay to report it. */
  progress?: boolean;
}

/** What a probe printed. */
export interface ProbeOutput {
  stdout: string;
  stderr: string;
  code: number;
  /** The round trip that read it (`-v` shows it): its time, and how many checks shared it. */
  roundTrip?: { ms: number; checks: number };
}

/**
 * Reads many items with one process where a probe per item would start one each: one
 * `systemctl show` for every unit of a batch, one `stat` and one `sha256sum` for every file, one
 * psql for every query. The engine gathers the items of a batch by reader `name` (readers of the
 * same name must be interchangeable) into one shell section, and hands each task its own part.
 */
export interface ProbeReader<Item> {
  name: string;
  script(items: Item[]): string;
  /** One output per item, in order. */
  split(output: ProbeOutput, items: Item[]): ProbeOutput[];
}

export interface SharedProbe<Item = unknown> {
  reader: ProbeReader<Item>;
  item: Item;
}

/** A probe: shell that prints the state, or an item of a shared reader. */
export type Probe = string | SharedProbe<any>;

export interface Module<Args = any, Value = unknown> {
  name: string;
  /**
   * Changes nothing, ever. Such a task runs whatever --tags says, and a play of such tasks runs
   * on all its hosts whatever --limit says: reads that safety checks rest on cannot be skipped.
   */
  readOnly?: boolean;
  /** Validated after templating and before any host is touched. */
  args: z.ZodType<Args>;
  /** Optional: turn validated args into what probe/decide use (e.g. read a template file). */
  prepare?(args: Args, context: ModuleContext): Args;
  /** Shell that prints the current state. Batched with the other probes of the host. */
  probe(args: Args, context: ModuleContext): Probe;
  /** Pure: the changes (with their commands) that would make the state match the args, or none with a reason. */
  decide(args: Args, state: ProbeOutput, context: ModuleContext): Decision<Value>;
}

/** A task that cannot go on: the engine reports it with host, play, task, and these details. */
export class TaskFailure extends Error {
  constructor(message: string, readonly detail: { command?: string; code?: number; stderr?: string } = {}) {
    super(message);
  }
}
