/**
 * Issue 14: day-2 operations a DBA can script and trust, on one bookworm cluster: `check` with
 * Nagios exit codes, --dry-run, --json and confirmation of the operations, `status --watch`,
 * completion, PGPROV_INVENTORY and --limit globs.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseDocument } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Lab, type LabHost, labDown, labExec, labUp } from "../lab/lab.js";
import { bootstrapCluster, eventually, pgprov, psql } from "./helpers.js";

const BIN = join(import.meta.dirname, "../../bin/pgprov.js");
let lab: Lab;
let inventory: string;
let hosts: LabHost[];
const byName = (name: string) => hosts.find((h) => h.name === name)!;
const lines = (stdout: string) => stdout.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
const timelines = async () => Promise.all(hosts.map(async (h) => (await psql(h, "select timeline_id from pg_control_checkpoint()")).out));

beforeAll(async () => {
  lab = await labUp({ hosts: 3 });
  hosts = lab.hosts;
  inventory = await bootstrapCluster(lab);
  // Thresholds low enough for a test slot to cross the warning one with a few WAL switches.
  const doc = parseDocument(readFileSync(inventory, "utf8"));
  doc.set("checks", { slot_retained_wal: { warning: "1MB", critical: "1GB" } });
  writeFileSync(inventory, doc.toString());
});
afterAll(async () => {
  await labDown();
});

describe("pgprov check", () => {
  // Its only warning: no backups configured (issue 11: WAL is archived nowhere, nothing to restore from).
  it("issue 14: check on a healthy cluster without backups warns of that only; --json lines parse, in snake_case", async () => {
    const r = await pgprov(["check", inventory]);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout.split("\n")[0]).toMatch(/^WARNING: 0 critical, 1 warning, 0 unknown, \d+ ok \(pg1 archiving\)$/);
    expect(r.stdout).toMatch(/OK\s+pg2\s+streaming\s+streaming from pg1/);
    const json = await pgprov(["check", inventory, "--json"]);
    const events = lines(json.stdout);
    expect(events.at(-1)).toMatchObject({ type: "check", status: "warning", exit_code: 1 });
    expect(events.filter((e) => e.type === "finding").map((e) => e.check)).toEqual(expect.arrayContaining(["replay_lag", "slot", "disk_space", "archiving", "versions"]));
  });

  it("issue 14: check with an inactive slot holding WAL over the warning threshold exits 1", async () => {
    const made = await psql(byName("pg1"), "select pg_create_physical_replication_slot('day2_forgotten', true); create table t (x int); insert into t select generate_series(1, 1000); select pg_switch_wal(); insert into t values (1); select pg_switch_wal();");
    expect(made.code, made.err).toBe(0);
    try {
      const r = await pgprov(["check", inventory]);
      expect(r.code, r.stdout).toBe(1);
      expect(r.stdout.split("\n")[0]).toMatch(/^WARNING: 0 critical, 2 warning.*\(pg1 slot, pg1 archiving\)/);
      expect(r.stdout).toMatch(/WARNING\s+pg1\s+slot\s+slot day2_forgotten \(inactive\) retains \d+ bytes of WAL/);
    } finally {
      await psql(byName("pg1"), "select pg_drop_replication_slot('day2_forgotten')");
    }
  });

  it("issue 14: check with a standby stopped exits 2, naming it", async () => {
    await labExec(byName("pg3"), "systemctl stop postgresql@15-main");
    try {
      const r = await pgprov(["check", inventory]);
      expect(r.code, r.stdout).toBe(2);
      expect(r.stdout.split("\n")[0]).toMatch(/^CRITICAL: 2 critical.*\(pg3 server, pg3 streaming\)/);
      expect(r.stdout).toMatch(/CRITICAL\s+pg3\s+server\s+PostgreSQL does not answer/);
    } finally {
      await labExec(byName("pg3"), "systemctl start postgresql@15-main");
    }
    await eventually("pg3 to stream again", async () => (await psql(byName("pg1"), "select count(*) from pg_stat_replication where state = 'streaming'")).out === "2", 60_000);
  });

  it("issue 14: check with a host not reachable over SSH reports it UNKNOWN (exit 3 but for a worse finding)", async () => {
    await labExec(byName("pg3"), "systemctl stop ssh.socket ssh.service 2>/dev/null; systemctl stop ssh");
    try {
      const r = await pgprov(["check", inventory]);
      // WARNING wins over UNKNOWN (Nagios's precedence): this cluster has no backups (issue 11), so 1, not 3.
      expect(r.code, r.stdout).toBe(1);
      expect(r.stdout.split("\n")[0]).toMatch(/^WARNING: 0 critical, 1 warning, 1 unknown, /);
      expect(r.stdout).toMatch(/UNKNOWN\s+pg3\s+reachable\s+cannot be reached over SSH/);
      // The primary still sees it stream: that finding stands.
      expect(r.stdout).toMatch(/OK\s+pg3\s+streaming/);
    } finally {
      await labExec(byName("pg3"), "systemctl start ssh");
    }
  });
});

describe("operations: --dry-run, --json, confirmation", () => {
  it("issue 14: switchover --dry-run changes nothing, prints the target and its lag, exits 0", async () => {
    const before = { timelines: await timelines(), inventory: readFileSync(inventory, "utf8") };
    const r = await pgprov(["switchover", inventory, "--to", "pg2", "--dry-run"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/pg2 streams from pg1, \d+ bytes behind/);
    expect(r.stdout).toContain("dry run: nothing was changed");
    expect(r.stdout).toMatch(/would: .*stop pg1/);
    expect(await timelines()).toEqual(before.timelines);
    expect(readFileSync(inventory, "utf8")).toBe(before.inventory);
    expect((await psql(byName("pg1"), "select pg_is_in_recovery()")).out).toBe("f");
  });

  it("issue 14: failover --dry-run while the primary runs exits 1 with the reason", async () => {
    const r = await pgprov(["failover", inventory, "--dry-run"]);
    expect(r.code, r.stdout).toBe(1);
    expect(r.stderr).toMatch(/refusing to fail over: pg1 is not proven down.*\n.*pg1 is reachable and accepts writes/);
  });

  it("issue 14: failover without a TTY and without --yes refuses, naming --yes, and changes nothing", async () => {
    const before = await timelines();
    const r = await pgprov(["failover", inventory, "--force"]);
    expect(r.code, r.stdout).toBe(1);
    expect(r.stderr).toMatch(/--yes/);
    expect(await timelines()).toEqual(before);
    expect((await psql(byName("pg1"), "select pg_is_in_recovery()")).out).toBe("f");
    const rejoin = await pgprov(["rejoin", inventory, "pg2"]);
    expect(rejoin.code).toBe(1);
    expect(rejoin.stderr).toMatch(/--yes/);
  });

  it("issue 14: switchover --json: every line parses; the last one holds the new primary and the write window", async () => {
    const r = await pgprov(["switchover", inventory, "--to", "pg2", "--json"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const events = lines(r.stdout);
    expect(events.filter((e) => e.type === "step").length).toBeGreaterThan(3);
    expect(events.some((e) => e.type === "recap")).toBe(true);
    expect(events.at(-1)).toMatchObject({ type: "result", operation: "switchover", new_primary: "pg2", old_primary: "pg1", failed: false, inventory_changes: ["pg1: primary -> standby", "pg2: standby -> primary"] });
    expect(events.at(-1)!.write_window_seconds).toBeGreaterThan(0);
    // And back, for the tests after this one.
    const back = await pgprov(["switchover", inventory, "--to", "pg1"]);
    expect(back.code, back.stdout).toBe(0);
    // Found by this test: the old primary, stopped while the playbook read its slots, kept them
    // (holding WAL on it) until the next apply. Now they go once it runs as a standby.
    expect((await psql(byName("pg2"), "select string_agg(slot_name, ',') from pg_replication_slots")).out).toBe("");
    const check = await pgprov(["apply", inventory, "--check"]);
    expect(check.code, check.stdout).toBe(0);
  });
});

describe("status --watch, and the small things", () => {
  it("issue 14: status --watch 1 under a writing client prints updates, and exits cleanly on SIGINT", async () => {
    await psql(byName("pg1"), "create table if not exists w (x int)");
    const writer = labExec(byName("pg1"), "for i in $(seq 1 40); do runuser -u postgres -- psql -qXc 'insert into w select generate_series(1, 1000)' >/dev/null; sleep 0.1; done");
    const child = spawn(process.execPath, [BIN, "status", inventory, "--watch", "1"], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    // From its first reading (node's start-up and the connections take a while on a loaded machine).
    await eventually("the first reading", async () => stdout.includes("-- "), 60_000);
    await new Promise((r) => setTimeout(r, 3000));
    child.kill("SIGINT");
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    const code = await exited;
    clearTimeout(timer);
    await writer;
    expect(code, stdout + stderr).toBe(0);
    expect(stderr).toBe("");
    const updates = stdout.split("\n").filter((l) => /^-- \d\d:\d\d:\d\d/.test(l));
    expect(updates.length, stdout).toBeGreaterThanOrEqual(2);
    expect(stdout).toMatch(/pg2\s+standby/);
  });

  it("issue 14: `pgprov completion`, sourced in bash, completes `pgprov sw` to switchover", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pgprov-completion-"));
    symlinkSync(BIN, join(dir, "pgprov"));
    const script = (await pgprov(["completion"])).stdout;
    expect(script).toContain("complete -o bashdefault -o default -F");
    const r = spawnSync("bash", ["-c", `${script}\nCOMP_WORDS=(pgprov sw); COMP_CWORD=1; COMP_LINE="pgprov sw"; COMP_POINT=9; _pgprov_yargs_completions; echo "\${COMPREPLY[@]}"`], {
      env: { ...process.env, PATH: `${dir}:${process.env.PATH}` },
      encoding: "utf8",
    });
    expect(r.stdout.trim(), r.stderr).toBe("switchover");
  });

  it("issue 14: PGPROV_INVENTORY is the default inventory; --limit takes glob patterns", async () => {
    const r = await pgprov(["status", "--json"], { env: { PGPROV_INVENTORY: inventory } });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(lines(r.stdout).filter((e) => e.type === "status").map((e) => e.host)).toEqual(["pg1", "pg2", "pg3"]);
    const missing = await pgprov(["status"], { env: { PGPROV_INVENTORY: "" } });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no inventory: name one, or set PGPROV_INVENTORY/);

    const limited = await pgprov(["apply", inventory, "--check", "--json", "--limit", "pg[23]"]);
    expect(limited.code, limited.stdout + limited.stderr).toBe(0);
    // The data-directory reads run on every host whatever --limit says; the rest on the matched ones.
    const plays = lines(limited.stdout).filter((e) => e.type === "play");
    expect(plays.find((e) => e.play === "PostgreSQL packages")?.hosts).toEqual(["pg2", "pg3"]);
    const none = await pgprov(["apply", inventory, "--check", "--limit", "db*"]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('--limit: "db*" matches no host');
  });
});
