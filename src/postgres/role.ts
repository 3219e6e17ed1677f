/**
 * pg_role: a login role with the wanted attributes and password. The password is compared with
 * the stored SCRAM verifier, so one changed on the server is put back; it is sent as a verifier
 * computed here, never as plaintext.
 */
import { z } from "zod";
import { type Change, noChange } from "../engine/change.js";
import { sqlLiteral } from "../common/sql.js";
import { flag } from "../modules/args.js";
import type { Module } from "../engine/module.js";
import { scramVerifier, verifierMatches } from "./scram.js";

export const roleArgs = z.strictObject({
  name: z.string().regex(/^[a-z_][a-z0-9_]*$/, "a role name: lower-case letters, digits and _"),
  password: z.string().min(8, "a password of at least 8 characters"),
  login: flag.default(true),
  replication: flag.default(false),
  /** Functions the role may execute, by signature (pg_rewind's, for a former primary's rejoin). */
  functions: z.array(z.string().regex(/^[a-z_.]+\([a-z, ]*\)$/, "a function signature like pg_catalog.pg_ls_dir(text, boolean, boolean)")).default([]),
});
export type RoleArgs = z.output<typeof roleArgs>;

type RoleDetail = "create" | "alter";

export const pgRole: Module<RoleArgs, RoleDetail> = {
  name: "pg_role",
  args: roleArgs,

  probe: (args) => ({
    sql:
      `select rolname, rolcanlogin, rolreplication, coalesce(rolpassword, '') as rolpassword, ` +
      `array(select f from unnest(array[${args.functions.map(sqlLiteral).join(", ") || "null"}]::text[]) f ` +
      `where f is not null and not has_function_privilege(rolname, f, 'execute')) as missing_functions ` +
      `from pg_authid where rolname = ${sqlLiteral(args.name)}`,
  }),

  decide(args, state) {
    if (state.error !== undefined) {
      return { changes: [{ action: "create", summary: `role ${args.name} (cannot read roles now: ${state.error})` }], detail: "create" };
    }
    const row = state.rows?.[0];
    if (!row) return { changes: [{ action: "create", summary: `create role ${args.name}${attributes(args)}` }], detail: "create" };
    const changes: Change[] = [];
    const differences: string[] = [];
    if (row.rolcanlogin !== args.login) differences.push(args.login ? "LOGIN" : "NOLOGIN");
    if (row.rolreplication !== args.replication) differences.push(args.replication ? "REPLICATION" : "NOREPLICATION");
    if (differences.length) changes.push({ action: "update", summary: `role ${args.name}: ${differences.join(" ")}` });
    const missing = (row.missing_functions as string[] | undefined) ?? [];
    if (missing.length) changes.push({ action: "update", summary: `role ${args.name}: may execute ${missing.join(", ")}` });
    if (!verifierMatches(String(row.rolpassword), args.password)) {
      changes.push({ action: "update", summary: `role ${args.name}: the password on the server differs from the inventory's; set it again` });
    }
    return changes.length ? { changes, detail: "alter" } : noChange(`role ${args.name} exists${attributes(args)}, password as in the inventory`);
  },

  act(args, decision) {
    const verb = decision.detail === "create" ? "CREATE" : "ALTER";
    const options = `${args.login ? "LOGIN" : "NOLOGIN"} ${args.replication ? "REPLICATION" : "NOREPLICATION"}`;
    // Granting again what is granted changes nothing: every wanted function is granted.
    const grants = args.functions.map((f) => ({ sql: `GRANT EXECUTE ON FUNCTION ${f} TO ${args.name}`, display: `GRANT EXECUTE ON FUNCTION ${f} TO ${args.name}` }));
    return [
      {
        sql: `${verb} ROLE ${args.name} ${options} PASSWORD ${sqlLiteral(scramVerifier(args.password))}`,
        display: `${verb} ROLE ${args.name} ${options} PASSWORD '<SCRAM-SHA-256 verifier>'`,
      },
      ...grants,
    ];
  },
};

function attributes(args: RoleArgs): string {
  return ` (${[args.login ? "login" : "", args.replication ? "replication" : ""].filter(Boolean).join(", ")})`;
}
