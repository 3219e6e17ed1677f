/**
 * pg_role and pg_roles: roles with the wanted attributes, memberships, settings and password. The
 * password is compared with the stored SCRAM verifier, so one changed on the server is put back;
 * it is sent as a verifier computed here, never as plaintext. A role with `state: absent` is
 * dropped only when it owns nothing and holds no privilege (DROP ROLE would fail halfway
 * otherwise); else the task refuses, naming what it owns, for a person to decide.
 */
import { z } from "zod";
import { flag } from "../common/args.js";
import { sqlIdentifier, sqlLiteral } from "../common/sql.js";
import { type Change, noChange } from "../engine/change.js";
import { type Module, TaskFailure } from "../engine/module.js";
import { databaseName, objectSettings, setClause, settingsToSet } from "./names.js";
import { partsOf, type Row, rowsOf, type Rows, type Sql } from "./psql.js";
import { scramVerifier, verifierMatches } from "./scram.js";

const connectionLimit = z.preprocess((v) => (typeof v === "string" && /^\s*-?\d+\s*$/.test(v) ? Number(v) : v), z.number().int().min(-1));

export const roleArgs = z.strictObject({
  // The replication user is checked by the inventory; it may be an older, laxer name than roleName.
  name: z.string().regex(/^[a-z_][a-z0-9_$]*$/, "a role name: lower-case letters, digits and _").max(63),
  /** Absent: the password is not managed (a role that cannot log in, say). */
  password: z.string().min(8, "a password of at least 8 characters").optional(),
  state: z.enum(["present", "absent"]).default("present"),
  login: flag.default(true),
  replication: flag.default(false),
  superuser: flag.default(false),
  createdb: flag.default(false),
  createrole: flag.default(false),
  connection_limit: connectionLimit.default(-1),
  /** Roles this one is a member of (granted if missing; other memberships are left alone). */
  member_of: z.array(z.string().min(1)).default([]),
  /** `ALTER ROLE ... SET`: the ones named are kept; others set by hand are left alone. */
  settings: objectSettings,
  /** Functions the role may execute, by signature (pg_rewind's, for a former primary's rejoin). */
  functions: z.array(z.string().regex(/^[a-z_.]+\([a-z, ]*\)$/, "a function signature like pg_catalog.pg_ls_dir(text, boolean, boolean)")).default([]),
});
export type RoleArgs = z.output<typeof roleArgs>;

export const rolesArgs = z.strictObject({
  roles: z.array(roleArgs).default([]),
  /** Where a role to drop may own objects: each is read for what it owns there (with postgres). */
  databases: z.array(databaseName).default([]),
});
export type RolesArgs = z.output<typeof rolesArgs>;

/** One role, as the replication role is declared in the bundled playbook. */
export function pgRole(sql: Sql): Module<RoleArgs> {
  return {
    name: "pg_role",
    args: roleArgs,
    probe: (args) => sql.probe(rolesQuery([args])),
    decide(args, state) {
      const changes = decideRoles(sql, [args], rowsOf(state), []);
      return changes.length ? { changes } : noChange(`role ${args.name} ${present(args)}`);
    },
  };
}

/** The inventory's roles, read in one query (and, for roles to drop, what they own in each database). */
export function pgRoles(sql: Sql): Module<RolesArgs> {
  return {
    name: "pg_roles",
    args: rolesArgs,
    probe(args) {
      const absent = args.roles.filter((r) => r.state === "absent").map((r) => r.name);
      if (!absent.length) return sql.probe(rolesQuery(args.roles));
      return sql.probeIn([
        { database: "postgres", query: rolesQuery(args.roles) },
        { database: "postgres", query: ownedAnywhereQuery(absent) },
        ...ownerDatabases(args).map((database) => ({ database, query: ownedHereQuery(absent) })),
      ]);
    },
    decide(args, state) {
      const absent = args.roles.some((r) => r.state === "absent");
      let roles: Rows = rowsOf(state);
      let owned: Owned[] = [];
      if (absent) {
        const read = partsOf(state);
        if ("error" in read) roles = read;
        else {
          roles = read.parts[0]!;
          owned = ownedObjects(read.parts[1]!, ownerDatabases(args).map((database, i) => ({ database, read: read.parts[2 + i]! })));
        }
      }
      const changes = decideRoles(sql, args.roles, roles, owned);
      if (changes.length) return { changes };
      return noChange(args.roles.length ? args.roles.map((r) => `${r.name} ${r.state === "absent" ? "absent" : present(r)}`).join("; ") : "no roles declared");
    },
  };
}

/** The databases read for what a role to drop owns. */
function ownerDatabases(args: RolesArgs): string[] {
  return [...new Set(["postgres", ...args.databases])];
}

function present(args: RoleArgs): string {
  return `exists${attributes(args)}${args.password ? ", password as in the inventory" : ""}`;
}

/**
 * The changes for `roles` given the rows read: every role's own changes first (created,
 * altered, dropped), then the memberships, so that a role is granted one declared after it.
 */
