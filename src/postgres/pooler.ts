/**
 * pg_pooler_lookup: the function pgbouncer's auth_query calls, in each database clients reach
 * through it. pgbouncer (1.18 on bookworm) runs auth_query in the database the client asks for,
 * so the function is in every database of the inventory, in postgres, and in template1 (so that a
 * database created later has it too). SECURITY DEFINER, so pgbouncer's own role reads a login
 * role's SCRAM verifier without reading pg_authid itself; superusers are not served (they do not
 * come through the pooler), and no password list is kept in a file.
 */
import { z } from "zod";
import { sqlIdentifier, sqlLiteral } from "../common/sql.js";
import { type Change, noChange } from "../engine/change.js";
import { type Module, TaskFailure } from "../engine/module.js";
import { databaseName } from "./names.js";
import { partsOf, rowsOf, type Sql } from "./psql.js";

export const poolerLookupArgs = z.strictObject({
  /** pgbouncer's auth_user: the only role that may execute the function. */
  role: z.string().regex(/^[a-z_][a-z0-9_]*$/),
  databases: z.array(databaseName).default([]),
});
export type PoolerLookupArgs = z.output<typeof poolerLookupArgs>;

/** The role pgbouncer runs auth_query as: pgprov's own, never one of the inventory's roles. */
export const POOLER_AUTH_USER = "pgprov_pgbouncer";

/** What pgbouncer.ini's auth_query calls. */
export const LOOKUP_FUNCTION = "pgprov.user_lookup";

const BODY = ` SELECT rolname, CASE WHEN rolvaliduntil IS NULL OR rolvaliduntil > now() THEN rolpassword END FROM pg_catalog.pg_authid WHERE rolname = i_username AND rolcanlogin AND NOT rolsuper `;

/** The databases that get the function: each of the inventory's, postgres and template1. */
function lookupDatabases(args: PoolerLookupArgs): string[] {
  return [...new Set(["postgres", "template1", ...args.databases])];
}

export function pgPoolerLookup(sql: Sql): Module<PoolerLookupArgs> {
  return {
    name: "pg_pooler_lookup",
    args: poolerLookupArgs,
    probe: (args) =>
      sql.probeIn(
        lookupDatabases(args).map((database) => ({
          database,
          query:
            `select p.prosrc = ${sqlLiteral(BODY)} and p.prosecdef and has_function_privilege(${sqlLiteral(args.role)}, p.oid, 'execute') ` +
            `and not has_function_privilege('public', p.oid, 'execute') as ok ` +
            `from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'pgprov' and p.proname = 'user_lookup'`,
        })),
      ),
    decide(args, state) {
      const read = partsOf(state);
      const databases = lookupDatabases(args);
      const changes: Change[] = [];
      databases.forEach((database, i) => {
        const part = "error" in read ? undefined : read.parts[i];
        // A database that does not exist yet is created by the task before; then read again.
        if (part && "error" in part && /does not exist/.test(part.error)) return;
        if (part && !("error" in part) && part.rows[0]?.ok === true) return;
        const statements = lookupStatements(args.role);
        changes.push({
          action: "create",
          summary: `database ${database}: the function ${LOOKUP_FUNCTION} pgbouncer's auth_query calls (SECURITY DEFINER, for ${args.role} only)`,
          commands: [sql.command(statements, statements.join("; "), database)],
        });
      });
      return changes.length ? { changes } : noChange(`${LOOKUP_FUNCTION} in ${databases.join(", ")}`);
    },
  };
}

function lookupStatements(role: string): string[] {
  const r = sqlIdentifier(role);
  return [
    `CREATE SCHEMA IF NOT EXISTS pgprov`,
    `REVOKE ALL ON SCHEMA pgprov FROM PUBLIC`,
    `GRANT USAGE ON SCHEMA pgprov TO ${r}`,
    `CREATE OR REPLACE FUNCTION ${LOOKUP_FUNCTION}(i_username text, OUT usename name, OUT passwd text) RETURNS record ` +
      `LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $pgprov$${BODY}$pgprov$`,
    `REVOKE ALL ON FUNCTION ${LOOKUP_FUNCTION}(text) FROM PUBLIC`,
    `GRANT EXECUTE ON FUNCTION ${LOOKUP_FUNCTION}(text) TO ${r}`,
  ];
}

