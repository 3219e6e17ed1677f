/** Issue 14: `pgprov check` judges what it read against the inventory's thresholds (pure part). */
import { describe, expect, it } from "vitest";
import { CHECK_EXIT, type HostHealth, judgeHealth, overallStatus, parseDf, type ServerHealth, type SlotHealth } from "../../src/cluster/check.js";
import { checksSchema } from "../../src/inventory/schema.js";

const thresholds = checksSchema.parse({});
const MB = 1024 ** 2;
const disks = [{ paths: ["/var/lib/postgresql/15/main", "/var/lib/postgresql/15/main/pg_wal"], mount: "/", usedBytes: 30, availableBytes: 70 }];
const standby = (host: string, extra: Partial<ServerHealth> = {}): HostHealth => ({ host, role: "standby", server: { inRecovery: true, version: "15.8", receiver: "streaming", pendingRestart: [], slots: [], ...extra }, disks });
const SLOTS: SlotHealth[] = [
  { name: "pgprov_pg2", active: true, retainedBytes: 100 },
  { name: "pgprov_pg3", active: true, retainedBytes: 100 },
];
const primaryServer = (extra: Partial<NonNullable<ServerHealth["replication"]>> = {}, slots = SLOTS): HostHealth => ({
  host: "pg1",
  role: "primary",
  disks,
  server: {
    inRecovery: false,
    version: "15.8",
    pendingRestart: [],
    slots,
    replication: {
      rows: [
        { host: "pg2", state: "streaming", lagBytes: 0, lagSeconds: 0, slot: "pgprov_pg2", slotActive: true },
        { host: "pg3", state: "streaming", lagBytes: 0, lagSeconds: 0, slot: "pgprov_pg3", slotActive: true },
      ],
      archiver: { enabled: true, failing: false, stale: false, staleAfterSeconds: 300, failedCount: 0, lastArchivedTime: "2026-11-27 12:00:00+00" },
      ...extra,
    },
  },
});
const status = (hosts: HostHealth[], t = thresholds) => overallStatus(judgeHealth(hosts, t, "pg1"));

