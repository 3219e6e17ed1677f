/**
 * Issue 15: roles, databases, extensions and access rules declared in the inventory. Validation
 * (each bad input at file:line:col, before anything connects) and the modules' decisions.
 */
import { describe, expect, it } from "vitest";
import type { ModuleContext, ProbeOutput } from "../../src/engine/module.js";
import { TaskFailure } from "../../src/engine/module.js";
import { loadInventory } from "../../src/inventory/inventory.js";
import { hostVariables } from "../../src/cluster/variables.js";
import { databasesArgs, pgDatabases } from "../../src/postgres/databases.js";
import { hbaLines } from "../../src/postgres/hba.js";
import { setClause, storedSetting } from "../../src/postgres/names.js";
import { psql } from "../../src/postgres/psql.js";
import { pgRoles, rolesArgs } from "../../src/postgres/role.js";
import { pgPoolerLookup, poolerLookupArgs } from "../../src/postgres/pooler.js";
import { scramVerifier } from "../../src/postgres/scram.js";
import { yamlFiles } from "./yaml-files.js";

const { write, problems } = yamlFiles("access", loadInventory);
const HOSTS = `hosts:\n  pg1: { address: 10.0.0.11, role: primary }\n`;
const context: ModuleContext = { playbookDir: "/", render: (t) => t };
const sql = psql(5432);
const rows = (r: Record<string, unknown>[]): ProbeOutput => ({ stdout: JSON.stringify(r), stderr: "", code: 0 });
const parts = (p: unknown[]): ProbeOutput => ({ stdout: JSON.stringify(p), stderr: "", code: 0 });

describe("issue 15: bad input is refused at file:line:col before anything connects", () => {
  it("issue 15: a role name or database name PostgreSQL would reject", () => {
    expect(problems(`roles:\n  pg_app: {}\n  Billing: {}\n  public: {}\n${HOSTS}`)).toEqual([
      `2:11: roles.pg_app: role names starting with pg_ are reserved by PostgreSQL`,
      `3:12: roles.Billing: a role name: lower-case letters, digits, _ and $, not starting with a digit`,
      `4:11: roles.public: "public" is a reserved role name in PostgreSQL`,
    ]);
    expect(problems(`databases:\n  my-db: {}\n  ${"d".repeat(64)}: {}\n  all: {}\n${HOSTS}`)).toEqual([
      `2:10: databases.my-db: a database name: lower-case letters, digits, _ and $, not starting with a digit`,
      `3:69: databases.${"d".repeat(64)}: a database name of at most 63 characters (PostgreSQL's NAMEDATALEN)`,
      `4:8: databases.all: "all" is a keyword in pg_hba.conf; choose another name`,
    ]);
  });

  it("issue 15: an owner that is not declared, and a role that is pgprov's own", () => {
    expect(problems(`roles:\n  app: {}\n  replicator: {}\ndatabases:\n  appdb: { owner: ap }\n${HOSTS}`)).toEqual([
      `3:15: roles.replicator: replicator is the replication user (replication.user), which pgprov manages itself`,
      `5:19: databases.appdb.owner: owner "ap" is not a role of the inventory's roles (did you mean "app"?): declare it there, or use postgres`,
    ]);
  });

  it("issue 15: an unknown extension name, with a suggestion", () => {
    const [p] = problems(`databases:\n  appdb: { extensions: [pgcrypto, pg_stat_statement] }\n${HOSTS}`);
    expect(p).toMatch(/^2:35: databases\.appdb\.extensions\.1: unknown extension "pg_stat_statement" \(did you mean "pg_stat_statements"\?\)/);
  });

  it("issue 15: an access rule whose from is not a network, and a trust, password or md5 method", () => {
    expect(
      problems(
        `access:\n  - { from: 10.0.0.0/33, method: scram-sha-256 }\n  - { from: "not a host", method: scram-sha-256 }\n` +
          `  - { from: 10.0.0.0/24, method: trust }\n  - { from: 10.0.0.0/24, method: md5 }\n  - { from: 10.0.0.0/24, method: password }\n${HOSTS}`,
      ),
    ).toEqual([
      `2:13: access.0.from: "10.0.0.0/33" is not a network (like 10.0.0.0/24), an IP address or a DNS name`,
      `3:13: access.1.from: "not a host" is not a network (like 10.0.0.0/24), an IP address or a DNS name`,
      `4:34: access.2.method: method trust is not accepted (lets anyone in without a password); use scram-sha-256, cert or reject`,
      `5:34: access.3.method: method md5 is not accepted (MD5 password hashes can be replayed and are deprecated); use scram-sha-256, cert or reject`,
      `6:34: access.4.method: method password is not accepted (sends the password in cleartext); use scram-sha-256, cert or reject`,
    ]);
  });

  it("issue 15: state: absent on a database is refused with an explanation", () => {
    expect(problems(`databases:\n  old: { state: absent }\n${HOSTS}`)).toEqual([
      `2:17: databases.old.state: pgprov never drops a database (DROP DATABASE loses its data for good): drop it yourself, after a backup, and remove it from the inventory`,
    ]);
  });

  it("issue 15: a short role password is refused without echoing it", () => {
    process.env.PGPROV_TEST_SHORT = "short";
    const found = problems(`roles:\n  app: { password: { env: PGPROV_TEST_SHORT } }\n${HOSTS}`);
    expect(found).toEqual([`2:20: roles.app.password: a password of at least 8 characters`]);
    expect(found.join("")).not.toContain("short\"");
  });
});