export const poolerRoleRetiredArgs = z.strictObject({ role: poolerLookupArgs.shape.role });
export type PoolerRoleRetiredArgs = z.output<typeof poolerRoleRetiredArgs>;

/**
 * pg_pooler_role_retired: without a pooler in the inventory, pgbouncer's role cannot log in. Its
 * lookup function hands out SCRAM verifiers, so whoever still holds the role's password (the
 * auth_file left on every host) must not reach it. The role, the function and the files stay: a
 * pooler added back makes the role LOGIN again, with the same password.
 */
export function pgPoolerRoleRetired(sql: Sql): Module<PoolerRoleRetiredArgs> {
  return {
    name: "pg_pooler_role_retired",
    args: poolerRoleRetiredArgs,
    probe: (args) => sql.probe(`select rolcanlogin from pg_catalog.pg_roles where rolname = ${sqlLiteral(args.role)}`),
    decide(args, state) {
      const read = rowsOf(state);
      if ("error" in read) throw new TaskFailure(`cannot read role ${args.role}: ${read.error}`);
      if (read.rows[0]?.rolcanlogin !== true) return noChange(read.rows.length ? `role ${args.role} cannot log in` : `no role ${args.role}`);
      const statement = `ALTER ROLE ${sqlIdentifier(args.role)} NOLOGIN`;
      return { changes: [{ action: "update", summary: `role ${args.role}: NOLOGIN (no pooler in the inventory)`, commands: [sql.command([statement], statement)] }] };
    },
  };
}

/** One pool of a pgbouncer (SHOW POOLS): its clients and its server connections. */
export interface PoolUsage {
  database: string;
  user: string;
  clActive: number;
  clWaiting: number;
  svActive: number;
  svIdle: number;
  /** Seconds the oldest waiting client has waited. */
  maxwait: number;
  poolMode: string;
}

/**
 * pgbouncer's pools, read on its host from its admin console: through its Unix socket as the user
 * pgbouncer runs as (postgres on Debian), which pgbouncer lets in as its `pgbouncer` admin user
 * without a password. Tab-separated, with a header (columns differ between pgbouncer versions).
 */
export function poolsScript(port: number): string {
  return `runuser -u postgres -- psql -X -q -A -F "$(printf '\\t')" -P footer=off -h /var/run/postgresql -p ${port} -U pgbouncer -d pgbouncer -c 'SHOW POOLS'`;
}

/** The pools poolsScript printed, but the admin console's own. */
export function parsePools(stdout: string): PoolUsage[] {
  const [header, ...rows] = stdout.split("\n").filter((l) => l.trim() !== "");
  if (!header) return [];
  const columns = header.split("\t");
  const number = (fields: string[], name: string) => Number(fields[columns.indexOf(name)] ?? 0) || 0;
  return rows
    .map((row) => row.split("\t"))
    .map((f) => ({
      database: f[columns.indexOf("database")] ?? "",
      user: f[columns.indexOf("user")] ?? "",
      clActive: number(f, "cl_active"),
      clWaiting: number(f, "cl_waiting"),
      svActive: number(f, "sv_active"),
      svIdle: number(f, "sv_idle"),
      maxwait: number(f, "maxwait"),
      poolMode: f[columns.indexOf("pool_mode")] ?? "",
    }))
    .filter((p) => p.database !== "pgbouncer");
}

/** `postgres/app: 1 client active, 0 waiting; 1 server active, 4 idle`. */
export function describePool(p: PoolUsage): string {
  const s = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  return `${p.database}/${p.user}: ${s(p.clActive, "client")} active, ${p.clWaiting} waiting${p.maxwait ? ` (longest ${p.maxwait} s)` : ""}; ${s(p.svActive, "server")} active, ${p.svIdle} idle`;
}
