/**
 * Issue 8, day-2 operations: failover refuses while the standbys still hear the old primary,
 * a switchover killed right after its promotion leaves no second writable primary after a
 * reboot, the primary failover fences is refused by apply until rejoin brings it back, and
 * rejoin refuses a host whose history parted from the primary's on the same timeline. One
 * bootstrap; each test leaves the cluster usable for the next.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rewriteRoles } from "../../src/inventory/edit.js";
import { loadInventory } from "../../src/inventory/inventory.js";
import { type Lab, type LabHost, labBoot, labDown, labExec, labKill, labUp } from "../lab/lab.js";
import { bootstrapCluster, eventually, inventoryRoles, liveRoles, pgprov, psql } from "./helpers.js";

let lab: Lab;
let inventory: string;
let pg1: LabHost, pg2: LabHost, pg3: LabHost;

/** The inventory's roles set by hand, as a person repairing after a crash would. */
function setRoles(roles: Record<string, "primary" | "standby">): void {
  rewriteRoles(loadInventory(inventory), roles);
}

const DATA = "/var/lib/postgresql/15/main";
const FENCE = `${DATA}/pgprov.fenced`;
const REWIND_MARK = "/var/lib/pgprov/rewinding-var-lib-postgresql-15-main";
const byName = (name: string) => lab.hosts.find((h) => h.name === name)!;

async function startTime(host: LabHost): Promise<string> {
  return (await psql(host, "select pg_postmaster_start_time()")).out;
}

beforeAll(async () => {
  lab = await labUp({ hosts: 3 });
  [pg1, pg2, pg3] = lab.hosts as [LabHost, LabHost, LabHost];
  inventory = await bootstrapCluster(lab);
});
afterAll(async () => {
  await labDown();
});