describe("issue 15: what the inventory's roles, databases and access rules become", () => {
  it("issue 15: access rules render in order, cert on a hostssl line, one host with its full mask", () => {
    expect(
      hbaLines([
        { database: "appdb", user: "app", from: "10.0.0.0/24", method: "scram-sha-256" },
        { database: "reports", user: "app", from: "10.0.0.5", method: "reject" },
        { database: "all", user: "ops", from: "db.example.com", method: "cert" },
      ]),
    ).toEqual([
      "host    appdb        app                   10.0.0.0/24              scram-sha-256",
      "host    reports      app                   10.0.0.5/32              reject",
      "hostssl all          ops                   db.example.com           cert",
    ]);
  });

  it("issue 10 with issue 15: with TLS on, every access rule is a hostssl line (the hostnossl rejects come first)", () => {
    const rules = [
      { database: "appdb", user: "app", from: "10.0.0.0/24", method: "scram-sha-256" },
      { database: "reports", user: "app", from: "10.0.0.5", method: "reject" },
    ];
    expect(hbaLines(rules, { tls: true }).map((l) => l.split(" ")[0])).toEqual(["hostssl", "hostssl"]);
    expect(hbaLines(rules, { tls: false }).map((l) => l.split(" ")[0])).toEqual(["host", "host"]);
  });

  it("issue 15: extensions that need it join shared_preload_libraries, after the inventory's own", () => {
    process.env.PGPROV_TEST_APP = "app-password-1";
    const inv = loadInventory(
      write(
        `postgresql: { version: 15, settings: { shared_preload_libraries: "auto_explain, pg_prewarm" }, packages: [postgresql-15-cron] }\n` +
          `roles:\n  app: { password: { env: PGPROV_TEST_APP } }\ndatabases:\n  appdb: { owner: app, extensions: [pg_stat_statements, auto_explain, pgcrypto] }\n${HOSTS}`,
      ),
    );
    const pg = hostVariables(inv, inv.primary, undefined).postgresql as Record<string, unknown>;
    expect((pg.settings as Record<string, unknown>).shared_preload_libraries).toBe("auto_explain,pg_prewarm,pg_stat_statements");
    expect(pg.packages).toEqual(["postgresql-15", "postgresql-client-15", "postgresql-15-cron"]);
    // The inventory's view of a role never shows its password (the Secret masks itself).
    expect(JSON.stringify(inv.roles)).not.toContain("app-password-1");
  });

  it("issue 15: per-object settings are written and compared as PostgreSQL stores them", () => {
    expect(setClause("search_path", "app, \"$user\", public")).toBe("search_path = 'app', '$user', 'public'");
    expect(storedSetting("search_path", "app, \"$user\", public")).toBe('search_path=app, "$user", public');
    expect(setClause("work_mem", "64MB")).toBe("work_mem = '64MB'");
    expect(storedSetting("jit", false)).toBe("jit=off");
  });
});

