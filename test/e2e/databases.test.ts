/**
 * Issue 15: roles, databases, extensions and access rules declared in the inventory, and
 * pgbouncer in front of every server. One bootstrapped primary and two standbys shared by every
 * test, each test adding to the inventory of the one before.
 */
import { readFileSync, writeFileSync } from "node:fs";
import pg from "pg";
import { parseDocument } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Lab, type LabHost, labDown, labExec, labUp } from "../lab/lab.js";
import { bootstrapCluster, eventually, events, pgprov, psql, recapOf } from "./helpers.js";

let lab: Lab;
let inventory: string;
let hosts: LabHost[];
const byName = (name: string) => hosts.find((h) => h.name === name)!;
const APP_PASSWORD = "app-e2e-password-1";
const REPORTING_PASSWORD = "reporting-e2e-password-1";
const env = { PGPROV_APP_PASSWORD: APP_PASSWORD, PGPROV_REPORTING_PASSWORD: REPORTING_PASSWORD };
const CONF = "/etc/postgresql/15/main";

/** Changes the test's inventory in place (keeping what earlier tests added). */
function editInventory(edit: (doc: ReturnType<typeof parseDocument>) => void): void {
  const doc = parseDocument(readFileSync(inventory, "utf8"));
  edit(doc);
  writeFileSync(inventory, doc.toString());
}

/** psql from a lab host to the primary over the network, as `user` with `password` (on stdin's environment, test only). */
async function connect(from: LabHost, opts: { user: string; password: string; database: string; port?: number; host?: string }): Promise<{ code: number; out: string; err: string }> {
  const r = await labExec(
    from,
    `PGPASSWORD='${opts.password}' PGCONNECT_TIMEOUT=5 psql -XAtq -h ${opts.host ?? byName("pg1").address} -p ${opts.port ?? 5432} -U ${opts.user} -d ${opts.database} -c 'select current_user, current_database()'`,
  );
  return { code: r.code, out: r.stdout.trim(), err: r.stderr.trim() };
}

const startTime = async (h: LabHost) => (await psql(h, "select pg_postmaster_start_time()")).out;

beforeAll(async () => {
  lab = await labUp({ hosts: 3 });
  hosts = lab.hosts;
  inventory = await bootstrapCluster(lab);
});
afterAll(async () => {
  await labDown();
});

