/**
 * Read-only modules: they change nothing and expose what they read through `register`, for the
 * safety checks and the verification `pgprov apply` makes around the cluster playbook.
 * - pg_data_directory: the data directory's state, from files (see cluster/data-directory.ts);
 * - pg_replication: the primary's view of its standbys (pg_stat_replication and the slots).
 */
import { z } from "zod";
import { dataDirectoryProbe, parseDataDirectory } from "./data-directory.js";
import { noChange } from "../engine/change.js";
import type { StandbyReplication } from "../engine/events.js";
import type { Module } from "../engine/module.js";

export const dataDirectoryArgs = z.strictObject({
  data_directory: z.string().regex(/^\/.+/, "an absolute path"),
  bin_directory: z.string().regex(/^\/.+/, "an absolute path"),
});

export const pgDataDirectory: Module<z.output<typeof dataDirectoryArgs>> = {
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
  act: () => [],
};

export const REPLICATION_QUERY = `select r.application_name, r.state, r.sync_state,
  pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::bigint as lag_bytes,
  coalesce(extract(epoch from r.replay_lag), 0)::float8 as lag_seconds,
  s.slot_name, s.active as slot_active
  from pg_stat_replication r left join pg_replication_slots s on s.active_pid = r.pid
  order by r.application_name`;

/** One standby in the rows of REPLICATION_QUERY: "absent" when the primary does not see it. */
export function standbyReplication(name: string, rows: Record<string, unknown>[]): StandbyReplication {
  const row = rows.find((r) => r.application_name === name);
  if (!row) return { host: name, state: "absent" };
  return {
    host: name,
    state: String(row.state),
    lagBytes: Number(row.lag_bytes ?? 0),
    lagSeconds: Number(row.lag_seconds ?? 0),
    ...(row.slot_name ? { slot: String(row.slot_name), slotActive: row.slot_active === true } : {}),
  };
}

export const pgReplication: Module<Record<string, never>> = {
  name: "pg_replication",
  readOnly: true,
  args: z.strictObject({}),
  probe: () => ({ sql: REPLICATION_QUERY }),
  decide(_args, state) {
    if (state.error !== undefined) return noChange(`cannot read pg_stat_replication: ${state.error}`, []);
    const rows = state.rows ?? [];
    return noChange(`${rows.filter((r) => r.state === "streaming").length} standby(s) streaming`, rows);
  },
  act: () => [],
};

/** The primary's identity, read over SQL just before the standbys are cloned from it. */
export const pgControl: Module<Record<string, never>> = {
  name: "pg_control",
  readOnly: true,
  args: z.strictObject({}),
  probe: () => ({ sql: "select system_identifier::text as system_identifier, timeline_id from pg_control_system(), pg_control_checkpoint()" }),
  decide(_args, state) {
    if (state.error !== undefined) return noChange(`cannot read pg_control: ${state.error}`, {});
    const row = state.rows?.[0] ?? {};
    return noChange(`system identifier ${String(row.system_identifier)}, timeline ${String(row.timeline_id)}`, row);
  },
  act: () => [],
};
