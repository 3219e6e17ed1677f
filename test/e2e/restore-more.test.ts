/**
 * Issue 11, restore's second reading: 3 database hosts and a backup host (pg4) sharing one
 * bootstrap with pgBackRest from the start. Recovery settings left in postgresql.auto.conf; a PITR
 * restored into a new directory beside the old one, which is kept, with the repository's backups
 * paused meanwhile; then --latest after that PITR and a later backup of the abandoned timeline.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Lab, type LabHost, labDown, labExec, labUp } from "../lab/lab.js";
import { bootstrapCluster, eventually, pgprov, psql } from "./helpers.js";

let lab: Lab;
let inventory: string;
let hosts: LabHost[];
const byName = (name: string) => hosts.find((h) => h.name === name)!;
const DATABASES = ["pg1", "pg2", "pg3"];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function rowsOn(host: string): Promise<string> {
  return (await psql(byName(host), "select count(*) || ':' || max(n) from kept")).out;
}

async function utcNow(): Promise<string> {
  return (await psql(byName("pg1"), "select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")).out;
}

/** Each standby's WAL receiver: "streaming on timeline N". */
async function receivers(): Promise<string[]> {
  const out: string[] = [];
  for (const h of ["pg2", "pg3"]) out.push(`${h}: ${(await psql(byName(h), "select status || ' on timeline ' || received_tli from pg_stat_wal_receiver")).out}`);
  return out;
}

beforeAll(async () => {
  lab = await labUp({ hosts: 4 });
  hosts = lab.hosts;
  inventory = await bootstrapCluster(lab, (doc) => {
    doc.setIn(["hosts", "pg4"], doc.createNode({ address: lab.hosts.find((h) => h.name === "pg4")!.address, role: "backup" }, { flow: true }));
    doc.setIn(["backup"], doc.createNode({ retention: { full: 3, diff: 3 }, schedule: { full: "Sun 02:00", diff: "Mon..Sat 02:00" } }));
  });
}, 1_500_000);
afterAll(async () => {
  await labDown();
});

describe("issue 11: restore, second reading", () => {
  it("issue 11: recovery_target* left in postgresql.auto.conf outside a restore: check reports it, apply removes it", async () => {
    const set = await psql(byName("pg2"), "alter system set recovery_target_time = '2000-01-01 00:00:00+00'; alter system set recovery_target_action = 'promote';");
    expect(set.code, set.err).toBe(0);
    const check = await pgprov(["check", inventory, "--json"]);
    const found = check.stdout.split("\n").filter((l) => l.includes('"recovery_settings"')).map((l) => JSON.parse(l) as { status: string; host: string; message: string });
    expect(found, check.stdout).toEqual([expect.objectContaining({ status: "critical", host: "pg2", message: expect.stringMatching(/recovery_target_action, recovery_target_time .*postgresql\.auto\.conf/) })]);
    const apply = await pgprov(["apply", inventory], { timeoutMs: 600_000 });
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect((await labExec("pg2", "grep -c recovery_target /var/lib/postgresql/15/main/postgresql.auto.conf")).stdout.trim()).toBe("0");
    const again = await pgprov(["check", inventory, "--json"]);
    expect(again.stdout).not.toMatch(/"recovery_settings"/);
  });

  it("issue 11: restore --to restores into a new directory and keeps the old one, with the repository's backups paused; no recovery settings left; the standbys stream on the new timeline", async () => {
    expect((await psql(byName("pg1"), "create table kept (n int); insert into kept select generate_series(1, 100); select pg_switch_wal();")).code).toBe(0);
    await sleep(1500);
    const at = await utcNow();
    await sleep(1500);
    expect((await psql(byName("pg1"), "insert into kept select generate_series(101, 200); select pg_switch_wal();")).code).toBe(0);
    // A full backup after the target: pgBackRest's own choice by stop time passes it over.
    const backup = await pgprov(["backup", inventory, "--type", "full"], { timeoutMs: 600_000 });
    expect(backup.code, backup.stdout + backup.stderr).toBe(0);

    // Watch the repository host while the restore runs: its backup timers are paused.
    let watching = true;
    const seen = new Set<string>();
    const watcher = (async () => {
      while (watching) {
        const r = await labExec("pg4", "systemctl is-active pgprov-backup-full.timer pgprov-backup-diff.timer || true");
        seen.add(r.stdout.trim().replace(/\n/g, " "));
        await sleep(500);
      }
    })();
    const r = await pgprov(["restore", inventory, "--to", at, "--yes"], { timeoutMs: 900_000 });
    watching = false;
    await watcher;
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect([...seen]).toContain("inactive inactive");
    expect(r.stdout).toMatch(/kept as \/var\/lib\/postgresql\/15\/main\.before-restore-\d{8}T\d{6}Z/);
    for (const h of DATABASES) await eventually(`the rows of ${at} on ${h}`, async () => (await rowsOn(h)) === "100:100", 60_000);
    // Afterwards: the repository runs again, the old directory is there, no recovery setting is left.
    expect((await labExec("pg4", "systemctl is-active pgprov-backup-full.timer pgprov-backup-diff.timer")).code).toBe(0);
    expect((await labExec("pg1", "ls -d /var/lib/postgresql/15/main.before-restore-*/base")).code).toBe(0);
    expect((await labExec("pg1", "grep -E '^(recovery_target|restore_command)' /var/lib/postgresql/15/main/postgresql.auto.conf")).stdout).toBe("");
    expect(await receivers()).toEqual(["pg2: streaming on timeline 2", "pg3: streaming on timeline 2"]);
  });

  it("issue 11: --latest after that PITR and a later backup of the abandoned timeline: the set that reaches the new timeline, and WAL not archived before the stop", async () => {
    // Not switched: these rows are only in the primary's current WAL segment when restore starts.
    expect((await psql(byName("pg1"), "insert into kept select generate_series(1001, 1050);")).code).toBe(0);
    const listed = await pgprov(["backups", inventory, "--json"]);
    const labels = (JSON.parse(listed.stdout.trim().split("\n").at(-1)!) as { backups: { label: string }[] }).backups.map((b) => b.label);
    expect(labels).toHaveLength(2);
    const r = await pgprov(["restore", inventory, "--latest", "--yes"], { timeoutMs: 900_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    // The full backup of the test above stopped on timeline 1 after timeline 2 left it: the first one, not that one.
    expect(r.stdout).toContain(`--set=${labels[0]}`);
    for (const h of DATABASES) await eventually(`every row on ${h}`, async () => (await rowsOn(h)) === "150:1050", 60_000);
    expect(await receivers()).toEqual(["pg2: streaming on timeline 3", "pg3: streaming on timeline 3"]);
  });
});
