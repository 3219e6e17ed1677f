import { describe, expect, it } from "vitest";
import { join } from "node:path";
import { ensureReplicationPassword, loadInventory } from "../../src/inventory/inventory.js";
import { loadClusterPlaybook, targetOf } from "../../src/cluster/playbook.js";
import { hostVariables } from "../../src/cluster/variables.js";
import { isTruthy, renderValue } from "../../src/playbook/template.js";
import { calendarProblem, calendarSubsetProblem } from "../../src/inventory/schedule.js";
import { yamlFiles } from "./yaml-files.js";
import { chooseBackupSet, parseRepositoryInfo, parseRestoreTime, type RepositoryInfo, type RestoreTarget, segmentsBefore } from "../../src/cluster/backup-info.js";
import { backupAgeFinding } from "../../src/cluster/check.js";
import { restoreWritableProblem } from "../../src/cluster/safety.js";
import { restoreLayoutProblem, restorePlanSteps, restoreSpaceNeeded } from "../../src/cluster/backup.js";
import type { DataDirectory } from "../../src/postgres/data-directory.js";
import { jsonKeys } from "../../src/cli/print.js";
import { Redactor } from "../../src/common/redact.js";

const { write, problems } = yamlFiles("backup-inventory", loadInventory);

const HOSTS = `hosts:\n  pg1: { address: 10.0.0.11, role: primary }\n  pg2: { address: 10.0.0.12, role: standby }\n  bk: { address: 10.0.0.20, role: backup }\n`;