describe("issue 15: roles, databases, extensions and access rules", () => {
  it("issue 15: 2 roles, 2 databases, pg_stat_statements in one: on the primary, readable on the standbys, one restart each, standbys first", async () => {
    const before = Object.fromEntries(await Promise.all(hosts.map(async (h) => [h.name, await startTime(h)] as const)));
    editInventory((doc) => {
      doc.set("roles", {
        app: { password: { env: "PGPROV_APP_PASSWORD" }, settings: { search_path: "app, public" } },
        reporting: { password: { env: "PGPROV_REPORTING_PASSWORD" }, connection_limit: 10 },
      });
      doc.set("databases", {
        appdb: { owner: "app", extensions: ["pg_stat_statements", "pgcrypto"] },
        reports: { owner: "reporting", encoding: "UTF8", template: "template0" },
      });
      doc.set("access", [
        { database: "appdb", user: "app", from: lab.subnet, method: "scram-sha-256" },
        { database: "reports", user: "app", from: lab.subnet, method: "reject" },
        { database: "reports", user: "reporting", from: lab.subnet, method: "scram-sha-256" },
      ]);
    });
    const plan = await pgprov(["plan", inventory], { env });
    expect(plan.code, plan.stdout + plan.stderr).toBe(2);
    // The clients shorthand lets every role reach every database: plan says so.
    expect(plan.stdout).toMatch(/WARNING: postgresql\.clients lets every role connect to every database from 10\.231\.\d+\.0\/24/);
    expect(plan.stdout + plan.stderr).not.toContain(APP_PASSWORD);

    const r = await pgprov(["apply", inventory, "--json"], { env });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout + r.stderr).not.toContain(APP_PASSWORD);
    expect(r.stdout).not.toContain(REPORTING_PASSWORD);

    // Restarted exactly once each (shared_preload_libraries), the standbys before the primary.
    const restarts = events(r).filter((e) => e.type === "task" && e.task === "restart if a setting needs it" && e.status === "changed");
    expect(restarts.map((e) => (e as { host: string }).host).sort()).toEqual(["pg1", "pg2", "pg3"]);
    expect((restarts.at(-1) as { host: string }).host).toBe("pg1");
    const after = Object.fromEntries(await Promise.all(hosts.map(async (h) => [h.name, await startTime(h)] as const)));
    for (const h of hosts) expect(after[h.name]).not.toBe(before[h.name]);
    expect(new Date(after.pg2!).getTime()).toBeLessThan(new Date(after.pg1!).getTime());
    expect(new Date(after.pg3!).getTime()).toBeLessThan(new Date(after.pg1!).getTime());

    const pg1 = byName("pg1");
    expect((await psql(pg1, "select string_agg(rolname, ',' order by rolname) from pg_roles where rolname in ('app', 'reporting')")).out).toBe("app,reporting");
    expect((await psql(pg1, "select string_agg(datname || ':' || pg_get_userbyid(datdba), ',' order by datname) from pg_database where datname in ('appdb', 'reports')")).out).toBe(
      "appdb:app,reports:reporting",
    );
    const stats = await psql(pg1, "\\c appdb\nselect count(*) > 0 from pg_stat_statements");
    expect(stats.code, stats.err).toBe(0);
    for (const standby of [byName("pg2"), byName("pg3")]) {
      await eventually(`the roles, databases and extensions on ${standby.name}`, async () => {
        const roles = await psql(standby, "select count(*) from pg_roles where rolname in ('app', 'reporting')");
        const ext = await psql(standby, "\\c appdb\nselect string_agg(extname, ',' order by extname) from pg_extension");
        return roles.out === "2" && ext.out === "pg_stat_statements,pgcrypto,plpgsql";
      });
      expect((await psql(standby, "\\c appdb\nselect count(*) >= 0 from pg_stat_statements")).code).toBe(0);
    }

    // Converged: nothing to change, one round trip per host.
    const again = await pgprov(["apply", inventory, "--json"], { env });
    expect(again.code, again.stdout + again.stderr).toBe(0);
    for (const [name, recap] of Object.entries(recapOf(again))) {
      expect(recap.changed, name).toBe(0);
      expect(recap.commands, name).toBe(1);
    }
  });

  it("issue 15: an app role connects from a lab host to its database and is refused on the other (access rules in order)", async () => {
    const pg3 = byName("pg3");
    const ok = await connect(pg3, { user: "app", password: APP_PASSWORD, database: "appdb" });
    expect(ok.code, ok.err).toBe(0);
    expect(ok.out).toBe("app|appdb");
    const refused = await connect(pg3, { user: "app", password: APP_PASSWORD, database: "reports" });
    expect(refused.code).not.toBe(0);
    expect(refused.err).toMatch(/pg_hba\.conf rejects connection for host "[\d.]+", user "app", database "reports"/);
    expect((await connect(pg3, { user: "reporting", password: REPORTING_PASSWORD, database: "reports" })).code).toBe(0);
  });

  it("issue 15: drift (a password changed by hand, an extension dropped, a pg_hba line removed) is repaired by one apply; a database made by hand is left alone", async () => {
    const pg1 = byName("pg1");
    const hand = await psql(pg1, "alter role app password 'changed-by-hand-1';\ncreate database handmade;\n\\c appdb\ndrop extension pgcrypto;");
    expect(hand.code, hand.err).toBe(0);
    await labExec(pg1, `sed -i '/^host\\(ssl\\)\\? *appdb *app /d' ${CONF}/pg_hba.conf && systemctl reload postgresql@15-main`);
    expect((await connect(byName("pg2"), { user: "app", password: APP_PASSWORD, database: "appdb" })).code).not.toBe(0);

    const r = await pgprov(["apply", inventory], { env });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain("role app: the password on the server differs from the inventory's; set it again");
    expect(r.stdout).toContain("database appdb: create extension pgcrypto");
    expect(r.stdout).toMatch(/pg1 +changed +client authentication \(pg_hba\.conf\)/);
    expect(r.stdout).not.toContain(APP_PASSWORD);

    await eventually("app to log in to appdb again", async () => (await connect(byName("pg2"), { user: "app", password: APP_PASSWORD, database: "appdb" })).code === 0);
    expect((await psql(pg1, "\\c appdb\nselect count(*) from pg_extension where extname = 'pgcrypto'")).out).toBe("1");
    expect((await psql(pg1, "select count(*) from pg_database where datname = 'handmade'")).out).toBe("1");
  });

  it("issue 15: state: absent on a role that owns a table is refused, naming the table; once it owns nothing it is dropped", async () => {
    const pg1 = byName("pg1");
    const setup = await psql(pg1, "create role leaver login;\n\\c appdb\ncreate table legacy_orders (n int);\nalter table legacy_orders owner to leaver;");
    expect(setup.code, setup.err).toBe(0);
    editInventory((doc) => doc.setIn(["roles", "leaver"], { state: "absent" }));

    const refused = await pgprov(["apply", inventory], { env });
    expect(refused.code, refused.stdout).toBe(1);
    expect(refused.stdout).toMatch(/refusing to drop role leaver \(state: absent\): it owns table legacy_orders in database appdb/);
    expect((await psql(pg1, "select count(*) from pg_roles where rolname = 'leaver'")).out).toBe("1");

    expect((await psql(pg1, "\\c appdb\ndrop table legacy_orders;")).code).toBe(0);
    const dropped = await pgprov(["apply", inventory], { env });
    expect(dropped.code, dropped.stdout + dropped.stderr).toBe(0);
    expect(dropped.stdout).toContain("drop role leaver (state: absent; it owns nothing)");
    expect((await psql(pg1, "select count(*) from pg_roles where rolname = 'leaver'")).out).toBe("0");
  });
});