describe("issue 15: pg_roles", () => {
  const args = (roles: unknown[], databases: string[] = []) => rolesArgs.parse({ roles, databases });
  const row = (name: string, more: Record<string, unknown> = {}) => ({
    rolname: name,
    rolcanlogin: true,
    rolreplication: false,
    rolsuper: false,
    rolcreatedb: false,
    rolcreaterole: false,
    rolconnlimit: -1,
    rolpassword: "",
    member_of: [],
    settings: null,
    ...more,
  });

  it("issue 15: creates every role before granting memberships, passwords as verifiers only", () => {
    const d = pgRoles(sql).decide(args([{ name: "app", password: "app-password-1", member_of: ["readers"] }, { name: "readers", login: false }]), rows([]), context);
    expect(d.changes.map((c) => c.summary)).toEqual(["create role app (login)", "create role readers", "role app: member of readers"]);
    expect(JSON.stringify(d.changes)).not.toContain("app-password-1");
    expect(d.changes[0]!.commands[0]!.script).toContain(`CREATE ROLE "app" LOGIN NOREPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE CONNECTION LIMIT -1 PASSWORD 'SCRAM-SHA-256$`);
  });

  it("issue 15: a password changed by hand and a setting are put back; a converged role is left alone", () => {
    const wanted = args([{ name: "app", password: "app-password-1", settings: { search_path: "app, public" } }]);
    const ok = row("app", { rolpassword: scramVerifier("app-password-1"), settings: ["search_path=app, public"] });
    expect(pgRoles(sql).decide(wanted, rows([ok]), context).changes).toEqual([]);
    const drifted = pgRoles(sql).decide(wanted, rows([{ ...ok, rolpassword: scramVerifier("by-hand-1234"), settings: null }]), context);
    expect(drifted.changes.map((c) => c.summary)).toEqual([
      "role app: set search_path",
      "role app: the password on the server differs from the inventory's; set it again",
    ]);
  });

  it("issue 15: state: absent drops a role that owns nothing, and refuses one that owns a table, naming it", () => {
    const wanted = args([{ name: "old", state: "absent" }], ["appdb"]);
    const probe = pgRoles(sql).probe(wanted, context);
    expect(probe).toMatchObject({ item: { parts: [{ database: "postgres" }, { database: "postgres" }, { database: "postgres" }, { database: "appdb" }] } });
    const nothing = parts([{ rows: [row("old")] }, { rows: [] }, { rows: [] }, { rows: [] }]);
    expect(pgRoles(sql).decide(wanted, nothing, context).changes.map((c) => c.summary)).toEqual(["drop role old (state: absent; it owns nothing)"]);
    const owns = parts([
      { rows: [row("old")] },
      { rows: [{ role: "old", shared: false, database: "appdb", what: null, count: 1 }, { role: "old", shared: false, database: "legacy", what: null, count: 2 }] },
      { rows: [] },
      { rows: [{ role: "old", what: "owns table public.orders in database appdb" }] },
    ]);
    expect(() => pgRoles(sql).decide(wanted, owns, context)).toThrow(TaskFailure);
    expect(() => pgRoles(sql).decide(wanted, owns, context)).toThrow(
      /refusing to drop role old \(state: absent\): it owns table public\.orders in database appdb; owns or holds privileges on 2 object\(s\) in database legacy/,
    );
    // A role that is not there is absent already.
    expect(pgRoles(sql).decide(wanted, parts([{ rows: [] }, { rows: [] }, { rows: [] }, { error: "database appdb does not exist" }]), context).changes).toEqual([]);
  });
});

