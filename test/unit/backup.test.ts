import { describe, expect, it } from "vitest";
import { join } from "node:path";
import { ensureReplicationPassword, loadInventory } from "../../src/inventory/inventory.js";
import { loadClusterPlaybook, targetOf } from "../../src/cluster/playbook.js";
import { hostVariables } from "../../src/cluster/variables.js";
import { isTruthy, renderValue } from "../../src/playbook/template.js";
import { calendarProblem, calendarSubsetProblem } from "../../src/inventory/schedule.js";
import { yamlFiles } from "./yaml-files.js";
import { parseRepositoryInfo, parseRestoreTime, restoreTargetProblem } from "../../src/cluster/backup-info.js";
import { backupAgeFinding } from "../../src/cluster/check.js";
import { restoreWritableProblem } from "../../src/cluster/safety.js";
import { restorePlanSteps } from "../../src/cluster/backup.js";
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
  const parsed = parseRepositoryInfo(info, "main", 1795780800);
  const now = new Date(1795784400_000);

  it("issue 11: reads labels, types, sizes, WAL and the restorable range from pgbackrest info --output=json", () => {
    expect(parsed.backups.map((b) => [b.label, b.type, b.repository_bytes])).toEqual([
      ["20261127-100000F", "full", 3040870],
      ["20261127-100000F_20261127-110000D", "diff", 40960],
    ]);
    expect(parsed.restorable).toEqual({ earliest: new Date(1795773620_000), latest: new Date(1795780800_000) });
    expect([parsed.wal_min, parsed.wal_max]).toEqual(["000000010000000000000001", "000000010000000000000009"]);
  });

  it("issue 11: a time in the range is accepted; one in the future, before the oldest backup or past the archive is refused, naming the range", () => {
    const range = /the repository can restore from 2026-11-27T\d\d:\d\d:20\.000Z \(the end of backup 20261127-100000F\) to 2026-11-27T\d\d:00:00\.000Z/;
    expect(restoreTargetProblem({ kind: "time", time: new Date(1795777000_000) }, parsed, now)).toBeUndefined();
    expect(restoreTargetProblem({ kind: "time", time: new Date(1795790000_000) }, parsed, now)).toMatch(/is in the future/);
    expect(restoreTargetProblem({ kind: "time", time: new Date(1795790000_000) }, parsed, now)).toMatch(range);
    expect(restoreTargetProblem({ kind: "time", time: new Date(1795773000_000) }, parsed, now)).toMatch(/before the end of the oldest backup/);
    expect(restoreTargetProblem({ kind: "time", time: new Date(1795782000_000) }, parsed, now)).toMatch(/after the newest WAL in the archive/);
    expect(restoreTargetProblem({ kind: "backup", label: "nope" }, parsed, now)).toMatch(/no backup labelled nope; the repository holds 20261127-100000F, /);
    expect(restoreTargetProblem({ kind: "latest" }, parsed, now)).toBeUndefined();
    expect(restoreTargetProblem({ kind: "latest" }, parseRepositoryInfo("[]", "main"), now)).toMatch(/holds no backup/);
  });

  it("issue 11: --to needs a zone", () => {
    expect(parseRestoreTime("2026-11-27T14:05:00Z").toISOString()).toBe("2026-11-27T14:05:00.000Z");
    expect(parseRestoreTime("2026-11-27 15:05:00+01:00").toISOString()).toBe("2026-11-27T14:05:00.000Z");
    expect(() => parseRestoreTime("2026-11-27 14:05")).toThrow(/ISO 8601 with its zone/);
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
  it("issue 11: a standby restore cannot reach is named in the plan: not cloned, and how to bring it back", () => {
    const steps = restorePlanSteps({ file: "inv.yml", primary: "pg1", describe: "to the newest WAL in the archive", lost: "x", pgArgs: ["--delta", "restore"], cloned: ["pg2"], unreached: [{ name: "pg3", reason: "connect timed out" }] });
    expect(steps).toContain("clone every standby again from it (pg2): their data is replaced");
    expect(steps).toContain(
      "NOT CLONED: pg3 cannot be reached (connect timed out): it keeps the data of before the restore; once it is back, run `pgprov apply inv.yml --reclone pg3`",
    );
    expect(restorePlanSteps({ file: "inv.yml", primary: "pg1", describe: "d", lost: "x", pgArgs: [], cloned: ["pg2", "pg3"], unreached: [] }).join("\n")).not.toMatch(/NOT CLONED/);
  });
});
