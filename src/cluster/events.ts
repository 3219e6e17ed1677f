/** What a cluster operation reports: the engine's events, and the standbys' replication after apply. */
import type { RunEvent } from "../engine/events.js";
import type { StandbyReplication } from "../postgres/read.js";

export type ClusterEvent =
  | RunEvent
  | { type: "replication"; primary: string; standbys: StandbyReplication[] }
  /** Something that works but that a person should know before relying on it (a synchronous count every standby must meet). */
  | { type: "warning"; message: string };

export type ClusterEmit = (event: ClusterEvent) => void;
