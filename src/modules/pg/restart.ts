/**
 * pg_restart_pending: restarts the server only when a setting that needs a restart has changed
 * (pg_settings.pending_restart, after the reload that applied the rest). The cluster playbook
 * runs it on the standbys first, then on the primary.
 */
import { z } from "zod";
import { noChange } from "../../engine/change.js";
import { unitName } from "../args.js";
import type { Module } from "../module.js";
import { shellQuote } from "../shell.js";

export const restartArgs = z.strictObject({ service: unitName });
export type RestartArgs = z.output<typeof restartArgs>;

export const pgRestartPending: Module<RestartArgs> = {
  name: "pg_restart_pending",
  args: restartArgs,
  probe: () => ({ sql: "select name from pg_settings where pending_restart order by name" }),
  decide(args, state) {
    if (state.error !== undefined) return noChange(`cannot read pg_settings (${state.error}); the service task starts the server`);
    const pending = (state.rows ?? []).map((r) => String(r.name));
    if (pending.length === 0) return noChange("no setting waits for a restart");
    return { changes: [{ action: "restart", summary: `restart ${args.service}: ${pending.join(", ")} changed and need${pending.length === 1 ? "s" : ""} a restart` }] };
  },
  act: (args) => [{ script: `systemctl restart ${shellQuote(args.service)}`, timeoutMs: 300_000 }],
};
