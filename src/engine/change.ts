/**
 * The plan is a value: for each task on each host, a list of Changes drawn from a closed set of
 * actions. Check mode prints it, --json emits it, tests assert on it, safety rules inspect it,
 * and apply carries out exactly it.
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

export interface Change {
  action: Action;
  /** One line a person reads: "install postgresql-15", "write /etc/x (mode 0640 -> 0600)". */
  summary: string;
  /** A unified diff, for files. Secrets are masked before it is shown anywhere. */
  diff?: string;
  /** Loses data if wrong: needs explicit consent. */
  destructive?: boolean;
}

/** What a module decided for one task on one host; `detail` carries what its act needs. */
export interface Decision<Detail = unknown> {
  changes: Change[];
  detail?: Detail;
  /** Why nothing needs doing, when `changes` is empty: "postgresql-15 15.8 is installed". */
  reason?: string;
  /** A value the task exposes to `register` besides changed/skipped (command output, a state read). */
  value?: unknown;
}

export function noChange(reason: string, value?: unknown): Decision<never> {
  return value === undefined ? { changes: [], reason } : { changes: [], reason, value };
}
