/**
 * Issue 11, second reading: archiving and scheduled backups, on 3 database hosts and a backup host
 * (pg4, role: backup), sharing one bootstrap with backups from the start. The repository's
 * outage is made by taking the archive directory away from pgBackRest (chmod on pg4): apply does
 * not repair a mode below the repository's top directory, so the outage lasts until the test ends it.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { parseDocument } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Lab, labDown, labExec, labUp } from "../lab/lab.js";
import { bootstrapCluster, eventually, events, pgprov, psql } from "./helpers.js";

let lab: Lab;
let inventory: string;
const SCRIPT = "/usr/local/lib/pgprov/pgbackrest-backup";
const ARCHIVE = "/var/lib/pgbackrest/archive/main";
const pgbackrest = (args: string) => labExec("pg4", `runuser -u postgres -- pgbackrest --stanza=main ${args}`, { timeoutMs: 300_000 });

/** The stanza's complete backups, as pgBackRest lists them (pgprov backups refuses a stanza with none). */
async function backups(): Promise<{ label: string; type: string }[]> {
  const r = await pgbackrest("info --output=json");
  expect(r.code, r.stdout + r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { backup: { label: string; type: string }[] }[])[0]!.backup.map((b) => ({ label: b.label, type: b.type }));
}

function editInventory(edit: (doc: ReturnType<typeof parseDocument>) => void): void {
  const doc = parseDocument(readFileSync(inventory, "utf8"));
  edit(doc);
  writeFileSync(inventory, doc.toString());
}

interface Finding {
  status: string;
  check: string;
  message: string;
}
async function findings(): Promise<{ code: number; findings: Finding[] }> {
  const r = await pgprov(["check", inventory, "--json"], { timeoutMs: 300_000 });
  return { code: r.code, findings: r.stdout.split("\n").filter((l) => l.includes('"type":"finding"')).map((l) => JSON.parse(l) as Finding) };
}

beforeAll(async () => {
  lab = await labUp({ hosts: 4 });
  inventory = await bootstrapCluster(lab, (doc) => {
    doc.setIn(["hosts", "pg4", "role"], "backup");
  });
});
afterAll(async () => {
  await labDown();
});

