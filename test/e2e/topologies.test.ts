/**
 * Issue 12: replication topologies on 4 bookworm hosts: pg1 the primary, pg2 its synchronous
 * standby (ANY 1), pg3 cascading from pg2, pg4 delayed by 1 minute. Rows, a commit waiting for
 * its synchronous standby, the tree each server streams to, a switchover under a writing client,
 * changes that converge with one apply and no clone (pg1 then leaves the inventory), and a
 * failover that loses no acknowledged commit.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { parseDocument } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Lab, type LabHost, labDown, labExec, labKill, labUp } from "../lab/lab.js";
import { bootstrapCluster, CommittingClient, eventually, inventoryRoles, pgprov, psql } from "./helpers.js";

let lab: Lab;
let inventory: string;
let hosts: LabHost[];
const APP_PASSWORD = "app-test-only-pw";
const SERVICE = "postgresql@15-main";
const MARKER = "/var/lib/postgresql/15/main/pgprov-e2e-no-clone";
const byName = (name: string) => hosts.find((h) => h.name === name)!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Who streams from `host`: application_name:sync_state, sorted. */
async function downstreams(host: string): Promise<string> {
  return (await psql(byName(host), "select coalesce(string_agg(application_name || ':' || sync_state, ',' order by application_name), '') from pg_stat_replication where state = 'streaming'")).out;
}

async function hasRow(host: string, n: number): Promise<boolean> {
  return (await psql(byName(host), `select count(*) from numbered where n = ${n}`)).out === "1";
}

/** The inventory, edited as a user would (its YAML document), then saved. */
function editInventory(edit: (doc: ReturnType<typeof parseDocument>) => void): void {
  const doc = parseDocument(readFileSync(inventory, "utf8"));
  edit(doc);
  writeFileSync(inventory, doc.toString());
}

/** One apply converges: it succeeds, and a second run has nothing left to change. */
async function applyOnce(): Promise<void> {
  const r = await pgprov(["apply", inventory]);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  expect(r.stdout).not.toContain("clone ");
  const again = await pgprov(["apply", inventory, "--check"]);
  expect(again.code, again.stdout).toBe(0);
}

/** A clone replaces the data directory, and this file with it. */
async function markersIntact(names: string[]): Promise<void> {
  for (const n of names) expect((await labExec(byName(n), `test -f ${MARKER} && echo kept`)).stdout.trim(), `${n} was cloned`).toBe("kept");
}

beforeAll(async () => {
  lab = await labUp({ hosts: 4 });
  hosts = lab.hosts;
  inventory = await bootstrapCluster(lab, (doc) => {
    doc.setIn(["replication"], { synchronous: { mode: "quorum", count: 1 } });
    doc.setIn(["hosts", "pg3", "upstream"], "pg2");
    doc.setIn(["hosts", "pg4", "apply_delay"], "1min");
  });
  const setup = await psql(byName("pg1"), `create role app login password '${APP_PASSWORD}'; create table numbered (n int primary key); grant select, insert on numbered to app;`);
  expect(setup.code, setup.err).toBe(0);
  for (const h of ["pg2", "pg3", "pg4"]) await labExec(byName(h), `runuser -u postgres -- touch ${MARKER}`);
});
afterAll(async () => {
  await labDown();
});

