import { describe, expect, it } from "vitest";
import { loadInventory } from "../../src/inventory/inventory.js";
import { calendarProblem, calendarSubsetProblem } from "../../src/inventory/schedule.js";
import { yamlFiles } from "./yaml-files.js";

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
