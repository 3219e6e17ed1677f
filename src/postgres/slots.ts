/**
 * pg_slots: the physical replication slots of the cluster's standbys, on the primary. Exactly
 * the slots named exist among those with pgprov's prefix: a slot of a standby removed from the
 * inventory is dropped (it would hold WAL forever), and slots pgprov did not make are left alone.
 */
import { z } from "zod";
import { type Change, noChange } from "../engine/change.js";
import { SLOT_PREFIX } from "./slot-names.js";
import { sqlLiteral } from "../common/sql.js";
import type { Module } from "../engine/module.js";

export const slotsArgs = z.strictObject({
  names: z.array(z.string().regex(/^[a-z0-9_]{1,63}$/, "a slot name: lower-case letters, digits and _")).default([]),
});
export type SlotsArgs = z.output<typeof slotsArgs>;

interface SlotsDetail {
  create: string[];
  drop: string[];
}

export const pgSlots: Module<SlotsArgs, SlotsDetail> = {
  name: "pg_slots",
  args: slotsArgs,

  probe: () => ({
    sql: `select slot_name, slot_type, active from pg_replication_slots where starts_with(slot_name, ${sqlLiteral(SLOT_PREFIX)})`,
  }),

  decide(args, state) {
    const wanted = args.names;
    if (state.error !== undefined) {
      return { changes: wanted.map((n) => ({ action: "create", summary: `slot ${n} (cannot read slots now: ${state.error})` }) as Change), detail: { create: wanted, drop: [] } };
    }
    const existing = new Map((state.rows ?? []).map((r) => [String(r.slot_name), r]));
    const create = wanted.filter((n) => !existing.has(n));
    const drop = [...existing.keys()].filter((n) => !wanted.includes(n));
    const changes: Change[] = [
      ...create.map((n): Change => ({ action: "create", summary: `create physical replication slot ${n}` })),
      ...drop.map((n): Change => ({
        action: "delete",
        summary: `drop slot ${n}: no standby of the inventory uses it${existing.get(n)!.active ? " (still in use: its WAL sender is ended first)" : ""}`,
      })),
    ];
    return changes.length ? { changes, detail: { create, drop } } : noChange(wanted.length ? `slots ${wanted.join(", ")} exist` : "no slots wanted, none of pgprov's exist");
  },

  act: (_args, decision) => [
    ...decision.detail!.create.map((n) => ({
      // Reserve WAL from now on: the standby's clone starts from a point the slot already holds.
      sql: `select pg_create_physical_replication_slot(${sqlLiteral(n)}, true)`,
      display: `select pg_create_physical_replication_slot('${n}', true)`,
    })),
    ...decision.detail!.drop.map((n) => ({
      // A standby removed from the inventory may still stream on its slot (pg_hba's reload keeps
      // open connections): end its WAL sender, wait (bounded) for the slot to be released, drop it.
      sql: `DO $pgprov$ DECLARE pid int; BEGIN
  SELECT active_pid INTO pid FROM pg_replication_slots WHERE slot_name = ${sqlLiteral(n)};
  IF pid IS NOT NULL THEN PERFORM pg_terminate_backend(pid); END IF;
  FOR i IN 1..100 LOOP
    EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = ${sqlLiteral(n)} AND active);
    PERFORM pg_sleep(0.1);
  END LOOP;
  PERFORM pg_drop_replication_slot(${sqlLiteral(n)});
END $pgprov$`,
      display: `end the WAL sender on slot ${n}, then select pg_drop_replication_slot('${n}')`,
    })),
  ],
};