describe("issue 12: replication topologies", () => {
  let delayedRowAt = 0;

  it("issue 12: rows written on pg1 arrive on pg2 and pg3 within seconds, and not yet on pg4 (delayed by 1 min)", async () => {
    const w = await psql(byName("pg1"), "insert into numbered values (1)");
    expect(w.code, w.err).toBe(0);
    delayedRowAt = Date.now();
    await eventually("row 1 on pg2", () => hasRow("pg2", 1), 15_000);
    await eventually("row 1 on pg3", () => hasRow("pg3", 1), 15_000);
    expect(await hasRow("pg4", 1)).toBe(false);
    // pg4 has received it: only its replay waits.
    expect((await psql(byName("pg4"), "select pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()")).out).toBe("t");
  });

  it("issue 12: pg_stat_replication on pg1 shows pg2 (quorum) and pg4 (async) but not pg3; on pg2 it shows pg3; status draws the tree", async () => {
    expect(await downstreams("pg1")).toBe("pg2:quorum,pg4:async");
    expect(await downstreams("pg2")).toBe("pg3:async");
    // pg3's slot lives on pg2, not on pg1.
    expect((await psql(byName("pg1"), "select string_agg(slot_name, ',' order by slot_name) from pg_replication_slots")).out).toBe("pgprov_pg2,pgprov_pg4");
    expect((await psql(byName("pg2"), "select string_agg(slot_name, ',' order by slot_name) from pg_replication_slots")).out).toBe("pgprov_pg3");

    const status = await pgprov(["status", inventory]);
    expect(status.code, status.stdout).toBe(0);
    expect(status.stdout).toContain(["pg1 (primary)", "├── pg2 (quorum)", "│   └── pg3 (async)", "└── pg4 (async, apply delay 1min)"].join("\n"));
    const json = (await pgprov(["status", inventory, "--json"])).stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(json.find((x) => x.host === "pg3")).toMatchObject({ upstream: "pg2", expected_upstream: "pg2", sync_state: "async", streaming: "streaming" });
    expect(json.find((x) => x.host === "pg4")).toMatchObject({ upstream: "pg1", apply_delay: "1min" });
  });

  it("issue 12: with count 1 and pg2 stopped, a commit on pg1 waits; starting pg2 releases it", async () => {
    await labExec(byName("pg2"), `systemctl stop ${SERVICE}`);
    const started = Date.now();
    let finished = 0;
    const commit = psql(byName("pg1"), "insert into numbered values (2)").then((r) => {
      finished = Date.now();
      return r;
    });
    await sleep(3_000);
    expect(finished, "the commit did not wait for pg2").toBe(0);
    await labExec(byName("pg2"), `systemctl start ${SERVICE}`);
    const r = await Promise.race([commit, sleep(60_000).then(() => undefined)]);
    expect(r?.code, "the commit was not released within 60 s of starting pg2").toBe(0);
    expect(finished - started).toBeGreaterThanOrEqual(2_000);
    await eventually("pg3 streaming from pg2 again", async () => (await downstreams("pg2")) === "pg3:async", 60_000);
  });

  it("issue 12: the row reaches pg4 only after its delay", async () => {
    const early = delayedRowAt + 50_000 - Date.now();
    if (early > 0) await sleep(early);
    expect(await hasRow("pg4", 1), "row 1 replayed on pg4 before 50 s").toBe(false);
    await eventually("row 1 on pg4", () => hasRow("pg4", 1), 60_000);
    expect(Date.now() - delayedRowAt).toBeGreaterThanOrEqual(55_000);
  });

  it("issue 12: switchover to pg2 under a writing client: pg3 keeps streaming, pg4 keeps its delay, no row lost", async () => {
    const client = new CommittingClient(() => hosts, APP_PASSWORD, () => inventory);
    client.start();
    await eventually("the client to commit", async () => client.committed.length > 20, 60_000);
    const r = await pgprov(["switchover", inventory, "--to", "pg2"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    await eventually("the client to commit on pg2", async () => client.committed.length > 60, 60_000);
    await client.stop();
    expect(inventoryRoles(inventory)).toEqual({ pg1: "standby", pg2: "primary", pg3: "standby", pg4: "standby" });
    // ANY 1 over pg1 and pg3, both streaming from pg2 now; pg4 too, delayed.
    await eventually("pg1, pg3, pg4 streaming from pg2", async () => (await downstreams("pg2")) === "pg1:quorum,pg3:quorum,pg4:async", 60_000);
    expect((await psql(byName("pg2"), "show synchronous_standby_names")).out).toBe(`ANY 1 ("pg1", "pg3")`);
    expect((await psql(byName("pg4"), "show recovery_min_apply_delay")).out).toBe("1min");
    const committed = client.committed;
    for (const h of ["pg2", "pg1", "pg3"]) {
      await eventually(`every committed row on ${h}`, async () => {
        const out = (await psql(byName(h), "select coalesce(string_agg(n::text, ','), '') from numbered")).out;
        const present = new Set(out.split(",").map(Number));
        return committed.every((n) => present.has(n));
      });
    }
    await markersIntact(["pg3", "pg4"]);
  });

  it("issue 12: changing synchronous.count, adding upstream: to a streaming standby, and removing a delay each converge with one apply, without a clone", async () => {
    await labExec(byName("pg1"), `runuser -u postgres -- touch ${MARKER}`);
    editInventory((doc) => doc.setIn(["replication", "synchronous", "count"], 2));
    const plan = await pgprov(["plan", inventory]);
    expect(plan.stdout).toContain("WARNING: replication.synchronous.count is 2, every eligible standby (pg1, pg3)");
    await applyOnce();
    expect((await psql(byName("pg2"), "show synchronous_standby_names")).out).toBe(`ANY 2 ("pg1", "pg3")`);
    editInventory((doc) => doc.setIn(["replication", "synchronous", "count"], 1));
    await applyOnce();

    // pg4 streams from pg2 (the primary): from now on from pg1, on a slot there.
    editInventory((doc) => doc.setIn(["hosts", "pg4", "upstream"], "pg1"));
    await applyOnce();
    await eventually("pg4 streaming from pg1", async () => (await downstreams("pg1")) === "pg4:async", 30_000);
    expect(await downstreams("pg2")).toBe("pg1:quorum,pg3:quorum");
    expect((await psql(byName("pg1"), "select string_agg(slot_name, ',') from pg_replication_slots")).out).toBe("pgprov_pg4");
    expect((await psql(byName("pg2"), "select count(*) from pg_replication_slots where slot_name = 'pgprov_pg4'")).out).toBe("0");

    const w = await psql(byName("pg2"), "insert into numbered values (100000)");
    expect(w.code, w.err).toBe(0);
    editInventory((doc) => doc.deleteIn(["hosts", "pg4", "apply_delay"]));
    await applyOnce();
    expect((await psql(byName("pg4"), "show recovery_min_apply_delay")).out).toBe("0");
    await eventually("row 100000 on pg4 at once", () => hasRow("pg4", 100000), 15_000);
    await markersIntact(["pg1", "pg3", "pg4"]);
  });

  it("issue 12: removing pg4's upstream pg1 from the inventory repoints pg4 to the primary, without a clone", async () => {
    editInventory((doc) => {
      doc.deleteIn(["hosts", "pg1"]);
      doc.deleteIn(["hosts", "pg4", "upstream"]);
    });
    const plan = await pgprov(["plan", inventory]);
    expect(plan.stdout).toContain("create physical replication slot pgprov_pg4");
    await applyOnce();
    // pg4 has no delay any more: it is eligible, beside pg3.
    await eventually("pg3 and pg4 streaming from pg2", async () => (await downstreams("pg2")) === "pg3:quorum,pg4:quorum", 30_000);
    expect((await psql(byName("pg2"), "select string_agg(slot_name, ',' order by slot_name) from pg_replication_slots")).out).toBe("pgprov_pg3,pgprov_pg4");
    expect((await psql(byName("pg2"), "show synchronous_standby_names")).out).toBe(`ANY 1 ("pg3", "pg4")`);
    await markersIntact(["pg3", "pg4"]);
  });

  it("issue 12: failover with ANY 1 over pg3 and pg4: both read, so no acknowledged commit is lost, and it says so", async () => {
    const client = new CommittingClient(() => hosts, APP_PASSWORD, () => inventory);
    client.start();
    await eventually("the client to commit", async () => client.committed.length > 20, 60_000);
    await labKill("pg2");
    // Right after a power loss the standbys may still hear pg2 (wal_receiver_timeout): a refused failover changes nothing, so retry.
    let out = "";
    await eventually(
      "a failover",
      async () => {
        const r = await pgprov(["failover", inventory, "--yes"]);
        out = r.stdout + r.stderr;
        if (r.code !== 0 && !out.includes("refusing to fail over")) throw new Error(out);
        return r.code === 0;
      },
      150_000,
    );
    expect(out).toMatch(/no committed transaction is lost: with ANY 1 of 2 \(pg3, pg4\), every committed transaction is on at least 1 of them; 2 were read/);
    expect(out).toContain("committed transactions: none lost");
    const promoted = Object.entries(inventoryRoles(inventory)).find(([, role]) => role === "primary")![0];
    expect(["pg3", "pg4"]).toContain(promoted);
    await eventually("the client to commit on the new primary", async () => client.committed.length > 40, 90_000).catch(() => {});
    await client.stop();
    const present = new Set((await psql(byName(promoted), "select string_agg(n::text, ',') from numbered")).out.split(",").map(Number));
    expect(client.committed.filter((n) => !present.has(n))).toEqual([]);
  });
});
