/**
 * Read-only modules: they change nothing and return what they read, typed, for the safety checks
 * and the verification `pgprov apply` makes around the cluster playbook (found by module, see
 * engine/results.ts), and for `register`.
 * - pg_data_directory: the data directory's state, from files (see data-directory.ts);
 * - pg_control: the primary's identity, over SQL;
 * - pg_replication: the primary's view of its standbys (pg_stat_replication and the slots).
 */
import { z } from "zod";
import { noChange } from "../engine/change.js";
import type { Module } from "../engine/module.js";
import { type DataDirectory, dataDirectoryProbe, parseDataDirectory } from "./data-directory.js";
import { type Row, rowsOf, type Sql } from "./psql.js";

export const dataDirectoryArgs = z.strictObject({
  data_directory: z.string().regex(/^\/.+/, "an absolute path"),
  bin_directory: z.string().regex(/^\/.+/, "an absolute path"),
});

export const pgDataDirectory: Module<z.output<typeof dataDirectoryArgs>, DataDirectory> = {
  name: "pg_data_directory",
  readOnly: true,
  args: dataDirectoryArgs,
  probe: (args) => dataDirectoryProbe(args.data_directory, args.bin_directory),
  decide(args, state) {
    const d = parseDataDirectory(state.stdout);
    const summary = d.systemIdentifier
      ? `system identifier ${d.systemIdentifier}, ${d.running ? (d.standbySignal ? "running as a standby" : "running, writable") : "not running"}`
      : `${args.data_directory} holds no cluster`;
    return noChange(summary, d);
  },
};

/**
 * The standbys a server streams to (a standby too, to its cascading standbys), lag counted from
 * what that server has: its current WAL, or a standby's received WAL.
 */
export const REPLICATION_QUERY = `select r.application_name, r.state, r.sync_state,
  pg_wal_lsn_diff(case when pg_is_in_recovery() then pg_last_wal_receive_lsn() else pg_current_wal_lsn() end, r.replay_lsn)::bigint as lag_bytes,
  coalesce(extract(epoch from r.replay_lag), 0)::float8 as lag_seconds,
  s.slot_name, s.active as slot_active
  from pg_stat_replication r left join pg_replication_slots s on s.active_pid = r.pid
  order by r.application_name`;

/** One standby as the primary sees it (pg_stat_replication and its slot). */
export interface StandbyReplication {
  host: string;
  /** "streaming", "catchup", ...; "absent" when the primary does not see it at all. */
  state: string;
  /** pg_stat_replication's sync_state: async, potential, sync or quorum. */
  syncState?: string;
  lagBytes?: number;
  lagSeconds?: number;
  slot?: string;
  slotActive?: boolean;
  /** The standby it streams from, when it is not the primary (cascading). */
  upstream?: string;
}

/** One standby in the rows of REPLICATION_QUERY: "absent" when the primary does not see it. */
export function standbyReplication(name: string, rows: Row[]): StandbyReplication {
  const row = rows.find((r) => r.application_name === name);
  if (!row) return { host: name, state: "absent" };
  return {
    host: name,
    state: String(row.state),
    ...(row.sync_state ? { syncState: String(row.sync_state) } : {}),
    lagBytes: Number(row.lag_bytes ?? 0),
    lagSeconds: Number(row.lag_seconds ?? 0),
    ...(row.slot_name ? { slot: String(row.slot_name), slotActive: row.slot_active === true } : {}),
  };
}

export function pgReplication(sql: Sql): Module<Record<string, never>, Row[]> {
  return {
    name: "pg_replication",
    readOnly: true,
    args: z.strictObject({}),
    probe: () => sql.probe(REPLICATION_QUERY),
    decide(_args, state) {
      const read = rowsOf(state);
      if ("error" in read) return noChange(`cannot read pg_stat_replication: ${read.error}`, []);
      return noChange(`${read.rows.filter((r) => r.state === "streaming").length} standby(s) streaming`, read.rows);
    },
  };
}

/** The primary's identity, as pg_control_system() gives it. */
export interface ControlData {
  system_identifier?: string;
  timeline_id?: number;
}

/** The primary's identity, read over SQL just before the standbys are cloned from it. */
export function pgControl(sql: Sql): Module<Record<string, never>, ControlData> {
  return {
    name: "pg_control",
    readOnly: true,
    args: z.strictObject({}),
    probe: () => sql.probe("select system_identifier::text as system_identifier, timeline_id from pg_control_system(), pg_control_checkpoint()"),
    decide(_args, state) {
      const read = rowsOf(state);
      if ("error" in read) return noChange(`cannot read pg_control: ${read.error}`, {});
      const row = (read.rows[0] ?? {}) as ControlData;
      return noChange(`system identifier ${String(row.system_identifier)}, timeline ${String(row.timeline_id)}`, row);
    },
  };
}