describe("issue 15: pgbouncer in front of every server", () => {
  it("issue 15: through pgbouncer on 6432, 50 concurrent clients on a pool of 5 server connections all complete their transactions", async () => {
    editInventory((doc) => doc.set("pooler", { pool_mode: "transaction", default_pool_size: 5, port: 6432 }));
    const r = await pgprov(["apply", inventory], { env });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).not.toContain(APP_PASSWORD);
    // pgbouncer's own role's password (generated) is masked in the output like any secret.
    const poolerSecret = readFileSync(inventory.replace(/inventory\.yml$/, ".pgprov/inventory.pgbouncer.secret"), "utf8").trim();
    expect(r.stdout).not.toContain(poolerSecret);
    const setup = await psql(byName("pg1"), "\\c appdb\ncreate table pooled (n int);\nalter table pooled owner to app;");
    expect(setup.code, setup.err).toBe(0);

    const one = async (n: number) => {
      // Over TLS, pgbouncer's certificate checked against the cluster's CA (issue 10), as against the server.
      const ssl = { ca: readFileSync(inventory.replace(/inventory\.yml$/, ".pgprov/inventory.ca.crt"), "utf8") };
      const client = new pg.Client({ host: byName("pg1").address, port: 6432, user: "app", password: APP_PASSWORD, database: "appdb", ssl, connectionTimeoutMillis: 20_000, query_timeout: 60_000 });
      client.on("error", () => {});
      await client.connect();
      try {
        await client.query("begin");
        await client.query("insert into pooled values ($1)", [n]);
        await client.query("select pg_sleep(0.1)");
        await client.query("commit");
      } finally {
        await client.end();
      }
    };
    const results = await Promise.allSettled(Array.from({ length: 50 }, (_, n) => one(n)));
    expect(results.filter((x) => x.status === "rejected").map((x) => String((x as PromiseRejectedResult).reason))).toEqual([]);
    expect((await psql(byName("pg1"), "\\c appdb\nselect count(distinct n) from pooled")).out).toBe("50");
    const servers = Number((await psql(byName("pg1"), "select count(*) from pg_stat_activity where usename = 'app' and datname = 'appdb'")).out);
    expect(servers).toBeGreaterThan(0);
    expect(servers).toBeLessThanOrEqual(5);
    // Converged with the pooler too: one round trip per host.
    const again = await pgprov(["apply", inventory, "--json"], { env });
    for (const [name, recap] of Object.entries(recapOf(again))) expect([name, recap.changed, recap.commands]).toEqual([name, 0, 1]);
  });

  it("issue 15: a client with the read-write connection string (through the poolers) follows a switchover", async () => {
    const status = await pgprov(["status", inventory, "--json"], { env });
    const cluster = events(status as never).find((e) => (e as { type: string }).type === "cluster") as unknown as { connection_strings: { read_write: string } };
    const readWrite = cluster.connection_strings.read_write;
    expect(readWrite).toMatch(/:6432,.*:6432,.*:6432\/postgres\?target_session_attrs=read-write&sslmode=verify-full&sslrootcert=/);
    // The client verifies the poolers with its own copy of the cluster's CA (pgprov ca), as against the servers.
    const caFile = inventory.replace(/inventory\.yml$/, ".pgprov/inventory.ca.crt");
    await labExec(byName("pg3"), `cat > /root/cluster-ca.crt <<'EOF'\n${readFileSync(caFile, "utf8")}EOF`);
    const url = readWrite.replace("/postgres?", "/appdb?").replace(encodeURIComponent(caFile), "/root/cluster-ca.crt");
    const write = async () => {
      const r = await labExec(byName("pg3"), `PGUSER=app PGPASSWORD='${APP_PASSWORD}' PGCONNECT_TIMEOUT=5 psql -XAtq -v ON_ERROR_STOP=1 '${url}' -c 'insert into pooled values (1000)' -c '\\echo :HOST'`);
      return { code: r.code, host: r.stdout.trim(), err: r.stderr };
    };
    const before = await write();
    expect(before.code, before.err).toBe(0);
    expect(before.host).toBe(byName("pg1").address);

    const sw = await pgprov(["switchover", inventory, "--to", "pg2"], { env });
    expect(sw.code, sw.stdout + sw.stderr).toBe(0);
    const after = await write();
    expect(after.code, after.err).toBe(0);
    expect(after.host).toBe(byName("pg2").address);
  });
});