describe("issue 11: the backup section and the backup host", () => {
  it("issue 11: a backup host gets the defaults, and stays out of the database hosts", () => {
    const inv = loadInventory(write(HOSTS));
    expect(inv.hosts.map((h) => h.name)).toEqual(["pg1", "pg2"]);
    expect(inv.backup).toMatchObject({
      stanza: "main",
      host: { name: "bk", role: "backup" },
      repositoryPath: "/var/lib/pgbackrest",
      retention: { full: 2, diff: 7 },
      schedule: { full: "Sun 02:00", diff: "Mon..Sat 02:00" },
    });
    expect(inv.replication.maxSlotWalKeepSize).toBe(10 * 1024 ** 3);
  });

  it("issue 11: without a backup host or section, no backups (archiving as before)", () => {
    expect(loadInventory(write(`hosts:\n  pg1: { address: 10.0.0.11, role: primary }\n`)).backup).toBeUndefined();
  });

  it("issue 11: an invalid schedule and a retention of 0 are refused at file:line:col", () => {
    expect(problems(`backup:\n  retention: { full: 0 }\n  schedule: { full: "Sun 25:00", diff: "Mon..Sut 02:00" }\n${HOSTS}`)).toEqual([
      "2:22: backup.retention.full: keep at least 1 full backup (0 would expire every backup and the WAL to restore from), found 0",
      expect.stringMatching(/^3:21: backup\.schedule\.full: "25:00" is not a time of day/),
      expect.stringMatching(/^3:40: backup\.schedule\.diff: "Mon\.\.Sut" is not a weekday/),
    ]);
  });

  it("issue 11: two backup hosts, and a backup host given a PostgreSQL role, are refused", () => {
    expect(problems(`${HOSTS}  bk2: { address: 10.0.0.21, role: backup }\n`)).toEqual(["5:36: hosts.bk2.role: exactly one host may hold the backup repository, found bk, bk2"]);
    expect(problems(`hosts:\n  pg1: { address: 10.0.0.11, role: primary }\n  bk: { address: 10.0.0.20, role: [standby, backup] }\n`)).toEqual([
      expect.stringMatching(/^3:35: hosts\.bk\.role: a host has one role: primary, standby or backup \(a backup host holds no PostgreSQL server/),
    ]);
    expect(problems(`hosts:\n  pg1: { address: 10.0.0.11, role: primary }\n  pg2: { address: 10.0.0.12, role: standby, upstream: bk }\n  bk: { address: 10.0.0.20, role: backup, upstream: pg1 }\n`)).toEqual([
      expect.stringMatching(/^4:53: hosts\.bk\.upstream: bk is the backup host/),
      expect.stringMatching(/^3:55: hosts\.pg2\.upstream: no host named "bk"/),
    ]);
  });

  it("issue 11: a backup host without TLS is refused, naming the alternative", () => {
    expect(problems(`tls: { enabled: false }\n${HOSTS}`)).toEqual([expect.stringMatching(/^5:35: hosts\.bk\.role: a backup host needs TLS .*keep the repository on the primary/)]);
  });
});

describe("issue 11: OnCalendar schedules", () => {
  it("issue 11: accepts the documented subset", () => {
    for (const ok of ["Sun 02:00", "Mon..Sat 02:00", "Mon,Wed *-*-* 03:30", "Sat,Sun 04:15:30", "daily", "*-*-* 00/6:00", "2027-01-* 01:00"]) {
      expect(calendarSubsetProblem(ok), ok).toBeUndefined();
      expect(calendarProblem(ok), ok).toBeUndefined();
    }
  });

  it("issue 11: refuses what is not a schedule, saying why", () => {
    expect(calendarSubsetProblem("Sun 24:00")).toMatch(/"24:00" is not a time of day/);
    expect(calendarSubsetProblem("Mon..Sut 02:00")).toMatch(/"Mon\.\.Sut" is not a weekday/);
    expect(calendarSubsetProblem("Sun")).toMatch(/has no time of day/);
    expect(calendarSubsetProblem("*-13-* 02:00")).toMatch(/is not a date/);
    expect(calendarSubsetProblem("02:00 extra")).toMatch(/after the time of day/);
    expect(calendarSubsetProblem("")).toMatch(/empty schedule/);
    for (const bad of ["Sun 24:00", "Mon..Sut 02:00", "bogus", "02:00\nExecStart=/bin/sh"]) expect(calendarProblem(bad), bad).toBeDefined();
  });
});

describe("issue 11: the repository's range, and restore targets against it", () => {
  const info = JSON.stringify([
    {
      name: "main",
      status: { code: 0, message: "ok" },
      archive: [{ id: "15-1", min: "000000010000000000000001", max: "000000010000000000000009" }],
      backup: [
        { label: "20261127-100000F", type: "full", timestamp: { start: 1795773600, stop: 1795773620 }, info: { size: 23068672, repository: { size: 3040870 } }, archive: { start: "000000010000000000000002", stop: "000000010000000000000002" } },
        { label: "20261127-100000F_20261127-110000D", type: "diff", timestamp: { start: 1795777200, stop: 1795777210 }, info: { size: 23068672, repository: { size: 40960 } }, archive: { start: "000000010000000000000005", stop: "000000010000000000000005" } },
      ],
    },
  ]);
  const parsed = parseRepositoryInfo(info, "main", { newestCommit: new Date(1795780800_000) });
  const now = new Date(1795784400_000);
  const problem = (target: RestoreTarget, i: RepositoryInfo = parsed) => {
    const r = chooseBackupSet(target, i, now);
    return "problem" in r ? r.problem : undefined;
  };
  const setFor = (target: RestoreTarget, i: RepositoryInfo = parsed) => {
    const r = chooseBackupSet(target, i, now);
    return "set" in r ? r.set.label : r.problem;
  };

  it("issue 11: reads labels, types, sizes, WAL and the restorable range from pgbackrest info --output=json", () => {
    expect(parsed.backups.map((b) => [b.label, b.type, b.repository_bytes, b.timeline])).toEqual([
      ["20261127-100000F", "full", 3040870, 1],
      ["20261127-100000F_20261127-110000D", "diff", 40960, 1],
    ]);
    // From one second after the oldest backup's stop (kept in whole seconds) to the newest archived commit.
    expect(parsed.restorable).toEqual({ earliest: new Date(1795773621_000), latest: new Date(1795780800_000), timeline: 1 });
    expect([parsed.wal_min, parsed.wal_max]).toEqual(["000000010000000000000001", "000000010000000000000009"]);
  });

  it("issue 11: a time in the range is accepted; one in the future, before the oldest backup or past the archive is refused, naming the range", () => {
    const range = /the repository can restore from 2026-11-27T\d\d:\d\d:21\.000Z \(just after the end of backup 20261127-100000F\) to 2026-11-27T\d\d:00:00\.000Z \(the newest archived commit\), on timeline 1$/;
    expect(problem({ kind: "time", time: new Date(1795777000_000) })).toBeUndefined();
    expect(problem({ kind: "time", time: new Date(1795790000_000) })).toMatch(/is in the future/);
    expect(problem({ kind: "time", time: new Date(1795790000_000) })).toMatch(range);
    expect(problem({ kind: "time", time: new Date(1795773000_000) })).toMatch(/before the end of the oldest backup/);
    expect(problem({ kind: "time", time: new Date(1795782000_000) })).toMatch(/after the newest commit in the archive/);
    expect(problem({ kind: "backup", label: "nope" })).toMatch(/no backup labelled nope; the repository holds 20261127-100000F, /);
    expect(problem({ kind: "latest" })).toBeUndefined();
    expect(problem({ kind: "latest" }, parseRepositoryInfo("[]", "main"))).toMatch(/holds no backup/);
  });

  it("issue 11: the set is chosen by pgprov (--set): the newest consistent (stop + 1 s) at the target, never one still running at it", () => {
    // Within the first second after the full backup's stop: its consistency point may be later.
    expect(problem({ kind: "time", time: new Date(1795773620_500) })).toMatch(/before the end of the oldest backup/);
    expect(setFor({ kind: "time", time: new Date(1795773621_000) })).toBe("20261127-100000F");
    // After the diff's start, before its stop: the full backup, not the diff.
    expect(setFor({ kind: "time", time: new Date(1795777205_000) })).toBe("20261127-100000F");
    expect(setFor({ kind: "time", time: new Date(1795777211_000) })).toBe("20261127-100000F_20261127-110000D");
    expect(setFor({ kind: "latest" })).toBe("20261127-100000F_20261127-110000D");
    expect(setFor({ kind: "backup", label: "20261127-100000F" })).toBe("20261127-100000F");
  });

  it("issue 11: the range ends at the newest archived commit even when a backup ended later (recovery to a time with no commit after it ends FATAL)", () => {
    const quiet = parseRepositoryInfo(info, "main", { newestCommit: new Date(1795777100_000) });
    expect(quiet.restorable!.latest).toEqual(new Date(1795777100_000));
    expect(problem({ kind: "time", time: new Date(1795777205_000) }, quiet)).toMatch(/after the newest commit in the archive/);
    expect(setFor({ kind: "latest" }, quiet)).toBe("20261127-100000F_20261127-110000D");
  });

  it("issue 11: a data directory restore cannot replace by renames is refused before anything stops", () => {
    const ok = { sameFileSystem: true, mountPoint: false, symlink: false, walSymlink: false, tablespaces: 0 };
    expect(restoreLayoutProblem("pg1", "/d/main", ok)).toBeUndefined();
    expect(restoreLayoutProblem("pg1", "/d/main", { ...ok, mountPoint: true, sameFileSystem: false })).toMatch(/^pg1: \/d\/main is a mount point: the restore goes beside it and is renamed into its place/);
    expect(restoreLayoutProblem("pg1", "/d/main", { ...ok, symlink: true })).toMatch(/is a symbolic link/);
    expect(restoreLayoutProblem("pg1", "/d/main", { ...ok, walSymlink: true })).toMatch(/pg_wal is a symbolic link/);
    expect(restoreLayoutProblem("pg1", "/d/main", { ...ok, tablespaces: 2 })).toMatch(/2 tablespaces/);
  });

  it("issue 11: after a PITR (timeline 2), a backup of the abandoned timeline 1 is never chosen, and is named when it is all there is", () => {
    const backup = (label: string, start: number, stop: number, lsn: string, segment: string) => ({
      label, type: "full", timestamp: { start, stop }, info: { size: 1, repository: { size: 1 } }, archive: { start: segment, stop: segment }, lsn: { start: lsn, stop: lsn },
    });
    const json = (backups: unknown[]) => JSON.stringify([{ name: "main", status: { code: 0, message: "ok" }, archive: [{ id: "15-1", min: "000000010000000000000001", max: "000000020000000000000006" }], backup: backups }]);
    const before = backup("20261127-100000F", 1795773600, 1795773620, "0/2000100", "000000010000000000000002");
    // Taken on timeline 1 after the restore's target, where timeline 2 left it (0/3000000).
    const abandoned = backup("20261127-120000F", 1795780800, 1795780810, "0/4000100", "000000010000000000000004");
    const history = { timeline: 2, text: "1\t0/3000000\tbefore 2026-11-27 10:30:00+00\n" };
    const i = parseRepositoryInfo(json([before, abandoned]), "main", { history, newestCommit: new Date(1795784000_000) });
    expect(i.restorable).toMatchObject({ earliest: new Date(1795773621_000), timeline: 2 });
    expect(setFor({ kind: "latest" }, i)).toBe("20261127-100000F");
    expect(setFor({ kind: "time", time: new Date(1795783000_000) }, i)).toBe("20261127-100000F");
    const only = parseRepositoryInfo(json([abandoned]), "main", { history });
    expect(problem({ kind: "latest" }, only)).toMatch(/no backup of stanza main that reaches timeline 2 .*not through 20261127-120000F, of timeline 1: it was taken on a timeline a restore left/);
    expect(segmentsBefore("000000020000000100000001", 3)).toEqual(["000000020000000100000001", "000000020000000100000000", "0000000200000000000000FF"]);
  });

  it("issue 11: --to needs a zone", () => {
    expect(parseRestoreTime("2026-11-27T14:05:00Z").toISOString()).toBe("2026-11-27T14:05:00.000Z");
    expect(parseRestoreTime("2026-11-27 15:05:00+01:00").toISOString()).toBe("2026-11-27T14:05:00.000Z");
    expect(() => parseRestoreTime("2026-11-27 14:05")).toThrow(/ISO 8601 with its zone/);
  });

  it("issue 11: --to refuses a date or time that does not exist, which Date would roll over (2026-02-30 to March 2)", () => {
    expect(() => parseRestoreTime("2026-02-30T12:00:00Z")).toThrow("--to 2026-02-30T12:00:00Z: 2026-02-30 is not a date (no day 30 in month 2 of 2026)");
    expect(() => parseRestoreTime("2026-13-01T12:00:00Z")).toThrow(/2026-13-01 is not a date/);
    expect(() => parseRestoreTime("2026-11-27T24:00:00Z")).toThrow(/24:00:00 is not a time of day/);
    expect(() => parseRestoreTime("2026-11-27T23:60Z")).toThrow(/23:60 is not a time of day/);
    expect(parseRestoreTime("2028-02-29T00:00:00Z").toISOString()).toBe("2028-02-29T00:00:00.000Z");
  });

  it("issue 11: check's finding for the last backup's age", () => {
    const t = { backup_age_hours: { warning: 24, critical: 48 } } as Parameters<typeof backupAgeFinding>[2];
    expect(backupAgeFinding({ label: "L", type: "full", ageSeconds: 3600 }, undefined, t).status).toBe("ok");
    expect(backupAgeFinding({ label: "L", type: "diff", ageSeconds: 30 * 3600 }, undefined, t)).toMatchObject({ status: "warning", message: "the last backup, L (diff), ended 30.0 h ago" });
    expect(backupAgeFinding({ label: "L", type: "full", ageSeconds: 50 * 3600 }, undefined, t).status).toBe("critical");
    expect(backupAgeFinding(undefined, undefined, t).status).toBe("critical");
    expect(backupAgeFinding(undefined, "pg4 cannot be reached", t).status).toBe("unknown");
  });
});

describe("issue 11: dates in --json output", () => {
  it("issue 11: a Date is printed as its ISO time, not as {} (pgprov backups --json)", () => {
    expect(jsonKeys(new Redactor(["secret-value"]).value({ restorable: { latestPoint: new Date(0) } }))).toEqual({ restorable: { latest_point: "1970-01-01T00:00:00.000Z" } });
  });
});

describe("issue 11: the timers follow backup.schedule (declared state)", () => {
  const facts = { os_id: "debian", os_version: "12", os_codename: "bookworm", arch: "amd64", hostname: "x", cpus: 2, memory_mb: 1024 };
  /** What the bundled playbook does to each host's pgprov-backup-*.timer units: "name: enabled|disabled". */
  function timersOf(text: string): Record<string, string[]> {
    const inv = loadInventory(write(text));
    ensureReplicationPassword(inv);
    const playbook = loadClusterPlaybook(join(import.meta.dirname, "../../playbooks/cluster.yml"), inv);
    const out: Record<string, string[]> = {};
    for (const host of [...inv.hosts, ...(inv.backup?.host ? [inv.backup.host] : [])]) {
      const groups = targetOf(host).groups;
      const vars = hostVariables(inv, host, facts);
      out[host.name] = playbook.plays
        .filter((p) => p.hosts.some((h) => h === host.name || h === "all" || groups.includes(h)))
        .flatMap((p) => p.tasks)
        .filter((t) => t.moduleName === "service")
        .map((t) => ({ t, a: renderValue(t.args, vars, t.where) as { name: string; enabled?: boolean } }))
        // The timers' tasks only: others' conditions may read what a run registers.
        .filter(({ a }) => a.name.startsWith("pgprov-backup-"))
        .filter(({ t }) => t.when === undefined || isTruthy(renderValue(t.when, vars, t.where)))
        .map(({ a }) => `${a.name}: ${a.enabled ? "enabled" : "disabled"}`);
    }
    return out;
  }

  it("issue 11: a schedule type taken out of the inventory has its timer stopped and disabled; a host that holds no repository runs none", () => {
    expect(timersOf(`backup:\n  schedule: { full: "Sun 02:00", diff: "Mon..Sat 02:00" }\n${HOSTS}`)).toEqual({
      pg1: ["pgprov-backup-full.timer: disabled", "pgprov-backup-diff.timer: disabled", "pgprov-backup-incr.timer: disabled"],
      pg2: ["pgprov-backup-full.timer: disabled", "pgprov-backup-diff.timer: disabled", "pgprov-backup-incr.timer: disabled"],
      bk: ["pgprov-backup-full.timer: enabled", "pgprov-backup-diff.timer: enabled", "pgprov-backup-incr.timer: disabled"],
    });
    expect(timersOf(`backup:\n  schedule: { full: "Sun 02:00" }\n${HOSTS}`).bk).toEqual([
      "pgprov-backup-full.timer: enabled",
      "pgprov-backup-diff.timer: disabled",
      "pgprov-backup-incr.timer: disabled",
    ]);
    // The repository on the primary's own path: its timers there; none on the standby.
    const local = timersOf(`backup:\n  schedule: { full: "Sun 02:00", incr: "daily" }\nhosts:\n  pg1: { address: 10.0.0.11, role: primary }\n  pg2: { address: 10.0.0.12, role: standby }\n`);
    expect(local.pg1).toEqual(["pgprov-backup-full.timer: enabled", "pgprov-backup-diff.timer: disabled", "pgprov-backup-incr.timer: enabled"]);
    expect(local.pg2).toEqual(["pgprov-backup-full.timer: disabled", "pgprov-backup-diff.timer: disabled", "pgprov-backup-incr.timer: disabled"]);
  });
});

describe("issue 11: restore never leaves two writable servers", () => {
  const data = (over: Partial<DataDirectory>): DataDirectory => ({
    exists: true, entries: 20, standbySignal: true, running: true, partialClone: false, replacedLeft: false,
    userDatabases: 1, userRelations: 9, tablespaces: 0, nextOid: 20000, timeline: 2, state: "in archive recovery", systemIdentifier: "7",
    ...over,
  });

  it("issue 11: refuses to restore while a standby accepts writes (a failover the inventory does not know of), naming it", () => {
    expect(restoreWritableProblem("pg1", [{ name: "pg2", data: data({}) }, { name: "pg3", data: data({ running: false, state: "shut down in recovery" }) }])).toBeUndefined();
    expect(restoreWritableProblem("pg1", [{ name: "pg2", data: data({}) }, { name: "pg3", data: data({ standbySignal: false, state: "in production", timeline: 3 }) }])).toMatch(
      /^pg3 \(timeline 3\) accepts writes, though the inventory makes it a standby of pg1: .*make pg3 the primary in the inventory.*or stop it/,
    );
    // A standby-to-be running the empty cluster its package made holds nothing: no second primary.
    expect(restoreWritableProblem("pg1", [{ name: "pg2", data: data({ standbySignal: false, state: "in production", timeline: 1, userDatabases: 0, userRelations: 0, nextOid: 13000, systemIdentifier: "9" }) }])).toBeUndefined();
  });
});

describe("issue 11: restore's plan", () => {
  const plan = { file: "inv.yml", primary: "pg1", describe: "d", lost: "x", pgArgs: ["--set=L", "restore"], data: "/var/lib/postgresql/15/main", fresh: "/var/lib/postgresql/15/main.restore-20261127T140500Z", kept: "/var/lib/postgresql/15/main.before-restore-20261127T140500Z", earlier: [], repository: "pg4", switchWal: true, cloned: ["pg2", "pg3"], unreached: [] };

  it("issue 11: a standby restore cannot reach is named in the plan: not cloned, and how to bring it back", () => {
    const steps = restorePlanSteps({ ...plan, cloned: ["pg2"], unreached: [{ name: "pg3", reason: "connect timed out" }] });
    expect(steps).toContain("clone every standby again from it (pg2): their data is replaced");
    expect(steps).toContain(
      "NOT CLONED: pg3 cannot be reached (connect timed out): it keeps the data of before the restore; once it is back, run `pgprov apply inv.yml --reclone pg3`",
    );
    expect(restorePlanSteps(plan).join("\n")).not.toMatch(/NOT CLONED/);
  });

  it("issue 11: the plan says the restore goes into a new directory, where the old one is kept, that the WAL is switched first and the timers paused", () => {
    const steps = restorePlanSteps({ ...plan, earlier: ["/var/lib/postgresql/15/main.before-restore-20261101T000000Z (30 MiB)"] });
    expect(steps.join("\n")).not.toMatch(/--delta|in place/);
    expect(steps).toEqual([
      "LOST: x",
      "pause the backup timers on pg4 (started again at the end, whatever happens)",
      "restore d into a new directory, /var/lib/postgresql/15/main.restore-20261127T140500Z, while pg1 runs on (pgbackrest --set=L restore); should that fail, nothing is stopped",
      "switch pg1's WAL and wait until it is in the repository",
      "stop PostgreSQL on pg1",
      "rename /var/lib/postgresql/15/main to /var/lib/postgresql/15/main.before-restore-20261127T140500Z (kept, never deleted by pgprov: the way back should the restore not do), and the new directory to /var/lib/postgresql/15/main",
      "left by an earlier restore, and still taking room (pgprov never deletes it): /var/lib/postgresql/15/main.before-restore-20261101T000000Z (30 MiB)",
      "start it: it replays archived WAL up to the target and is promoted (a new timeline); pgBackRest's recovery settings are then reset",
      "clone every standby again from it (pg2, pg3): their data is replaced",
      "wait until every standby streams on the new timeline",
    ]);
    expect(restoreSpaceNeeded(1024 ** 3)).toBe(Math.ceil(1.1 * 1024 ** 3) + 256 * 1024 ** 2);
  });
});