describe("issue 15: pg_databases", () => {
  const args = databasesArgs.parse({
    version: 15,
    databases: [
      { name: "appdb", owner: "app", encoding: "UTF8", extensions: ["pg_stat_statements", "auto_explain"] },
      { name: "reports", owner: "reporting" },
    ],
  });
  const db = (name: string, owner: string, more: Record<string, unknown> = {}) => ({ datname: name, owner, encoding: "UTF8", collate: "C.UTF-8", ctype: "C.UTF-8", settings: null, available: null, ...more });
  const available = { datname: null, available: ["pg_stat_statements"] };

  it("issue 15: creates the missing databases and extensions (a library only is never CREATE EXTENSION'd)", () => {
    const d = pgDatabases(sql).decide(args, parts([{ rows: [available] }, { error: "database appdb does not exist" }]), context);
    expect(d.changes.map((c) => c.summary)).toEqual(["create database appdb (owner app)", "database appdb: create extension pg_stat_statements", "create database reports (owner reporting)"]);
    expect(d.changes[1]!.commands[0]!.script).toContain("-d appdb");
    expect(d.changes[0]!.commands[0]!.script).toContain(`CREATE DATABASE "appdb" OWNER "app" ENCODING 'UTF8'`);
  });

  it("issue 15: an encoding differing from the inventory's is reported, never fixed", () => {
    const d = pgDatabases(sql).decide(args, parts([{ rows: [db("appdb", "app", { encoding: "SQL_ASCII" }), db("reports", "reporting"), available] }, { rows: [{ extname: "pg_stat_statements" }] }]), context);
    expect(d.changes).toEqual([]);
    expect(d.warnings).toEqual([expect.stringMatching(/^database appdb has encoding SQL_ASCII, the inventory says UTF8; pgprov never re-creates a database/)]);
  });

  it("issue 15: an extension whose package is missing is a failure naming the package", () => {
    const cron = databasesArgs.parse({ version: 15, databases: [{ name: "appdb", extensions: ["pg_cron"] }] });
    expect(() => pgDatabases(sql).decide(cron, parts([{ rows: [db("appdb", "postgres"), { datname: null, available: [] }] }, { rows: [] }]), context)).toThrow(
      /extension pg_cron \(database appdb\) is not installed on this host: it comes with the Debian package postgresql-15-cron; list the package in the inventory's postgresql.packages/,
    );
  });
});

describe("issue 15: one psql reads other databases", () => {
  it("issue 15: connects to each database once, and only when it exists", () => {
    const probe = sql.probeIn([
      { database: "postgres", query: "select 1 as a" },
      { database: "appdb", query: "select 2 as b" },
    ]);
    const script = probe.reader.script([probe.item]);
    expect(script).toContain("\\if :pgprov_exists\n\\connect appdb\n\\echo @@0.1\n");
    const [out] = probe.reader.split({ stdout: `@@0.0\n[{"a":1}]\n@@0.1\n!database appdb does not exist\n@@end\n`, stderr: "", code: 0 }, [probe.item]);
    expect(JSON.parse(out!.stdout)).toEqual([{ rows: [{ a: 1 }] }, { error: "database appdb does not exist" }]);
  });
});

describe("issue 15: pgbouncer's side", () => {
  it("issue 15: its hba file holds the access rules and clients, without the rules from DNS names it cannot read", () => {
    const inv = loadInventory(
      write(
        `postgresql: { version: 15, clients: [10.0.9.0/24] }\npooler: { default_pool_size: 5 }\n` +
          `access:\n  - { database: appdb, from: 10.0.0.7, method: scram-sha-256 }\n  - { from: app.example.com, method: scram-sha-256 }\n${HOSTS}`,
      ),
    );
    const pooler = hostVariables(inv, inv.primary, undefined).pooler as Record<string, unknown>;
    // TLS is on by default (issue 10): pgbouncer takes clients over TLS only, so its lines are hostssl.
    expect(pooler.hba).toEqual([
      "hostssl appdb        all                   10.0.0.7/32              scram-sha-256",
      "hostssl all          all                   10.0.9.0/24              scram-sha-256",
    ]);
    expect(pooler).toMatchObject({ enabled: true, port: 6432, pool_mode: "transaction", default_pool_size: 5 });
  });

  it("issue 15: the lookup function is made where it is missing, and waits for a database not created yet", () => {
    const args = poolerLookupArgs.parse({ role: "pgprov_pgbouncer", databases: ["appdb", "new"] });
    const d = pgPoolerLookup(sql).decide(args, parts([{ rows: [{ ok: true }] }, { rows: [] }, { rows: [{ ok: false }] }, { error: "database new does not exist" }]), context);
    expect(d.changes.map((c) => c.summary)).toEqual([
      "database template1: the function pgprov.user_lookup pgbouncer's auth_query calls (SECURITY DEFINER, for pgprov_pgbouncer only)",
      "database appdb: the function pgprov.user_lookup pgbouncer's auth_query calls (SECURITY DEFINER, for pgprov_pgbouncer only)",
    ]);
    expect(d.changes[1]!.commands[0]!.script).toContain("SECURITY DEFINER SET search_path = pg_catalog");
  });
});
