/**
 * pg_role: a login role with the wanted attributes and password. The password is compared with
 * the stored SCRAM verifier, so one changed on the server is put back; it is sent as a verifier
 * computed here, never as plaintext.
 */
import { z } from "zod";
import { type Change, noChange } from "../engine/change.js";
import { rowsOf, type Sql } from "./psql.js";
import { sqlLiteral } from "../common/sql.js";
import { flag } from "../common/args.js";
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

export function pgRole(sql: Sql): Module<RoleArgs> {
  return {
    name: "pg_role",
    args: roleArgs,

    probe: (args) =>
      sql.probe(
        `select rolname, rolcanlogin, rolreplication, coalesce(rolpassword, '') as rolpassword, ` +
          `array(select f from unnest(array[${args.functions.map(sqlLiteral).join(", ") || "null"}]::text[]) f ` +
          `where f is not null and not has_function_privilege(rolname, f, 'execute')) as missing_functions ` +
          `from pg_authid where rolname = ${sqlLiteral(args.name)}`,
      ),

    decide(args, state) {
      const options = `${args.login ? "LOGIN" : "NOLOGIN"} ${args.replication ? "REPLICATION" : "NOREPLICATION"}`;
      // The password is sent as a SCRAM verifier computed here, never as plaintext.
      const password = (verb: string) => ({
        statement: `${verb} ROLE ${args.name} ${options} PASSWORD ${sqlLiteral(scramVerifier(args.password))}`,
        display: `${verb} ROLE ${args.name} ${options} PASSWORD '<SCRAM-SHA-256 verifier>'`,
      });
      const grants = (functions: string[]) => functions.map((f) => `GRANT EXECUTE ON FUNCTION ${f} TO ${args.name}`);
      const create = (summary: string): Change => {
        const c = password("CREATE");
        return { action: "create", summary, commands: [sql.command([c.statement, ...grants(args.functions)], [c.display, ...grants(args.functions)].join("; "))] };
      };
      const read = rowsOf(state);
      if ("error" in read) return { changes: [create(`role ${args.name} (cannot read roles now: ${read.error})`)] };
      const row = read.rows[0];
      if (!row) return { changes: [create(`create role ${args.name}${attributes(args)}`)] };
      const changes: Change[] = [];
      const differences: string[] = [];
      if (row.rolcanlogin !== args.login) differences.push(args.login ? "LOGIN" : "NOLOGIN");
      if (row.rolreplication !== args.replication) differences.push(args.replication ? "REPLICATION" : "NOREPLICATION");
      if (differences.length) {
        const alter = `ALTER ROLE ${args.name} ${options}`;
        changes.push({ action: "update", summary: `role ${args.name}: ${differences.join(" ")}`, commands: [sql.command([alter], alter)] });
      }
      const missing = (row.missing_functions as string[] | undefined) ?? [];
      if (missing.length) {
        changes.push({ action: "update", summary: `role ${args.name}: may execute ${missing.join(", ")}`, commands: [sql.command(grants(missing), grants(missing).join("; "))] });
      }
      if (!verifierMatches(String(row.rolpassword), args.password)) {
        const c = password("ALTER");
        changes.push({
          action: "update",
          summary: `role ${args.name}: the password on the server differs from the inventory's; set it again`,
          commands: [sql.command([c.statement], c.display)],
        });
      }
      return changes.length ? { changes } : noChange(`role ${args.name} exists${attributes(args)}, password as in the inventory`);
    },
  };
}

function attributes(args: RoleArgs): string {
  return ` (${[args.login ? "login" : "", args.replication ? "replication" : ""].filter(Boolean).join(", ")})`;
}