function decideRoles(sql: Sql, roles: RoleArgs[], read: Rows, owned: Owned[]): Change[] {
  const rows = "error" in read ? undefined : new Map(read.rows.map((r) => [String(r.rolname), r]));
  const own: Change[] = [];
  const memberships: Change[] = [];
  for (const args of roles) {
    const row = rows?.get(args.name);
    if (args.state === "absent") {
      if (rows && row) own.push(drop(sql, args.name, owned.filter((o) => o.role === args.name)));
      continue;
    }
    own.push(...roleChanges(sql, args, row, "error" in read ? read.error : undefined));
    const have = new Set((row?.member_of as string[] | undefined) ?? []);
    const missing = args.member_of.filter((g) => !have.has(g));
    if (missing.length) {
      const grants = missing.map((g) => `GRANT ${sqlIdentifier(g)} TO ${sqlIdentifier(args.name)}`);
      memberships.push({ action: "update", summary: `role ${args.name}: member of ${missing.join(", ")}`, commands: [sql.command(grants, grants.join("; "))] });
    }
  }
  return [...own, ...memberships];
}

function options(args: RoleArgs): string {
  const yes = (on: boolean, word: string) => (on ? word : `NO${word}`);
  return [
    yes(args.login, "LOGIN"),
    yes(args.replication, "REPLICATION"),
    yes(args.superuser, "SUPERUSER"),
    yes(args.createdb, "CREATEDB"),
    yes(args.createrole, "CREATEROLE"),
    `CONNECTION LIMIT ${args.connection_limit}`,
  ].join(" ");
}

function roleChanges(sql: Sql, args: RoleArgs, row: Row | undefined, unreadable: string | undefined): Change[] {
  const name = sqlIdentifier(args.name);
  // The password is sent as a SCRAM verifier computed here, never as plaintext.
  const withPassword = (verb: string) => {
    const statement = `${verb} ROLE ${name} ${options(args)}`;
    if (args.password === undefined) return { statement, display: statement };
    return { statement: `${statement} PASSWORD ${sqlLiteral(scramVerifier(args.password))}`, display: `${statement} PASSWORD '<SCRAM-SHA-256 verifier>'` };
  };
  const grants = (functions: string[]) => functions.map((f) => `GRANT EXECUTE ON FUNCTION ${f} TO ${name}`);
  const sets = (settings: [string, string | number | boolean][]) => settings.map(([k, v]) => `ALTER ROLE ${name} SET ${setClause(k, v)}`);
  if (!row) {
    const c = withPassword("CREATE");
    const rest = [...grants(args.functions), ...sets(Object.entries(args.settings))];
    const summary = unreadable === undefined ? `create role ${args.name}${attributes(args)}` : `role ${args.name} (cannot read roles now: ${unreadable})`;
    return [{ action: "create", summary, commands: [sql.command([c.statement, ...rest], [c.display, ...rest].join("; "))] }];
  }
  const changes: Change[] = [];
  const differences: string[] = [];
  const compare = (column: string, wanted: boolean, word: string) => {
    if (row[column] !== wanted) differences.push(wanted ? word : `NO${word}`);
  };
  compare("rolcanlogin", args.login, "LOGIN");
  compare("rolreplication", args.replication, "REPLICATION");
  compare("rolsuper", args.superuser, "SUPERUSER");
  compare("rolcreatedb", args.createdb, "CREATEDB");
  compare("rolcreaterole", args.createrole, "CREATEROLE");
  if (Number(row.rolconnlimit) !== args.connection_limit) differences.push(`CONNECTION LIMIT ${args.connection_limit}`);
  if (differences.length) {
    const alter = `ALTER ROLE ${name} ${options(args)}`;
    changes.push({ action: "update", summary: `role ${args.name}: ${differences.join(" ")}`, commands: [sql.command([alter], alter)] });
  }
  const missing = (row.missing_functions as string[] | undefined) ?? [];
  if (missing.length) {
    changes.push({ action: "update", summary: `role ${args.name}: may execute ${missing.join(", ")}`, commands: [sql.command(grants(missing), grants(missing).join("; "))] });
  }
  const settings = settingsToSet(args.settings, (row.settings as string[] | null) ?? []);
  if (settings.length) {
    changes.push({ action: "update", summary: `role ${args.name}: set ${settings.map(([k]) => k).join(", ")}`, commands: [sql.command(sets(settings), sets(settings).join("; "))] });
  }
  if (args.password !== undefined && !verifierMatches(String(row.rolpassword), args.password)) {
    const c = withPassword("ALTER");
    changes.push({
      action: "update",
      summary: `role ${args.name}: the password on the server differs from the inventory's; set it again`,
      commands: [sql.command([c.statement], c.display)],
    });
  }
  return changes;
}

