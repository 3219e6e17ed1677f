/**
 * Issue 11: backups and point-in-time recovery with pgBackRest, on 3 database hosts and a backup
 * host (pg4, role: backup), sharing one bootstrap: the cluster is first made as before (WAL
 * archived to a local directory), then converged to pgBackRest by one apply (the migration).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { parseDocument } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Lab, type LabHost, labDown, labExec, labUp } from "../lab/lab.js";
import { bootstrapCluster, eventually, events, pgprov, psql } from "./helpers.js";

let lab: Lab;
let inventory: string;
let hosts: LabHost[];
const byName = (name: string) => hosts.find((h) => h.name === name)!;
const pgbackrest = (args: string) => labExec("pg4", `runuser -u postgres -- pgbackrest --stanza=main ${args}`, { timeoutMs: 300_000 });

interface Listed {
  backups: { label: string; type: string; wal_start: string }[];
  restorable?: { earliest: string; latest: string };
}
async function backups(): Promise<Listed> {
  const r = await pgprov(["backups", inventory, "--json"]);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!) as Listed;
}

beforeAll(async () => {
  lab = await labUp({ hosts: 4 });
  hosts = lab.hosts;
  // As before this issue: pg1..pg3 only, WAL archived to the primary's wal-archive directory
  // (made here: pgprov without backups now archives nowhere, and makes no such directory).
  inventory = await bootstrapCluster(lab, (doc) => doc.deleteIn(["hosts", "pg4"]));
  expect((await labExec("pg1", "install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/15/wal-archive && touch /var/lib/postgresql/15/wal-archive/000000010000000000000001")).code).toBe(0);
});
afterAll(async () => {
  await labDown();
});

describe("issue 11: backups and point-in-time recovery with pgBackRest", () => {
  it("issue 11: a cluster made before converges with one apply: the stanza, check, a first full backup; the old archive left and reported", async () => {
    expect((await labExec("pg1", "test -d /var/lib/postgresql/15/wal-archive")).code).toBe(0);
    const doc = parseDocument(readFileSync(inventory, "utf8"));
    doc.setIn(["hosts", "pg4"], doc.createNode({ address: byName("pg4").address, role: "backup" }, { flow: true }));
    // Small, so that the slot test below writes past it quickly.
    doc.setIn(["replication"], doc.createNode({ max_slot_wal_keep_size: "32MB" }));
    doc.setIn(["backup"], doc.createNode({ retention: { full: 2, diff: 3 }, schedule: { full: "Sun 02:00", diff: "Mon..Sat 02:00" } }));
    writeFileSync(inventory, doc.toString());

    const plan = await pgprov(["plan", inventory]);
    expect(plan.code, plan.stdout + plan.stderr).toBe(2);
    expect(plan.stdout).toMatch(/archive_command = 'pgbackrest --stanza=main archive-push %p'/);

    const apply = await pgprov(["apply", inventory], { timeoutMs: 900_000 });
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(apply.stdout).toMatch(/pg1: \/var\/lib\/postgresql\/15\/wal-archive \(.*\), the WAL archive of before pgBackRest, is left in place/);
    expect((await labExec("pg1", "test -d /var/lib/postgresql/15/wal-archive")).code).toBe(0);
    const check = await pgbackrest("check");
    expect(check.code, check.stderr).toBe(0);
    const listed = await backups();
    expect(listed.backups.map((b) => b.type)).toEqual(["full"]);
    // Converged: a rerun changes nothing.
    const again = await pgprov(["apply", inventory, "--check"]);
    expect(again.code, again.stdout).toBe(0);
  });

  it("issue 11: WAL is archived: pg_switch_wal, then archive-get of that segment works from a standby", async () => {
    const seg = (await psql(byName("pg1"), "select pg_walfile_name(pg_current_wal_lsn()); select pg_switch_wal();")).out.split("\n")[0]!;
    expect(seg).toMatch(/^[0-9A-F]{24}$/);
    await eventually(`${seg} in the repository, fetched from pg2`, async () => {
      return (await labExec("pg2", `runuser -u postgres -- pgbackrest --stanza=main archive-get ${seg} /tmp/${seg} && test -s /tmp/${seg}`)).code === 0;
    }, 60_000);
    const conf = await psql(byName("pg2"), "show restore_command");
    expect(conf.out).toBe('pgbackrest --stanza=main archive-get %f "%p"');
  });

  it("issue 11: the timers are enabled, and their next runs match the schedule", async () => {
    const timers = await labExec("pg4", "systemctl is-enabled pgprov-backup-full.timer pgprov-backup-diff.timer && systemctl list-timers 'pgprov-backup-*' --no-pager");
    expect(timers.code, timers.stderr).toBe(0);
    expect(timers.stdout).toMatch(/Sun \d{4}-\d\d-\d\d 02:00:00 UTC .*pgprov-backup-full\.timer/);
    expect(timers.stdout).toMatch(/(Mon|Tue|Wed|Thu|Fri|Sat) \d{4}-\d\d-\d\d 02:00:00 UTC .*pgprov-backup-diff\.timer/);
  });

  it("issue 11: PITR: restore --to a time after the insert and before the drop brings every row back, on the primary and every standby, which stream again", async () => {
    expect((await psql(byName("pg1"), "create table kept (n int); insert into kept select generate_series(1, 1000);")).code).toBe(0);
    await new Promise((r) => setTimeout(r, 1500));
    const at = (await psql(byName("pg1"), "select to_char(now() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")).out;
    await new Promise((r) => setTimeout(r, 1500));
    expect((await psql(byName("pg1"), "drop table kept; select pg_switch_wal();")).code).toBe(0);
    await eventually("the WAL with the drop in the archive", async () => new Date((await backups()).restorable!.latest) > new Date(at), 60_000);

    // A target no backup covers is refused, naming the range, with nothing stopped.
    const future = await pgprov(["restore", inventory, "--to", "2999-01-01T00:00:00Z", "--yes"]);
    expect(future.code).toBe(1);
    expect(future.stderr).toMatch(/refusing to restore: 2999-01-01T00:00:00.000Z is in the future; the repository can restore from .* to .*; nothing was stopped/);
    const early = await pgprov(["restore", inventory, "--to", "2000-01-01T00:00:00Z", "--yes"]);
    expect(early.stderr).toMatch(/before the end of the oldest backup/);
    expect((await psql(byName("pg1"), "select pg_is_in_recovery()")).out).toBe("f");
    // Without a terminal and without --yes: refused before anything.
    const unasked = await pgprov(["restore", inventory, "--to", at]);
    expect(unasked.code).toBe(1);
    expect(unasked.stderr).toMatch(/pass --yes/);

    const r = await pgprov(["restore", inventory, "--to", at, "--yes"], { timeoutMs: 900_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/LOST: every write committed after/);
    for (const h of ["pg1", "pg2", "pg3"]) {
      await eventually(`every row back on ${h}`, async () => (await psql(byName(h), "select count(*) from kept")).out === "1000", 60_000);
    }
    const status = await pgprov(["status", inventory]);
    expect(status.code, status.stdout).toBe(0);
  });

  it("issue 11: a standby whose slot was invalidated catches up from the archive after an apply, with no clone", async () => {
    // What a clone would change (its data directory swapped in: another inode), and what pgBackRest logs per segment archive-get finds.
    const inode = async () => (await labExec("pg3", "stat -c %i /var/lib/postgresql/15/main")).stdout.trim();
    // restore_command (pgbackrest archive-get) succeeding, as PostgreSQL logs it.
    const fetched = async () => Number((await labExec("pg3", "grep -c 'restored log file' /var/log/postgresql/postgresql-15-main.log")).stdout.trim() || 0);
    const [inodeBefore, fetchedBefore] = [await inode(), await fetched()];
    expect((await labExec("pg3", "systemctl stop postgresql@15-main")).code).toBe(0);
    // More WAL than max_slot_wal_keep_size (32MB), then checkpoints: the slot is invalidated.
    const write = await psql(byName("pg1"), "create table filler as select n, repeat('x', 200) as pad from generate_series(1, 300000) n; select pg_switch_wal(); checkpoint; checkpoint;");
    expect(write.code, write.err).toBe(0);
    await eventually("pg3's slot invalidated", async () => {
      await psql(byName("pg1"), "select pg_switch_wal(); checkpoint;");
      return (await psql(byName("pg1"), "select wal_status from pg_replication_slots where slot_name = 'pgprov_pg3'")).out === "lost";
    }, 60_000);
    const apply = await pgprov(["apply", inventory, "--json"], { timeoutMs: 600_000 });
    expect(apply.code, apply.stdout.slice(-3000)).toBe(0);
    const changed = events(apply).filter((e) => e.type === "task").map((e) => JSON.stringify(e));
    expect(changed.join("\n")).toMatch(/make slot pgprov_pg3 again/);
    await eventually("filler on pg3", async () => (await psql(byName("pg3"), "select count(*) from filler")).out === "300000", 60_000);
    // No pg_basebackup ran (the clone's task did nothing, the data directory is the same one), and
    // pg3 took the WAL its slot no longer held from the repository (restore_command, counted before and after).
    const clone = events(apply).find((e) => e.type === "task" && e.host === "pg3" && e.task === "clone the primary where this host does not hold the cluster");
    expect(clone).toMatchObject({ status: "ok" });
    expect(await inode()).toBe(inodeBefore);
    expect(await fetched()).toBeGreaterThan(fetchedBefore);
  });

  it("issue 11: retention: after 3 full backups with full: 2, the oldest is expired, and its WAL with it", async () => {
    const oldest = (await backups()).backups.find((b) => b.type === "full")!;
    const first = [oldest.label];
    // The first segment of the oldest full backup, in the repository now (compressed: SEGMENT-hash.gz).
    const segment = (wal: string) => labExec("pg4", `ls /var/lib/pgbackrest/archive/main/*/${wal.slice(0, 16)}/${wal}-*`);
    expect((await segment(oldest.wal_start)).code).toBe(0);
    for (let i = 0; i < 2; i++) {
      const r = await pgprov(["backup", inventory, "--type", "full"], { timeoutMs: 600_000 });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^backup \d{8}-\d{6}F \(full\): .* in the repository on pg4, in \d+\.\d s$/m);
    }
    const fulls = (await backups()).backups.filter((b) => b.type === "full").map((b) => b.label);
    expect(fulls).toHaveLength(2);
    expect(fulls).not.toContain(first[0]);
    expect((await segment(oldest.wal_start)).code).not.toBe(0);

    // status: the last backup's age and type, and pg_stat_archiver; check: the backup's age.
    const status = await pgprov(["status", inventory]);
    expect(status.stdout).toMatch(new RegExp(`^backups: +last full backup ${fulls.at(-1)}, 0\\.\\d h ago; archiving: \\d+ failed`, "m"));
    const check = await pgprov(["check", inventory, "--json"]);
    const age = check.stdout.split("\n").filter((l) => l.includes('"backup_age"')).map((l) => JSON.parse(l) as { status: string; message: string });
    expect(age).toEqual([expect.objectContaining({ status: "ok", message: expect.stringContaining(`the last backup, ${fulls.at(-1)} (full), ended 0.`) })]);
  });

  it("issue 11: drift: the stanza deleted, archive_command edited by hand, the timer disabled, a schedule type taken out: one apply repairs each", async () => {
    expect((await pgbackrest("stop")).code).toBe(0);
    expect((await pgbackrest("stanza-delete --force")).code).toBe(0);
    expect((await pgbackrest("start")).code).toBe(0);
    expect((await labExec("pg1", "sed -i \"s|^archive_command = .*|archive_command = '/bin/true'|\" /etc/postgresql/15/main/conf.d/pgprov.conf && systemctl reload postgresql@15-main")).code).toBe(0);
    expect((await labExec("pg4", "systemctl disable --now pgprov-backup-full.timer")).code).toBe(0);
    // A schedule type taken out of the inventory: its timer goes with it (declared state).
    const doc = parseDocument(readFileSync(inventory, "utf8"));
    doc.deleteIn(["backup", "schedule", "diff"]);
    writeFileSync(inventory, doc.toString());

    const apply = await pgprov(["apply", inventory], { timeoutMs: 900_000 });
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect((await pgbackrest("check")).code).toBe(0);
    await eventually("archive_command back", async () => (await psql(byName("pg1"), "show archive_command")).out === "pgbackrest --stanza=main archive-push %p");
    expect((await labExec("pg4", "systemctl is-enabled pgprov-backup-full.timer && systemctl is-active pgprov-backup-full.timer")).code).toBe(0);
    const diff = await labExec("pg4", "systemctl is-enabled pgprov-backup-diff.timer; systemctl is-active pgprov-backup-diff.timer");
    expect(diff.stdout.trim().split("\n")).toEqual(["disabled", "inactive"]);
    expect((await backups()).backups.map((b) => b.type)).toEqual(["full"]);
  });

  it("issue 11: PITR with --latest after the primary's data directory is lost: every row back on the primary and every standby, which stream again", async () => {
    const write = await psql(byName("pg1"), "create table survivor (n int); insert into survivor select generate_series(1, 500); select pg_walfile_name(pg_current_wal_lsn()); select pg_switch_wal();");
    expect(write.code, write.err).toBe(0);
    const seg = write.out.split("\n")[0]!;
    await eventually(`${seg}, with the rows, in the repository`, async () => (await labExec("pg2", `runuser -u postgres -- pgbackrest --stanza=main archive-get ${seg} /tmp/latest-${seg}`)).code === 0, 60_000);
    // The loss: the server stopped, its data directory gone.
    expect((await labExec("pg1", "systemctl stop postgresql@15-main && rm -rf /var/lib/postgresql/15/main")).code).toBe(0);

    const r = await pgprov(["restore", inventory, "--latest", "--yes"], { timeoutMs: 900_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/LOST: every write that had not reached the archive/);
    expect((await psql(byName("pg1"), "select pg_is_in_recovery()")).out).toBe("f");
    for (const h of ["pg1", "pg2", "pg3"]) {
      await eventually(`every row back on ${h}`, async () => (await psql(byName(h), "select count(*) from survivor")).out === "500", 60_000);
    }
    await eventually("pg2 and pg3 stream from pg1", async () => (await psql(byName("pg1"), "select string_agg(application_name, ',' order by application_name) from pg_stat_replication where state = 'streaming'")).out === "pg2,pg3", 120_000);
  });
});