describe("issue 11 (second reading): archiving and scheduled backups", () => {
  it("issue 11 item 1/5: archive-push-queue-max and archive_timeout are set; the backup services are bounded and diffs wait for the full", async () => {
    const conf = await labExec("pg1", "cat /etc/pgbackrest/pgbackrest.conf");
    expect(conf.stdout).toMatch(/^archive-push-queue-max=4294967296$/m);
    expect((await psql("pg1", "show archive_timeout")).out).toBe("1min");
    const units = await labExec("pg4", "systemctl show -p TimeoutStartUSec pgprov-backup-full.service pgprov-backup-diff.service; systemctl show -p After pgprov-backup-diff.service");
    expect(units.stdout).toMatch(/^TimeoutStartUSec=12h\n\nTimeoutStartUSec=12h\n/);
    expect(units.stdout).toMatch(/^After=.*pgprov-backup-full\.service/m);
  });

  it("issue 11 item 5: a scheduled diff right after a full backup is skipped (Persistent timers firing both after downtime)", async () => {
    const before = await backups();
    expect(before.at(-1)?.type).toBe("full");
    const r = await labExec("pg4", `PGPROV_SCHEDULED=1 ${SCRIPT} diff`, { timeoutMs: 300_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/a full backup \(\d{8}-\d{6}F\) ended within the hour: this diff backup is skipped/);
    expect(await backups()).toEqual(before);
  });

  it("issue 11 item 4: a delayed standby is never the backup's source; with no fit standby the backup comes from the primary, with a warning", async () => {
    // pg2 first in the inventory, delayed: pgBackRest took the first standby it found.
    editInventory((doc) => doc.setIn(["hosts", "pg2", "apply_delay"], "1h"));
    const apply = await pgprov(["apply", inventory], { timeoutMs: 600_000 });
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect((await labExec("pg4", "cat /etc/pgbackrest/pgbackrest.conf")).stdout).not.toMatch(new RegExp(`host=${lab.hosts[1]!.address}$`, "m"));
    // Writes the delayed standby will not replay for an hour: a backup from it could not start.
    expect((await psql("pg1", "create table after_delay as select generate_series(1, 1000) n; select pg_switch_wal();")).code).toBe(0);
    const fromPg3 = await pgprov(["backup", inventory, "--type", "incr"], { timeoutMs: 600_000 });
    expect(fromPg3.code, fromPg3.stdout + fromPg3.stderr).toBe(0);
    expect(fromPg3.stderr).not.toMatch(/taking the incr backup from the primary/);

    // No fit standby (pg3 stopped, pg2 delayed): from the primary, saying so, bounded.
    expect((await labExec("pg3", "systemctl stop postgresql@15-main")).code).toBe(0);
    try {
      const fromPrimary = await pgprov(["backup", inventory, "--type", "incr"], { timeoutMs: 600_000 });
      expect(fromPrimary.code, fromPrimary.stdout + fromPrimary.stderr).toBe(0);
      expect(fromPrimary.stderr + fromPrimary.stdout).toMatch(/no standby could be backed up from .*taking the incr backup from the primary/);
    } finally {
      expect((await labExec("pg3", "systemctl start postgresql@15-main")).code).toBe(0);
    }
  });

  it("issue 11 item 3: an interrupted first full backup does not count: the next apply takes one", async () => {
    // A stanza holding only what an interrupted full backup leaves: its directory, not in pgBackRest's list.
    expect((await pgbackrest("stop")).code).toBe(0);
    expect((await pgbackrest("stanza-delete --force")).code).toBe(0);
    expect((await pgbackrest("start")).code).toBe(0);
    expect((await pgbackrest("stanza-create")).code).toBe(0);
    expect((await labExec("pg4", "runuser -u postgres -- mkdir /var/lib/pgbackrest/backup/main/20260101-000000F")).code).toBe(0);
    expect(await backups()).toEqual([]);

    const apply = await pgprov(["apply", inventory, "--json"], { timeoutMs: 900_000 });
    expect(apply.code, apply.stdout.slice(-3000)).toBe(0);
    const taken = events(apply).find((e) => e.type === "task" && e.host === "pg4" && e.task === "the first full backup, when the repository holds none");
    expect(taken).toMatchObject({ status: "changed" });
    expect((await backups()).map((b) => b.type)).toEqual(["full"]);
  });

  it("issue 11 items 1/2/8: a repository outage: apply runs pgBackRest's check and fails; check reports it and the WAL dropped past archive_queue_max; the old archive is reported on every host", async () => {
    // The old local archive on a standby (a former primary): reported there too, never deleted.
    expect((await labExec("pg2", "install -d -o postgres -g postgres /var/lib/postgresql/15/wal-archive && head -c 1M /dev/zero > /var/lib/postgresql/15/wal-archive/x")).code).toBe(0);
    // Small, so that little WAL exceeds it (not from the bootstrap: the WAL of the clones, written
    // before the stanza exists, would exceed it and be dropped).
    editInventory((doc) => doc.set("backup", doc.createNode({ archive_queue_max: "64MB" })));
    const lowered = await pgprov(["apply", inventory], { timeoutMs: 600_000 });
    expect(lowered.code, lowered.stdout + lowered.stderr).toBe(0);
    expect((await labExec("pg1", "cat /etc/pgbackrest/pgbackrest.conf")).stdout).toMatch(/^archive-push-queue-max=67108864$/m);
    expect((await labExec("pg4", `chmod 000 ${ARCHIVE}`)).code).toBe(0);
    try {
      expect((await psql("pg1", "select pg_switch_wal(); create table t1 (n int); select pg_switch_wal();")).code).toBe(0);
      await eventually("pg1's archiver fails", async () => (await psql("pg1", "select last_failed_time > coalesce(last_archived_time, 'epoch') from pg_stat_archiver")).out === "t", 120_000);

      const apply = await pgprov(["apply", inventory, "--json"], { timeoutMs: 600_000 });
      expect(apply.code, apply.stdout.slice(-3000)).toBe(1);
      const failure = events(apply).find((e) => e.type === "failure");
      expect(failure).toMatchObject({ host: "pg1", task: "pgBackRest's check, when the archiver fails or is stale" });
      const warnings = events(apply).filter((e) => e.type === "warning").map((e) => (e as { message: string }).message);
      expect(warnings).toContainEqual(expect.stringMatching(/^pg2: \/var\/lib\/postgresql\/15\/wal-archive \(1\.\dM\), the WAL archive of before pgBackRest, is left in place/));

      // More WAL than archive_queue_max (64MB) while the repository cannot take it: dropped, not kept.
      expect((await psql("pg1", "create table filler as select n, repeat('x', 200) as pad from generate_series(1, 400000) n; select pg_switch_wal();")).code).toBe(0);
      await eventually("pgBackRest drops WAL on pg1", async () => {
        await psql("pg1", "select pg_switch_wal()");
        return (await labExec("pg1", "grep -h 'dropped WAL file' /var/log/pgbackrest/main-archive-push*.log")).code === 0;
      }, 180_000);
      const check = await findings();
      expect(check.code).toBe(2);
      expect(check.findings).toContainEqual(expect.objectContaining({ status: "critical", check: "archive_gap", message: expect.stringMatching(/the archive has a gap/) }));
      // Dropped WAL counts as archived for PostgreSQL: the archiver is no longer failing, so check
      // runs no pgbackrest check now; the gap above is what says so.
      const status = await pgprov(["status", inventory]);
      expect(status.stdout).toMatch(/WAL DROPPED from the archive: [0-9A-F]{24}/);
      expect((await labExec("pg2", "test -f /var/lib/postgresql/15/wal-archive/x")).code).toBe(0);
    } finally {
      await labExec("pg4", `chmod 750 ${ARCHIVE}`);
    }
    // The repository back: apply's check passes, and a backup after the gap makes it a warning.
    const apply = await pgprov(["apply", inventory], { timeoutMs: 600_000 });
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    const full = await pgprov(["backup", inventory, "--type", "full"], { timeoutMs: 600_000 });
    expect(full.code, full.stdout + full.stderr).toBe(0);
    const after = await findings();
    expect(after.findings).toContainEqual(expect.objectContaining({ status: "warning", check: "archive_gap" }));
    // The archiver healthy again: check does not run pgBackRest's check (it would switch a WAL segment on every run).
    expect(after.findings.filter((f) => f.check === "pgbackrest_check")).toEqual([]);
    expect(after.findings).toContainEqual(expect.objectContaining({ status: "ok", check: "archiving" }));
  });
});