describe("day-2 operations: safety", () => {
  it("issue 8 smaller defects: switchover, failover and rejoin honour --playbook", async () => {
    const missing = join(dirname(inventory), "no-such-playbook.yml");
    for (const args of [["switchover", inventory, "--to", "pg2"], ["failover", inventory, "--yes"], ["rejoin", inventory, "pg2", "--yes"]]) {
      const r = await pgprov([...args, "--playbook", missing]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain(missing);
    }
  });

  it("issue 8 item 1: failover refuses while the standbys still hear a primary whose SSH is cut, and changes nothing", async () => {
    const before = readFileSync(inventory, "utf8");
    const started = await Promise.all([pg1, pg2, pg3].map(startTime));
    // Only the SSH path is cut: pg1's PostgreSQL keeps running and streaming to both standbys.
    await labExec(pg1, "systemctl stop ssh");
    try {
      const r = await pgprov(["failover", inventory, "--yes"]);
      expect(r.code, r.stdout).toBe(1);
      expect(r.stdout).toContain("pg1 cannot be reached");
      expect(r.stderr).toMatch(/pg2's WAL receiver heard from pg1 \d+ s ago/);
      expect(r.stderr).toMatch(/pg3's WAL receiver heard from pg1 \d+ s ago/);
      expect(r.stderr).toContain("wal_receiver_timeout");
      expect(r.stderr).toContain("--force");
    } finally {
      await labExec(pg1, "systemctl start ssh");
    }
    expect(readFileSync(inventory, "utf8")).toBe(before);
    expect(await liveRoles([pg1, pg2, pg3])).toEqual({ pg1: "primary", pg2: "standby", pg3: "standby" });
    expect(await Promise.all([pg1, pg2, pg3].map(startTime))).toEqual(started);
  });

  it("issue 8 item 1: failover refuses while the standbys still hear a primary whose host key fails verification", async () => {
    const before = readFileSync(inventory, "utf8");
    const knownHosts = join(dirname(inventory), "known_hosts");
    const keys = readFileSync(knownHosts, "utf8");
    // pg1's entry now holds pg2's key: pg1's real key no longer verifies.
    const entry = (h: LabHost) => keys.split("\n").find((l) => l.split(" ")[0] === h.address)!;
    writeFileSync(knownHosts, keys.replace(entry(pg1), `${pg1.address}${entry(pg2).slice(pg2.address.length)}`));
    try {
      const r = await pgprov(["failover", inventory, "--yes"]);
      expect(r.code, r.stdout).toBe(1);
      expect(r.stdout).toMatch(/pg1 cannot be reached: .*host key/);
      expect(r.stderr).toMatch(/pg2's WAL receiver heard from pg1 \d+ s ago/);
    } finally {
      writeFileSync(knownHosts, keys);
    }
    expect(readFileSync(inventory, "utf8")).toBe(before);
    expect(await liveRoles([pg1, pg2, pg3])).toEqual({ pg1: "primary", pg2: "standby", pg3: "standby" });
  });

  it("issue 8 item 3: a switchover killed right after the promotion leaves the old primary read-only after a reboot", async () => {
    const r = await pgprov(["switchover", inventory, "--to", "pg2"], { env: { PGPROV_TEST_CRASH_AT: "switchover:promoted" } });
    expect(r.code, r.stdout + r.stderr).not.toBe(0);
    expect(r.stdout).toContain("promoted pg2");
    expect(inventoryRoles(inventory)).toEqual({ pg1: "primary", pg2: "standby", pg3: "standby" });

    await labKill("pg1");
    await labBoot("pg1");
    await eventually("pg1's server to answer after the reboot", async () => (await psql(pg1, "select 1")).out === "1", 120_000);
    expect((await liveRoles([pg1, pg2])).pg1).toBe("standby");

    // The repair a person makes: the inventory says what happened, and apply reconfigures.
    setRoles({ pg1: "standby", pg2: "primary" });
    const repaired = await pgprov(["apply", inventory]);
    expect(repaired.code, repaired.stdout).toBe(0);
    expect(await liveRoles([pg1, pg2, pg3])).toEqual({ pg1: "standby", pg2: "primary", pg3: "standby" });
  });

  it("issue 8 item 1, same class, and item 3 regression: apply refuses a primary fenced by failover at once, naming rejoin; it comes back read-only after a reboot; rejoin lifts the fence", async () => {
    const old = byName(loadInventory(inventory).primary.name);
    const r = await pgprov(["failover", inventory, "--force", "--yes"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain(`--force: failing over although ${old.name} is not proven down`);
    expect(r.stdout).toContain(`fenced ${old.name}`);
    const primary = byName(loadInventory(inventory).primary.name);
    expect((await labExec(old, `cat ${FENCE}`)).stdout).toContain(`promoting ${primary.name} in place of ${old.name}`);

    // Before rejoin, apply refuses the fenced host before changing anything (not after its
    // streaming wait), and leaves it stopped, as the fence left it.
    const started = performance.now();
    const refused = await pgprov(["apply", inventory]);
    expect(refused.code, refused.stdout).toBe(1);
    expect(refused.stdout).toMatch(new RegExp(`${old.name} \\(timeline \\d+\\) was fenced by a failover .*\`pgprov rejoin ${inventory} ${old.name}\``));
    expect((performance.now() - started) / 1000).toBeLessThan(60);
    expect((await labExec(old, "systemctl is-active postgresql@15-main")).stdout.trim()).not.toBe("active");
    // switchover too, before its promotion: its own reconfiguration would be refused after it.
    const other = lab.hosts.find((h) => h !== old && h !== primary)!;
    const switched = await pgprov(["switchover", inventory, "--to", other.name]);
    expect(switched.code, switched.stdout).toBe(1);
    expect(switched.stderr).toContain(`pgprov rejoin ${inventory} ${old.name}`);
    expect(await liveRoles([primary, other])).toEqual({ [primary.name]: "primary", [other.name]: "standby" });

    // `systemctl disable` is no fence on Debian: postgresql-common's generator starts the cluster at boot.
    await labKill(old.name);
    await labBoot(old.name);
    await eventually(`${old.name}'s server to answer after the reboot`, async () => (await psql(old, "select 1")).out === "1", 120_000);
    expect((await liveRoles([old]))[old.name]).toBe("standby");

    const back = await pgprov(["rejoin", inventory, old.name, "--yes"]);
    expect(back.code, back.stdout + back.stderr).toBe(0);
    expect((await labExec(old, `test -e ${FENCE}`)).code).not.toBe(0);
    expect((await psql(primary, `select state from pg_stat_replication where application_name = '${old.name}'`)).out).toBe("streaming");
  });

  it("issue 8 item 3, regression: rejoin --reclone clones a host fenced by failover, though standby.signal is there", async () => {
    const old = byName(loadInventory(inventory).primary.name);
    const r = await pgprov(["failover", inventory, "--force", "--yes"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const primary = byName(loadInventory(inventory).primary.name);
    const inode = async () => (await labExec(old, `stat -c %i ${DATA}`)).stdout.trim();
    const before = await inode();
    const back = await pgprov(["rejoin", inventory, old.name, "--reclone", "--yes"]);
    expect(back.code, back.stdout + back.stderr).toBe(0);
    expect(back.stdout).toContain("REPLACING data that ran as a primary");
    expect(await inode()).not.toBe(before);
    expect((await labExec(old, `test -e ${FENCE}`)).code).not.toBe(0);
    expect((await psql(primary, `select state from pg_stat_replication where application_name = '${old.name}'`)).out).toBe("streaming");
  });

  it("a pg_rewind that fails part-way leaves the former primary marked: it does not start, apply and a plain rejoin refuse it, rejoin --reclone replaces it", async () => {
    const old = byName(loadInventory(inventory).primary.name);
    const r = await pgprov(["failover", inventory, "--force", "--yes"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const primary = byName(loadInventory(inventory).primary.name);
    // The old primary comes back writable without its fence (started by hand, past the boot
    // check) and writes after the fork, so pg_rewind has work to do; then it is stopped.
    expect((await labExec(old, `rm -f ${FENCE} ${DATA}/standby.signal && pg_ctlcluster --skip-systemctl-redirect 15 main start`)).code).toBe(0);
    expect((await psql(old, "create table written_after_fork as select 1 as n")).code).toBe(0);
    expect((await labExec(old, "pg_ctlcluster --skip-systemctl-redirect 15 main stop")).code).toBe(0);
    // WAL pg_rewind must write where it may not: it fails after it has begun copying.
    expect((await labExec(old, `chmod 0555 ${DATA}/pg_wal`)).code).toBe(0);

    const failed = await pgprov(["rejoin", inventory, old.name, "--discard-diverged", "--yes"]);
    expect(failed.code, failed.stdout + failed.stderr).toBe(1);
    expect(failed.stderr).toContain(`pg_rewind of ${old.name} failed`);
    expect(failed.stderr).toContain("may be a mix of two servers' files");
    expect(failed.stderr).not.toContain("as it was");
    expect((await labExec(old, `cat ${REWIND_MARK}`)).stdout).toContain(`pg_rewind onto ${primary.name}`);
    // The mix never starts: not by systemd (the boot check), and apply refuses it, naming the clone.
    expect((await labExec(old, "chmod 0700 " + `${DATA}/pg_wal && systemctl start postgresql@15-main`)).code).not.toBe(0);
    expect((await labExec(old, "systemctl is-active postgresql@15-main")).stdout.trim()).not.toBe("active");
    const refused = await pgprov(["apply", inventory]);
    expect(refused.code, refused.stdout).toBe(1);
    expect(refused.stdout).toContain("a pg_rewind began to rewrite and did not finish");
    const again = await pgprov(["rejoin", inventory, old.name, "--discard-diverged", "--yes"]);
    expect(again.code, again.stdout + again.stderr).toBe(1);
    expect(again.stderr).toContain("--reclone");
    expect(again.stdout).not.toContain("rewound");

    const back = await pgprov(["rejoin", inventory, old.name, "--reclone", "--yes"]);
    expect(back.code, back.stdout + back.stderr).toBe(0);
    expect((await labExec(old, `test -e ${REWIND_MARK}`)).code).not.toBe(0);
    expect((await psql(primary, `select state from pg_stat_replication where application_name = '${old.name}'`)).out).toBe("streaming");
  });

  it("issue 8 item 2: rejoin refuses a host that accepted writes on the primary's timeline, and leaves its data as it was", async () => {
    const [writer, other] = loadInventory(inventory).standbys.map((h) => byName(h.name)) as [LabHost, LabHost];
    // Both standbys promoted by hand: each on a timeline of its own, with the same number.
    for (const h of [writer, other]) expect((await psql(h, "select pg_promote()")).out).toBe("t");
    const timeline = async (h: LabHost) => (await psql(h, "checkpoint; select timeline_id from pg_control_checkpoint()")).out;
    expect(await timeline(writer)).toBe(await timeline(other));
    expect((await psql(writer, "create table only_on_writer as select generate_series(1, 1000) as n; select count(*) from only_on_writer")).out).toBe("1000");
    expect((await psql(other, "create table only_on_other as select generate_series(1, 7) as n; select count(*) from only_on_other")).out).toBe("7");
    const started = await startTime(other);
    // The old primary stops and leaves the inventory: writer and other are the cluster now.
    const previous = loadInventory(inventory).primary.name;
    await labExec(byName(previous), "systemctl stop postgresql@15-main");
    setRoles({ [previous]: "standby", [writer.name]: "primary" });
    writeFileSync(inventory, readFileSync(inventory, "utf8").replace(new RegExp(`\\n  ${previous}: .*`), ""));

    const r = await pgprov(["rejoin", inventory, other.name, "--yes"]);
    expect(r.code, r.stdout).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`${other.name} accepted writes on timeline \\d+, the timeline ${writer.name} is on`));
    expect(r.stderr).toContain("--reclone");
    expect(r.stdout).not.toContain("rewound");
    // Untouched: running since before, writable, with its own rows and without the writer's.
    expect(await startTime(other)).toBe(started);
    expect((await liveRoles([other]))[other.name]).toBe("primary");
    expect((await psql(other, "select count(*) from only_on_other")).out).toBe("7");
    expect((await psql(other, "select to_regclass('only_on_writer') is null")).out).toBe("t");
  });
});
