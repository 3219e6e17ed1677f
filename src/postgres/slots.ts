/**
 * pg_slots: the physical replication slots of the cluster's standbys, on the primary. Exactly
 * the slots named exist among those with pgprov's prefix: a slot of a standby removed from the
 * inventory is dropped (it would hold WAL forever), and slots pgprov did not make are left alone.
 */
import { z } from "zod";
import { type Change, noChange } from "../engine/change.js";
import { rowsOf, type Sql } from "./psql.js";
import { SLOT_PREFIX } from "./slot-names.js";
import { sqlLiteral } from "../common/sql.js";
import type { Module } from "../engine/module.js";

export const slotsArgs = z.strictObject({
  names: z.array(z.string().regex(/^[a-z0-9_]{1,63}$/, "a slot name: lower-case letters, digits and _")).default([]),
});
export type SlotsArgs = z.output<typeof slotsArgs>;

export function pgSlots(sql: Sql): Module<SlotsArgs> {
  return {
    name: "pg_slots",
    args: slotsArgs,

    probe: () => sql.probe(`select slot_name, slot_type, active, wal_status from pg_replication_slots where starts_with(slot_name, ${sqlLiteral(SLOT_PREFIX)})`),

    decide(args, state) {
      const wanted = args.names;
      const create = (n: string, summary: string): Change => ({
        action: "create",
        summary,
        // Reserve WAL from now on: the standby's clone starts from a point the slot already holds.
        commands: [sql.command([`select pg_create_physical_replication_slot(${sqlLiteral(n)}, true)`], `select pg_create_physical_replication_slot('${n}', true)`)],
      });
      const read = rowsOf(state);
      if ("error" in read) return { changes: wanted.map((n) => create(n, `slot ${n} (cannot read slots now: ${read.error})`)) };
      const existing = new Map(read.rows.map((r) => [String(r.slot_name), r]));
      // A slot invalidated by max_slot_wal_keep_size (wal_status lost) can no longer be streamed
      // from: made again, from now on; its standby fetches what it missed from the archive
      // (restore_command), with no clone.
      const lost = wanted.filter((n) => existing.get(n)?.wal_status === "lost");
      const changes: Change[] = [
        ...wanted.filter((n) => !existing.has(n)).map((n) => create(n, `create physical replication slot ${n}`)),
        ...lost.map(
          (n): Change => ({
            action: "update",
            summary: `make slot ${n} again: max_slot_wal_keep_size invalidated it (wal_status lost); its standby catches up from the WAL archive`,
            commands: [
              sql.command(
                [dropSlot(n), `select pg_create_physical_replication_slot(${sqlLiteral(n)}, true)`],
                `select pg_drop_replication_slot('${n}'), then pg_create_physical_replication_slot('${n}', true)`,
              ),
            ],
          }),
        ),
        ...[...existing.keys()]
          .filter((n) => !wanted.includes(n))
          .map((n): Change => ({
            action: "delete",
            summary: `drop slot ${n}: no standby of the inventory uses it${existing.get(n)!.active ? " (still in use: its WAL sender is ended first)" : ""}`,
            commands: [sql.command([dropSlot(n)], `end the WAL sender on slot ${n}, then select pg_drop_replication_slot('${n}')`)],
          })),
      ];
      return changes.length ? { changes } : noChange(wanted.length ? `slots ${wanted.join(", ")} exist` : "no slots wanted, none of pgprov's exist");
    },
  };
}

/**
 * A standby removed from the inventory may still stream on its slot (pg_hba's reload keeps open
 * connections): end its WAL sender, wait (bounded) for the slot to be released, drop it.
 */
function dropSlot(n: string): string {
  return `DO $pgprov$ DECLARE pid int; BEGIN
  SELECT active_pid INTO pid FROM pg_replication_slots WHERE slot_name = ${sqlLiteral(n)};
  IF pid IS NOT NULL THEN PERFORM pg_terminate_backend(pid); END IF;
  FOR i IN 1..100 LOOP
    EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = ${sqlLiteral(n)} AND active);
    PERFORM pg_sleep(0.1);
  END LOOP;
  PERFORM pg_drop_replication_slot(${sqlLiteral(n)});
END $pgprov$`;
}
