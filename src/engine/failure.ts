/** Failures: one ends its host's run (the others finish the play), and is reported with host, play, task and command. */
import { PgprovError } from "../common/errors.js";
import type { RunEvent } from "./events.js";
import { lastLines } from "../common/text.js";
import { type Module, TaskFailure } from "./module.js";
import type { Task } from "../playbook/playbook.js";

export type FailureEvent = Extract<RunEvent, { type: "failure" }>;

/** A failure on one host: ends that host's run; the others finish the play. */
export class HostFailure extends Error {
  constructor(readonly event: FailureEvent) {
    super(event.message);
  }
}

export function failureEvent(host: string, play: string, p: { task: Task<Module>; name: string } | undefined, e: unknown): FailureEvent {
  if (!(e instanceof PgprovError || e instanceof TaskFailure)) throw e; // a bug: let it show its stack
  const detail = e instanceof TaskFailure ? e.detail : {};
  return {
    type: "failure",
    host,
    play,
    ...(p ? { task: p.name, where: p.task.where } : {}),
    message: e.message,
    ...(detail.command !== undefined ? { command: detail.command } : {}),
    ...(detail.code !== undefined ? { code: detail.code } : {}),
    ...(detail.stderr ? { stderr: lastLines(detail.stderr, 20).join("\n") } : {}),
  };
}
