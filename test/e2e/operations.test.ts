/**
 * Day-2 operations on a bookworm cluster: switchover and back under a committing client, failover
 * after the primary's host is killed outright, the old primary coming back (apply refuses and
 * names rejoin; rejoin makes it a standby), and a standby removed from the inventory.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadInventory } from "../../src/inventory/inventory.js";
import { type Lab, type LabHost, labBoot, labDown, labExec, labKill, labUp } from "../lab/lab.js";
import { bootstrapCluster, CommittingClient, eventually, inventoryRoles, liveRoles as liveRolesOf, pgprov, psql } from "./helpers.js";

let lab: Lab;
let inventory: string;
let hosts: LabHost[];
const APP_PASSWORD = "app-test-only-pw";
const byName = (name: string) => hosts.find((h) => h.name === name)!;

async function roles(): Promise<Record<string, string>> {
  return inventoryRoles(inventory);
}

async function liveRoles(names: string[]): Promise<Record<string, string>> {
  return liveRolesOf(names.map(byName));
}

async function numbersOn(host: LabHost): Promise<number[]> {
  const out = (await psql(host, "select coalesce(string_agg(n::text, ',' order by n), '') from numbered")).out;
  return out ? out.split(",").map(Number) : [];
}

beforeAll(async () => {
  lab = await labUp({ hosts: 3 });
  hosts = lab.hosts;
  inventory = await bootstrapCluster(lab);
  // A comment on a host's line: rewriting roles must keep it.
  writeFileSync(inventory, readFileSync(inventory, "utf8").replace(/(  pg2: \{[^}]*\})/, "$1   # the analytics replica"));
  const setup = await psql(byName("pg1"), `create role app login password '${APP_PASSWORD}'; create table numbered (n int primary key); grant select, insert on numbered to app;`);
  expect(setup.code, setup.err).toBe(0);
});
afterAll(async () => {
  await labDown();
});

describe("day-2 operations", () => {
  const client = new CommittingClient(() => hosts, APP_PASSWORD, () => inventory);

  it("switches over to a standby and back while a client commits, losing no committed row", async () => {
    client.start();
    await eventually("the client to commit", async () => client.committed.length > 20);

    const there = await pgprov(["switchover", inventory, "--to", "pg2"]);
    expect(there.code, there.stdout).toBe(0);
    expect(there.stdout).toMatch(/stopped pg1 cleanly and marked it a standby \(standby.signal\); its last WAL record, the shutdown checkpoint, is at [0-9A-F]+\/[0-9A-F]+/);
    expect(there.stdout).toMatch(/promoted pg2; no server accepted writes for \d+\.\d\d s/);
    expect(await roles()).toEqual({ pg1: "standby", pg2: "primary", pg3: "standby" });
    expect(await liveRoles(["pg1", "pg2", "pg3"])).toEqual(await roles());
    expect(readFileSync(inventory, "utf8")).toContain("# the analytics replica");
    await eventually("the client to commit on pg2", async () => client.committed.length > 60);

    const back = await pgprov(["switchover", inventory, "--to", "pg1"]);
    expect(back.code, back.stdout).toBe(0);
    expect(await roles()).toEqual({ pg1: "primary", pg2: "standby", pg3: "standby" });
    expect(await liveRoles(["pg1", "pg2", "pg3"])).toEqual(await roles());
    await eventually("the client to commit on pg1 again", async () => client.committed.length > 100);
    await client.stop();

    const status = await pgprov(["status", inventory]);
    expect(status.code, status.stdout).toBe(0);
    const committed = client.committed;
    expect(committed.length).toBeGreaterThan(100);
    for (const h of hosts) {
      await eventually(`every committed row on ${h.name}`, async () => {
        const present = new Set(await numbersOn(h));
        return committed.every((n) => present.has(n));
      });
    }
  });

  it("fails over to the most advanced standby when the primary's host dies", async () => {
    // Writes stopped (above); every standby has caught up.
    await eventually("the standbys to catch up", async () => {
      const r = await psql(byName("pg1"), "select count(*) from pg_stat_replication where replay_lsn = pg_current_wal_lsn()");
      return r.out === "2";
    });
    const rowsBefore = await numbersOn(byName("pg1"));
    await labKill("pg1");

    const r = await pgprov(["failover", inventory, "--yes"]);
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toContain("pg1 cannot be reached");
    const promoted = (/promoting (pg\d)/.exec(r.stdout) ?? [])[1]!;
    expect(["pg2", "pg3"]).toContain(promoted);
    const other = promoted === "pg2" ? "pg3" : "pg2";
    expect((await roles())[promoted]).toBe("primary");
    expect((await roles()).pg1).toBe("standby");
    expect(await numbersOn(byName(promoted))).toEqual(rowsBefore);

    // The other standby follows the new timeline.
    await eventually(`${other} to stream from ${promoted}`, async () => (await psql(byName(promoted), "select string_agg(application_name || ':' || state, ',') from pg_stat_replication")).out === `${other}:streaming`);
    expect(Number((await psql(byName(other), "select received_tli from pg_stat_wal_receiver")).out)).toBeGreaterThan(1);

    // The client's read-write connection string reaches the new primary.
    const strings = await pgprov(["status", inventory, "--json"]);
    const cluster = strings.stdout.trim().split("\n").map((l) => JSON.parse(l)).find((x) => x.type === "cluster");
    await labExec(byName(other), `printf '*:*:*:app:${APP_PASSWORD}\\n' > /root/.pgpass && chmod 600 /root/.pgpass`);
    // It verifies the servers with the cluster's CA (issue 10): a client keeps its own copy (pgprov ca).
    const caFile = join(dirname(inventory), ".pgprov", "inventory.ca.crt");
    await labExec(byName(other), `cat > /root/cluster-ca.crt <<'EOF'\n${readFileSync(caFile, "utf8")}EOF`);
    const url = cluster.connection_strings.read_write.replace("/postgres?", "/postgres?user=app&").replace(encodeURIComponent(caFile), "/root/cluster-ca.crt");
    expect(url).toContain("sslmode=verify-full&sslrootcert=/root/cluster-ca.crt");
    const reached = await labExec(byName(other), `PGPASSFILE=/root/.pgpass PGCONNECT_TIMEOUT=3 psql -XAt "${url}" -c "select inet_server_addr()"`);
    expect(reached.stdout.trim()).toBe(byName(promoted).address);
  });

  it("issue 8 second reading, item 1: the old primary, unreachable during failover, boots read-only (fenced at boot), apply refuses naming rejoin; rejoin makes it a standby", async () => {
    await labBoot("pg1");
    // Its service starts at boot (postgresql-common, start.conf auto); pgprov's ExecStartPre asks
    // the other members first, finds the promoted one writable on a later timeline, and fences it.
    await eventually("pg1's server to start", async () => (await psql(byName("pg1"), "select pg_is_in_recovery()")).out !== "");
    expect((await psql(byName("pg1"), "select pg_is_in_recovery()")).out).toBe("t");
    expect((await labExec(byName("pg1"), "cat /var/lib/postgresql/15/main/pgprov.fenced")).stdout).toMatch(/fenced at boot by pgprov on pg1: pg\d \(.*\) is a writable primary on timeline \d+/);
    const refused = await pgprov(["apply", inventory]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/pg1 \(timeline \d+\) was fenced by a failover \(fenced at boot.*run `pgprov rejoin .* pg1`/);

    const r = await pgprov(["rejoin", inventory, "pg1", "--yes"]);
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toContain("rewound pg1");
    const status = await pgprov(["status", inventory, "--json"]);
    const pg1 = status.stdout.trim().split("\n").map((l) => JSON.parse(l)).find((x) => x.host === "pg1");
    expect(pg1).toMatchObject({ role: "standby", streaming: "streaming" });
    expect(status.code, status.stdout).toBe(0);
  });

  it("drops a removed standby's slot, and leaves the rest of the cluster as it was", async () => {
    const primary = loadInventory(inventory).primary;
    const standbys = loadInventory(inventory).standbys.map((h) => h.name);
    const removed = standbys[standbys.length - 1]!;
    const kept = standbys.filter((s) => s !== removed);
    const started = async (n: string) => (await psql(byName(n), "select pg_postmaster_start_time()")).out;
    const before = Object.fromEntries(await Promise.all([primary.name, ...kept].map(async (n) => [n, await started(n)])));
    writeFileSync(inventory, readFileSync(inventory, "utf8").replace(new RegExp(`\\n  ${removed}: .*`), ""));

    const plan = await pgprov(["plan", inventory]);
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain(`drop slot pgprov_${removed}`);
    const r = await pgprov(["apply", inventory]);
    expect(r.code, r.stdout).toBe(0);
    expect((await psql(byName(primary.name), `select count(*) from pg_replication_slots where slot_name = 'pgprov_${removed}'`)).out).toBe("0");
    expect(Object.fromEntries(await Promise.all([primary.name, ...kept].map(async (n) => [n, await started(n)])))).toEqual(before);
    const streaming = (await psql(byName(primary.name), "select string_agg(application_name || ':' || state, ',' order by application_name) from pg_stat_replication")).out;
    expect(streaming).toBe(kept.map((k) => `${k}:streaming`).join(","));
    // The removed host itself was not touched: its server still runs.
    expect((await labExec(byName(removed), "systemctl is-active postgresql@15-main")).stdout.trim()).toBe("active");
  });
});
