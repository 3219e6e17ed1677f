/**
 * What a cluster operation reports: the engine's events, the standbys' replication after apply,
 * and a day-2 operation's own: its timed steps, the plan its checks chose (all a dry run does),
 * and its result (the CLI's last line).
 */
import type { RunEvent } from "../engine/events.js";
import type { StandbyReplication } from "../postgres/read.js";

export type OperationName = "switchover" | "failover" | "rejoin" | "restore";

/** What an operation's checks found and the steps they chose, before anything changes. */
export interface OperationPlan {
  operation: OperationName;
  /** The facts the steps were chosen by: the candidate and its LSN, the lag, what is fenced. */
  facts: Record<string, string | number | boolean | string[]>;
  /** What it does, in order. */
  steps: string[];
}

export type OperationEvent =
  | { type: "step"; operation: OperationName; seconds: number; message: string }
  | ({ type: "plan"; dryRun: boolean } & OperationPlan)
  | ({ type: "result"; operation: OperationName; dryRun: boolean; failed: boolean } & Record<string, unknown>);

export type ClusterEvent =
  | RunEvent
  | { type: "replication"; primary: string; standbys: StandbyReplication[] }
  | OperationEvent;

export type ClusterEmit = (event: ClusterEvent) => void;
