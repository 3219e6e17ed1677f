/**
 * pg_restart_pending: restarts the server only when a setting that needs a restart has changed
 * (pg_settings.pending_restart, after the reload that applied the rest). The cluster playbook
 * runs it on the standbys first, then on the primary.
 */
import { z } from "zod";
import { unitName } from "../common/args.js";
import { shellQuote } from "../common/shell.js";
import { noChange } from "../engine/change.js";
import type { Module } from "../engine/module.js";
import { rowsOf, type Sql } from "./psql.js";

export const restartArgs = z.strictObject({ service: unitName });
export type RestartArgs = z.output<typeof restartArgs>;

export function pgRestartPending(sql: Sql): Module<RestartArgs> {
  return {
    name: "pg_restart_pending",
    args: restartArgs,
    probe: () => sql.probe("select name from pg_settings where pending_restart order by name"),
    decide(args, state) {
      const read = rowsOf(state);
      if ("error" in read) return noChange(`cannot read pg_settings (${read.error}); the service task starts the server`);
      const pending = read.rows.map((r) => String(r.name));
      if (pending.length === 0) return noChange("no setting waits for a restart");
      const restart = { script: `systemctl restart ${shellQuote(args.service)}`, timeoutMs: 300_000 };
      return {
        changes: [{ action: "restart", summary: `restart ${args.service}: ${pending.join(", ")} changed and need${pending.length === 1 ? "s" : ""} a restart`, commands: [restart] }],
      };
    },
  };
}
