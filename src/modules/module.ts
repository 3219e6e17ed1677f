/**
 * What a task module is: read, decide, act. `probe` and `act` produce shell; `decide` is pure, so
 * every check a module makes is a unit-testable function of the probe's output. Check mode runs
 * probe and decide only: a dry run costs no extra code in any module.
 */
import type { z } from "zod";
import type { Decision } from "../engine/change.js";

/** Everything a module may know about where it runs, besides its own arguments. */
export interface ModuleContext {
  /** The directory of the playbook, for `src` paths. */
  playbookDir: string;
  /** From the inventory's `apt.proxy`; reaches apt through a pipe, never a file or an argument. */
  aptProxy?: string;
  /** Renders a template with this host's variables; `where` names it in errors. */
  render(text: string, where: string): string;
}

/** What a probe printed (shell), or the rows its query returned (SQL). */
export interface ProbeOutput {
  stdout: string;
  stderr: string;
  code: number;
  /** For a SQL probe: its rows; undefined when the query could not run (see `error`). */
  rows?: Record<string, unknown>[];
  /** For a SQL probe that could not run: why (server down, not reachable, ...). */
  error?: string;
}

/** A probe: shell that prints the state, or one SQL statement whose rows are the state. */
export type Probe = string | { sql: string };

/** One remote command of an act: what runs, and how it is shown when it fails. */
export type Command =
  | {
      script: string;
      /** Shown in failure messages instead of `script` (which may carry file content). */
      display?: string;
      /** Bound on this command, when it may legitimately be slow (package installs). */
      timeoutMs?: number;
      /**
       * Stopped halfway, it leaves more to repair than it would finish (a dpkg run): when the
       * connection goes away, the host lets it finish, within its bound, instead of ending it.
       */
      letFinish?: boolean;
    }
  | {
      /** Run on the host's PostgreSQL through the SSH connection. */
      sql: string;
      /** Shown in failure messages instead of `sql` (which may carry a password verifier). */
      display: string;
    };

export interface Module<Args = any, Detail = any> {
  name: string;
  /**
   * Changes nothing, ever. Such a task runs whatever --tags says, and a play of such tasks runs
   * on all its hosts whatever --limit says: reads that safety checks rest on cannot be skipped.
   */
  readOnly?: boolean;
  /** Validated after templating and before any host is touched. */
  args: z.ZodType<Args>;
  /** Optional: turn validated args into what probe/decide/act use (e.g. read a template file). */
  prepare?(args: Args, context: ModuleContext): Args;
  /** Shell that prints the current state, or a SQL query. Batched with the play's other probes. */
  probe(args: Args, context: ModuleContext): Probe;
  /** Pure: the changes that would make the state match the args, or none with a reason. */
  decide(args: Args, state: ProbeOutput, context: ModuleContext): Decision<Detail>;
  /** The commands that make it so. Only called with a decision that has changes. */
  act(args: Args, decision: Decision<Detail>, context: ModuleContext): Command[];
}

/** A task that cannot go on: the engine reports it with host, play, task, and these details. */
export class TaskFailure extends Error {
  constructor(message: string, readonly detail: { command?: string; code?: number; stderr?: string } = {}) {
    super(message);
  }
}