describe("pgprov check's findings", () => {
  it("issue 14: a healthy cluster is OK (exit 0)", () => {
    const findings = judgeHealth([primaryServer(), standby("pg2"), standby("pg3")], thresholds, "pg1");
    expect(findings.filter((f) => f.status !== "ok")).toEqual([]);
    expect(findings.map((f) => f.check)).toEqual(expect.arrayContaining(["server", "role", "streaming", "replay_lag", "slot", "archiving", "disk_space", "versions"]));
    expect(CHECK_EXIT[status([primaryServer(), standby("pg2"), standby("pg3")])]).toBe(0);
  });

  it("issue 14: a stopped standby is CRITICAL, naming it", () => {
    const rows = primaryServer().server as ServerHealth;
    const hosts = [primaryServer({ rows: rows.replication!.rows.filter((r) => r.host !== "pg3") }), standby("pg2"), { host: "pg3", role: "standby" as const, server: { error: "cannot connect to PostgreSQL" }, disks }];
    const findings = judgeHealth(hosts, thresholds, "pg1");
    expect(status(hosts)).toBe("critical");
    expect(findings.filter((f) => f.status === "critical").map((f) => `${f.host} ${f.check}`)).toEqual(["pg3 server", "pg3 streaming"]);
  });

  it("issue 14: an inactive slot over the warning threshold is a WARNING; over the critical one, CRITICAL", () => {
    const t = checksSchema.parse({ slot_retained_wal: { warning: "1MB", critical: "64MB" } });
    expect(status([primaryServer({}, [...SLOTS, { name: "old_backup", active: false, retainedBytes: 2 * MB }]), standby("pg2"), standby("pg3")], t)).toBe("warning");
    expect(status([primaryServer({}, [...SLOTS, { name: "old_backup", active: false, retainedBytes: 65 * MB }]), standby("pg2"), standby("pg3")], t)).toBe("critical");
    // Inactive, even holding little: a warning (it will hold more).
    expect(status([primaryServer({}, [...SLOTS, { name: "old_backup", active: false }]), standby("pg2"), standby("pg3")], t)).toBe("warning");
    // On a standby too: a former primary's slot holds WAL there.
    const findings = judgeHealth([primaryServer(), standby("pg2", { slots: [{ name: "pgprov_pg3", active: false, retainedBytes: 20 * MB }] }), standby("pg3")], t, "pg1");
    expect(findings[0]).toMatchObject({ status: "warning", check: "slot", host: "pg2" });
  });

  it("issue 14: a host not reachable over SSH is UNKNOWN (exit 3) when nothing else is wrong; CRITICAL wins over it", () => {
    const hosts = [primaryServer(), standby("pg2"), { host: "pg3", role: "standby" as const, unreachable: "connection refused" }];
    expect(CHECK_EXIT[status(hosts)]).toBe(3);
    expect(judgeHealth(hosts, thresholds, "pg1")[0]).toMatchObject({ status: "unknown", host: "pg3", check: "reachable" });
    expect(status([...hosts.slice(0, 2), { host: "pg3", role: "standby", server: { error: "down" } }])).toBe("critical");
  });

  it("issue 14: replay lag over the thresholds, in bytes or in seconds", () => {
    const lagging = (lagBytes: number, lagSeconds: number) => {
      const rows = (primaryServer().server as ServerHealth).replication!.rows.map((r) => (r.host === "pg2" ? { ...r, lagBytes, lagSeconds } : r));
      return status([primaryServer({ rows }), standby("pg2"), standby("pg3")]);
    };
    expect(lagging(17 * MB, 0)).toBe("warning");
    expect(lagging(2 * 1024 * MB, 0)).toBe("critical");
    expect(lagging(0, 61)).toBe("warning");
    expect(lagging(0, 301)).toBe("critical");
  });

  it("issue 14: failing archiving, low free space, settings pending a restart, and different versions", () => {
    const failing = { enabled: true, failing: true, stale: false, staleAfterSeconds: 300, failedCount: 3, lastFailedWal: "000000010000000000000003", lastFailedTime: "2026-11-27 12:01:00+00" };
    expect(judgeHealth([primaryServer({ archiver: failing }), standby("pg2"), standby("pg3")], thresholds, "pg1")[0]).toMatchObject({ status: "critical", check: "archiving" });
    const full = { ...standby("pg2"), disks: [{ ...disks[0]!, usedBytes: 85, availableBytes: 15 }] };
    expect(judgeHealth([primaryServer(), full, standby("pg3")], thresholds, "pg1")[0]).toMatchObject({ status: "warning", check: "disk_space", host: "pg2", value: 15 });
    expect(judgeHealth([primaryServer(), standby("pg2", { pendingRestart: ["shared_buffers"] }), standby("pg3")], thresholds, "pg1")[0]).toMatchObject({ status: "warning", check: "pending_restart", host: "pg2" });
    // Issue 11: a recovery target left in postgresql.auto.conf outside a restore.
    expect(judgeHealth([primaryServer(), standby("pg2", { recoveryLeftovers: ["recovery_target_action", "recovery_target_time"] }), standby("pg3")], thresholds, "pg1")[0]).toMatchObject({
      status: "critical",
      check: "recovery_settings",
      host: "pg2",
      message: expect.stringMatching(/^recovery_target_action, recovery_target_time in postgresql\.auto\.conf, outside a restore .*promote itself; `pgprov apply` removes them$/),
    });
    expect(judgeHealth([primaryServer(), standby("pg2", { version: "15.9" }), standby("pg3")], thresholds, "pg1")[0]).toMatchObject({ status: "warning", check: "versions" });
  });

  it("issue 14: thresholds come from the inventory, with units, and must be in order", () => {
    expect(checksSchema.parse({ replay_lag: { warning: "1MB" } }).replay_lag).toEqual({ warning: MB, critical: 1024 * MB });
    expect(checksSchema.safeParse({ replay_lag: { warning: "2GB", critical: "1GB" } }).success).toBe(false);
    expect(checksSchema.safeParse({ disk_free_percent: { warning: 5, critical: 10 } }).success).toBe(false);
    expect(checksSchema.safeParse({ replay_lag: { warning: "16 parsecs" } }).success).toBe(false);
  });

  it("issue 14: df's lines, one file system reported once with every path on it", () => {
    const out = "/dev/vda 100 30 70 30% /\n/dev/vdb 200 20 180 10% /srv/wal\n";
    expect(parseDf(out, ["/d", "/d/pg_wal"])).toEqual([
      { paths: ["/d"], mount: "/", usedBytes: 30, availableBytes: 70 },
      { paths: ["/d/pg_wal"], mount: "/srv/wal", usedBytes: 20, availableBytes: 180 },
    ]);
    expect(parseDf("/dev/vda 100 30 70 30% /\n/dev/vda 100 30 70 30% /\n", ["/d", "/d/pg_wal"])).toHaveLength(1);
  });

  it("issue 14 with issue 12: a cascading standby is seen on its upstream, and a delayed one's lag is counted past its delay", () => {
    // pg3 streams from pg2 (cascading), pg4 from pg1 with apply_delay 1h: both healthy.
    const primary = primaryServer({
      rows: [
        { host: "pg2", state: "streaming", lagBytes: 0, lagSeconds: 0, slot: "pgprov_pg2", slotActive: true },
        { host: "pg4", state: "streaming", lagBytes: 40 * MB * 1024, lagSeconds: 3620, slot: "pgprov_pg4", slotActive: true },
      ],
    });
    const pg2 = standby("pg2", { downstreams: [{ host: "pg3", state: "streaming", lagBytes: 0, lagSeconds: 0, slot: "pgprov_pg3", slotActive: true }] });
    const pg3 = { ...standby("pg3"), upstream: "pg2" };
    const pg4 = { ...standby("pg4"), applyDelaySeconds: 3600 };
    const findings = judgeHealth([primary, pg2, pg3, pg4], thresholds, "pg1");
    expect(findings.filter((f) => f.status !== "ok").map((f) => `${f.status} ${f.check} ${f.host}: ${f.message}`)).toEqual([]);
    expect(findings.find((f) => f.check === "streaming" && f.host === "pg3")?.message).toBe("streaming from pg2");
    // Past its delay by more than the threshold: a warning.
    const late = primaryServer({ rows: [{ host: "pg4", state: "streaming", lagBytes: 0, lagSeconds: 3600 + 120, slot: "pgprov_pg4", slotActive: true }] });
    expect(judgeHealth([late, pg4], thresholds, "pg1").find((f) => f.check === "replay_lag")).toMatchObject({ status: "warning", host: "pg4" });
  });
});

describe("pgprov check --help", () => {
  // The list is written out in main.ts (importing the schema there would slow every command's start): this keeps it whole.
  it("names every threshold the inventory's checks section takes", async () => {
    const { execFileSync } = await import("node:child_process");
    const { checksSchema } = await import("../../src/inventory/schema.js");
    const help = execFileSync(process.execPath, ["--import", "tsx", "src/cli/main.ts", "check", "--help"], { encoding: "utf8" });
    const named = /Thresholds: the inventory's `checks` \(([^)]*)\)/.exec(help.replace(/\s+/g, " "))?.[1]?.split(", ");
    expect(named).toEqual(Object.keys(checksSchema.shape));
  });
});
