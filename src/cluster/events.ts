/** What a cluster operation reports: the engine's events, and the standbys' replication after apply. */
import type { RunEvent } from "../engine/events.js";
import type { StandbyReplication } from "../postgres/read.js";

export type ClusterEvent = RunEvent | { type: "replication"; primary: string; standbys: StandbyReplication[] };

export type ClusterEmit = (event: ClusterEvent) => void;
