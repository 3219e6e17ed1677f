/** What a cluster operation reports: the engine's events, and the standbys' replication after apply. */
import type { RunEvent } from "../engine/events.js";
import type { StandbyReplication } from "../postgres/read.js";

export type ClusterEvent =
  | RunEvent
  | { type: "replication"; primary: string; standbys: StandbyReplication[] }
  /** Something a person should know on every run (TLS turned off, say); changes nothing. */
  | { type: "warning"; message: string };

export type ClusterEmit = (event: ClusterEvent) => void;
