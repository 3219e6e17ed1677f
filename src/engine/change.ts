/**
 * The plan is a value: for each task on each host, a list of Changes drawn from a closed set of
 * actions, each with the commands that carry it out. A module's `decide` returns them; check mode
 * prints them, --json emits them (without the commands: they may hold file content), tests assert
 * on them, and apply runs exactly those commands, nothing else.
 */
export const ACTIONS = {
  create: "+",
  update: "~",
  delete: "-",
  start: ">",
  stop: "■",
  restart: "↻",
  reload: "↺",
  run: "!",
} as const;

export type Action = keyof typeof ACTIONS;

/** One remote command: shell, run on the host's one shell, stdin closed. */
export interface Command {
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
  /**
   * The commands that follow depend on what this one printed, and on work done on the control
   * machine (a signing request to sign, say): the engine runs the commands up to this one, hands
   * its stdout to `next`, and runs what it returns in another round trip. Checked by the same
   * `decide`, so plan shows the change; only its carrying out takes the extra round trip.
   */
  next?: (stdout: string) => Promise<Command[]>;
  /**
   * The progress a long command prints on stderr (pg_basebackup's): `show` turns the last line
   * `line` matches into what a terminal shows while it runs; those lines are left out of the
   * stderr a failure reports.
   */
  progress?: { line: RegExp; show: (match: RegExpExecArray) => string };
}

export interface Change {
  action: Action;
  /** One line a person reads: "install postgresql-15", "write /etc/x (mode 0640 -> 0600)". */
  summary: string;
  /** A unified diff, for files. Secrets are masked before it is shown anywhere. */
  diff?: string;
  /** Loses data if wrong: needs explicit consent. */
  destructive?: boolean;
  /**
   * What carries the change out, in order. Empty only when an earlier change of the same task
   * carries this one out too (a file written with its new mode at once).
   */
  commands: Command[];
}

/** A change as events and renderers see it: what and why, never how. */
export type PlannedChange = Omit<Change, "commands">;

/** What a module decided for one task on one host. */
export interface Decision<Value = unknown> {
  changes: Change[];
  /** Why nothing needs doing, when `changes` is empty: "postgresql-15 15.8 is installed". */
  reason?: string;
  /** What the task read, typed by its module: for `register`, and for RunResults (see results.ts). */
  value?: Value;
  /** What a person should know and pgprov does not change (a database's encoding differing from the inventory's). */
  warnings?: string[];
}

export function noChange<Value>(reason: string, value?: Value): Decision<Value> {
  return value === undefined ? { changes: [], reason } : { changes: [], reason, value };
}

export function planned(changes: readonly Change[]): PlannedChange[] {
  return changes.map(({ commands: _commands, ...change }) => change);
}