function attributes(args: RoleArgs): string {
  const on = [
    args.login && "login",
    args.replication && "replication",
    args.superuser && "superuser",
    args.createdb && "createdb",
    args.createrole && "createrole",
    args.connection_limit >= 0 && `connection limit ${args.connection_limit}`,
  ].filter(Boolean);
  return on.length ? ` (${on.join(", ")})` : "";
}

/** The roles named, with what pgprov compares. */
function rolesQuery(roles: RoleArgs[]): string {
  const names = roles.map((r) => sqlLiteral(r.name)).join(", ");
  const withFunctions = roles.filter((r) => r.functions.length);
  // Each role's functions it may not execute yet (pg_rewind's, for the replication role).
  const functions = withFunctions.length
    ? `array(select f from unnest(case r.rolname ${withFunctions.map((w) => `when ${sqlLiteral(w.name)} then array[${w.functions.map(sqlLiteral).join(", ")}]::text[]`).join(" ")} else '{}'::text[] end) f ` +
      `where not has_function_privilege(r.rolname, f, 'execute'))`
    : `'{}'::text[]`;
  return (
    `select r.rolname, r.rolcanlogin, r.rolreplication, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolconnlimit, ` +
    `coalesce(r.rolpassword, '') as rolpassword, ${functions} as missing_functions, ` +
    `array(select g.rolname from pg_auth_members m join pg_authid g on g.oid = m.roleid where m.member = r.oid) as member_of, ` +
    `(select s.setconfig from pg_db_role_setting s where s.setrole = r.oid and s.setdatabase = 0) as settings ` +
    `from pg_authid r where r.rolname in (${names || "null"})`
  );
}

// ---- what a role to drop owns -------------------------------------------------------------------

/** An object a role owns (or holds a privilege on, which DROP ROLE refuses as well). */
interface Owned {
  role: string;
  what: string;
}

/** pg_shdepend's kinds that stop DROP ROLE: owner, privilege (ACL), policy. */
const DEPENDS = `s.deptype in ('o', 'a', 'r') and s.refclassid = 'pg_authid'::regclass`;
const KIND = `case s.deptype when 'o' then 'owns' when 'a' then 'holds privileges on' else 'is named in' end`;

/** In the database connected to: each object by name. */
function ownedHereQuery(roles: string[]): string {
  return (
    `select pg_get_userbyid(s.refobjid) as role, ${KIND} || ' ' || pg_describe_object(s.classid, s.objid, s.objsubid) || ' in database ' || current_database() as what ` +
    `from pg_shdepend s join pg_database d on d.oid = s.dbid where d.datname = current_database() and ${DEPENDS} ` +
    `and pg_get_userbyid(s.refobjid) in (${roles.map(sqlLiteral).join(", ")}) order by 1, 2`
  );
}

/** Across the cluster: shared objects (databases) by name, other databases' objects counted. */
function ownedAnywhereQuery(roles: string[]): string {
  return (
    `select pg_get_userbyid(s.refobjid) as role, s.dbid = 0 as shared, d.datname as database, ` +
    `case when s.dbid = 0 then ${KIND} || ' ' || pg_describe_object(s.classid, s.objid, s.objsubid) end as what, count(*)::int as count ` +
    `from pg_shdepend s left join pg_database d on d.oid = s.dbid where ${DEPENDS} ` +
    `and pg_get_userbyid(s.refobjid) in (${roles.map(sqlLiteral).join(", ")}) group by 1, 2, 3, 4 order by 1, 3, 4`
  );
}

/**
 * Everything the roles to drop own: by name where read (shared objects, the databases read),
 * counted in a database that was not (one the inventory does not declare). Fails closed: when
 * the cluster-wide read failed, nothing is known to be unowned.
 */
export function ownedObjects(anywhere: Rows, here: { database: string; read: Rows }[]): Owned[] {
  if ("error" in anywhere) throw new TaskFailure(`cannot read what the roles to drop own: ${anywhere.error}`);
  const named: Owned[] = [];
  const read = new Set<string>();
  for (const { database, read: r } of here) {
    if ("error" in r) continue; // a database that does not exist (yet) holds nothing
    read.add(database);
    for (const row of r.rows) named.push({ role: String(row.role), what: String(row.what) });
  }
  for (const r of anywhere.rows) {
    if (r.shared) named.push({ role: String(r.role), what: String(r.what) });
    else if (!read.has(String(r.database))) named.push({ role: String(r.role), what: `owns or holds privileges on ${r.count} object(s) in database ${r.database}` });
  }
  return named;
}

function drop(sql: Sql, role: string, owned: Owned[]): Change {
  if (owned.length) {
    throw new TaskFailure(
      `refusing to drop role ${role} (state: absent): it ${owned.map((o) => o.what).join("; ")}. ` +
        `Reassign or drop those first (REASSIGN OWNED BY ${role} TO ...; DROP OWNED BY ${role} in each database), then run apply again`,
    );
  }
  const statement = `DROP ROLE ${sqlIdentifier(role)}`;
  return { action: "delete", summary: `drop role ${role} (state: absent; it owns nothing)`, commands: [sql.command([statement], statement)] };
}
