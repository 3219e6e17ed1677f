/**
 * pg_slots: the physical replication slots of the cluster's standbys, on the primary. Exactly
 * the slots named exist among those with pgprov's prefix: a slot of a standby removed from the
 * inventory is dropped (it would hold WAL forever), and slots pgprov did not make are left alone.
 */
import { z } from "zod";
import { type Change, noChange } from "../../engine/change.js";
import { SLOT_PREFIX } from "../../inventory/slots.js";
import { sqlLiteral } from "../../transport/postgres.js";
import type { Module } from "../module.js";

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
        summary: `drop slot ${n}: no standby of the inventory uses it${existing.get(n)!.active ? " (it is still active: its standby must be stopped first)" : ""}`,
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
    ...decision.detail!.drop.map((n) => ({ sql: `select pg_drop_replication_slot(${sqlLiteral(n)})`, display: `select pg_drop_replication_slot('${n}')` })),
  ],
};
