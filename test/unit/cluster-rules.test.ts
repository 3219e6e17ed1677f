import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import type { DataDirectory } from "../../src/postgres/data-directory.js";
import { assessCluster } from "../../src/cluster/safety.js";
import { connectionStrings } from "../../src/cluster/status.js";
import { hostVariables } from "../../src/cluster/variables.js";
import { FileError } from "../../src/common/errors.js";
import { ensureReplicationPassword, type Inventory, loadInventory } from "../../src/inventory/inventory.js";
import { isTruthy, render, renderValue } from "../../src/playbook/template.js";
import { clonedWithoutAsking } from "../../src/postgres/standby.js";
import { loadClusterPlaybook } from "../../src/cluster/playbook.js";
import { BUNDLED_PLAYBOOK } from "../../src/common/paths.js";

const dir = mkdtempSync(join(tmpdir(), "pgprov-cluster-"));
let n = 0;
function inventoryFrom(text: string): Inventory {
  const file = join(dir, `inv-${n++}.yml`);
  writeFileSync(file, text);
  return loadInventory(file);
}
const THREE = `hosts:\n  pg1: { address: 10.0.0.11, role: primary }\n  pg2: { address: 10.0.0.12, role: standby }\n  pg3: { address: 10.0.0.13, role: standby }\n`;

function data(over: Partial<DataDirectory>): DataDirectory {
  return {
    exists: true,
    entries: 20,
    standbySignal: false,
    running: true,
    partialClone: false,
    replacedLeft: false,
    userDatabases: 0,
    userRelations: 0,
    tablespaces: 0,
    nextOid: 13572,
    timeline: 1,
    state: "in production",
    systemIdentifier: "1",
    ...over,
  };
}

describe("safety rules", () => {
  const inv = inventoryFrom(THREE);
  it("lets a bootstrap through: fresh package-made clusters on the standbys are not primaries", () => {
    const states = new Map([
      ["pg1", data({ systemIdentifier: "1" })],
      ["pg2", data({ systemIdentifier: "2" })],
      ["pg3", undefined],
    ]);
    expect(assessCluster(inv, states)).toEqual({ problems: [], primarySystemIdentifier: "1" });
  });
  it("refuses two writable servers and names them", () => {
    const states = new Map([
      ["pg1", data({ systemIdentifier: "1", userRelations: 10 })],
      ["pg2", data({ systemIdentifier: "1", userRelations: 10 })],
      ["pg3", data({ systemIdentifier: "1", standbySignal: true, state: "in archive recovery" })],
    ]);
    const { problems } = assessCluster(inv, states);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^more than one server accepts writes: pg1 \(timeline 1\), pg2 \(timeline 1\)\. .*--reclone pg2\.$/);
    expect(assessCluster(inv, states, ["pg2"]).problems).toEqual([]);
  });
  it("refuses a promoted host ahead of the primary, running or not, even with --reclone", () => {
    const promoted = new Map([
      ["pg1", data({ systemIdentifier: "1", timeline: 1, userRelations: 5 })],
      ["pg2", data({ systemIdentifier: "1", timeline: 2, userRelations: 5 })],
    ]);
    const running = assessCluster(inv, promoted, ["pg2"]).problems;
    expect(running[0]).toMatch(/^more than one server accepts writes: pg1 \(timeline 1\), pg2 \(timeline 2\)\. .*then rerun\.$/);
    const stopped = new Map(promoted);
    stopped.set("pg2", data({ systemIdentifier: "1", timeline: 2, running: false, state: "shut down" }));
    expect(assessCluster(inv, stopped, ["pg2"]).problems).toEqual([
      expect.stringMatching(/^pg2 \(timeline 2\) is ahead of the inventory's primary pg1 \(timeline 1\): it was promoted/),
    ]);
  });

  it("names rejoin for a former primary that came back writable", () => {
    const states = new Map([
      ["pg1", data({ systemIdentifier: "1", timeline: 1, userRelations: 5 })],
      ["pg2", data({ systemIdentifier: "1", timeline: 2, userRelations: 5 })],
    ]);
    const afterFailover = inventoryFrom(THREE.replace("pg1: { address: 10.0.0.11, role: primary }", "pg1: { address: 10.0.0.11, role: standby }").replace("pg2: { address: 10.0.0.12, role: standby }", "pg2: { address: 10.0.0.12, role: primary }"));
    expect(assessCluster(afterFailover, states).problems).toEqual([
      expect.stringMatching(/^pg1 \(timeline 1\) is a former primary of this cluster that came back accepting writes, behind pg2 \(timeline 2\)\. .*run `pgprov rejoin .* pg1`/),
    ]);
  });

  describe("issue 8 item 3, regression: a former primary that must be rejoined is refused before anything changes, naming rejoin", () => {
    // After a failover: pg2 promoted to timeline 2, its history leaving timeline 1 at 0/5000148.
    const afterFailover = inventoryFrom(THREE.replace("pg1: { address: 10.0.0.11, role: primary }", "pg1: { address: 10.0.0.11, role: standby }").replace("pg2: { address: 10.0.0.12, role: standby }", "pg2: { address: 10.0.0.12, role: primary }"));
    const primary = data({ timeline: 2, history: [{ timeline: 1, switchLsn: "0/5000148" }], userRelations: 5 });
    const standby = data({ timeline: 2, standbySignal: true, state: "in archive recovery" });
    const assess = (pg1: DataDirectory, reclone: string[] = []) => assessCluster(afterFailover, new Map([["pg1", pg1], ["pg2", primary], ["pg3", standby]]), reclone).problems;
    const note = "fenced by pgprov failover from ops1 at 2026-01-01T00:00:00.000Z: promoting pg2 in place of pg1";
    const rejoin = /pgprov rejoin \S+ pg1`/;

    it("a host fenced by failover, stopped or started read-only since (a reboot)", () => {
      const stopped = data({ running: false, state: "shut down", standbySignal: true, fenced: note, checkpointLsn: "0/5000028" });
      const rebooted = data({ state: "in archive recovery", standbySignal: true, fenced: note, checkpointLsn: "0/5000028" });
      for (const pg1 of [stopped, rebooted]) {
        const problems = assess(pg1);
        expect(problems).toHaveLength(1);
        expect(problems[0]).toMatch(/^pg1 \(timeline 1\) was fenced by a failover \(fenced by pgprov failover from ops1 at 2026-01-01T00:00:00.000Z: promoting pg2 in place of pg1\)/);
        expect(problems[0]).toMatch(rejoin);
      }
      // --reclone pg1: its data is replaced by a clone, which is what rejoin --reclone asks for.
      expect(assess(stopped, ["pg1"])).toEqual([]);
    });
    it("the inventory's primary, fenced", () => {
      const states = new Map([["pg1", data({ running: false, state: "shut down", standbySignal: true, fenced: note })], ["pg2", data({ standbySignal: true, state: "in archive recovery" })]]);
      expect(assessCluster(inv, states).problems).toEqual([expect.stringMatching(/^pg1, the inventory's primary, was fenced by a failover .*set the inventory's roles/)]);
    });
    it("without a mark: a primary that crashed, or stopped with WAL past the point where pg2's history left its timeline", () => {
      const crashed = data({ running: false, state: "in production", standbySignal: true, checkpointLsn: "0/4000028" });
      expect(assess(crashed)).toEqual([expect.stringMatching(/^pg1 \(timeline 1\) last ran as the primary and stopped without a clean shutdown \(pg_control: in production\).*`pgprov rejoin \S+ pg1`/)]);
      const past = data({ running: false, state: "shut down", standbySignal: true, checkpointLsn: "0/5000148" });
      expect(assess(past)).toEqual([expect.stringMatching(/^pg1 \(timeline 1\) stopped as the primary with WAL up to 0\/5000148 on timeline 1, where pg2's history left timeline 1 at 0\/5000148.*`pgprov rejoin \S+ pg1`/)]);
      const elsewhere = data({ running: false, state: "shut down", standbySignal: true, timeline: 3, checkpointLsn: "0/5000028" });
      const primary4 = data({ timeline: 4, history: [{ timeline: 1, switchLsn: "0/5000148" }, { timeline: 2, switchLsn: "0/6000000" }] });
      expect(assessCluster(afterFailover, new Map([["pg1", elsewhere], ["pg2", primary4]])).problems).toEqual([expect.stringMatching(/^pg1 \(timeline 3\) stopped as the primary on timeline 3, which is not on pg2's history.*`pgprov rejoin \S+ pg1`/)]);
      const unmarked = data({ running: false, state: "shut down", checkpointLsn: "0/5000028" });
      expect(assess(unmarked)).toEqual([expect.stringMatching(/^pg1 \(timeline 1\) last ran as the primary and is not marked a standby.*`pgprov rejoin \S+ pg1`/)]);
    });
    it("lets switchover's old primary through: stopped cleanly, its shutdown checkpoint before where pg2's history left the timeline", () => {
      expect(assess(data({ running: false, state: "shut down", standbySignal: true, checkpointLsn: "0/50000C0" }))).toEqual([]);
      // Once it has run as a standby, it is one.
      expect(assess(data({ running: false, state: "shut down in recovery", standbySignal: true, checkpointLsn: "0/50000C0" }))).toEqual([]);
    });
    it("lets rejoin --reclone replace a former primary that came back writable", () => {
      const writable = data({ timeline: 1, userRelations: 5 });
      expect(assess(writable)[0]).toMatch(rejoin);
      expect(assess(writable, ["pg1"])).toEqual([]);
    });
  });

  it("refuses when the writable server is not the inventory's primary", () => {
    const states = new Map([
      ["pg1", data({ running: false, state: "shut down" })],
      ["pg2", data({ userRelations: 5 })],
    ]);
    expect(assessCluster(inv, states).problems[0]).toMatch(/^the writable server is pg2, but the inventory says the primary is pg1/);
  });
  it("refuses a primary that runs as a standby", () => {
    const states = new Map([["pg1", data({ standbySignal: true, state: "in archive recovery" })]]);
    expect(assessCluster(inv, states).problems).toEqual([expect.stringMatching(/^pg1, the inventory's primary, is running as a standby/)]);
  });
});

describe("inventory: PostgreSQL and replication", () => {
  it("checks setting names, with a suggestion, and keeps managed ones out", () => {
    const file = join(dir, "settings.yml");
    writeFileSync(file, `postgresql:\n  version: 15\n  settings:\n    shared_bufers: 1GB\n    wal_level: minimal\n    pg_stat_statements.max: 1000\n${THREE}`);
    expect(() => loadInventory(file)).toThrow(FileError);
    try {
      loadInventory(file);
    } catch (e) {
      expect((e as Error).message.split("\n").map((l) => l.replace(`${file}:`, ""))).toEqual([
        `4:20: postgresql.settings.shared_bufers: unknown PostgreSQL setting "shared_bufers" (PostgreSQL 15) (did you mean "shared_buffers"?)`,
        `5:16: postgresql.settings.wal_level: wal_level is managed by pgprov (derived from the inventory); remove it here`,
      ]);
    }
  });

  it("generates the replication password once, mode 0600, and reuses it", () => {
    const inv = inventoryFrom(THREE);
    const first = ensureReplicationPassword(inv).reveal();
    const path = join(dir, ".pgprov", `${inv.file.split("/").at(-1)!.replace(/\.yml$/, "")}.replication.secret`);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readFileSync(path, "utf8").trim()).toBe(first);
    expect(first).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(ensureReplicationPassword(loadInventory(inv.file)).reveal()).toBe(first);
  });
});

describe("issue 9: a standby whose fresh cluster a clone replaces is not restarted first", () => {
  const primary = "7000000000000000001";

  it("knows the data pg_standby clones over without asking, as its decide does", () => {
    expect(clonedWithoutAsking(data({ exists: false, entries: 0, systemIdentifier: undefined }), primary)).toBe(true);
    expect(clonedWithoutAsking(data({ entries: 0, systemIdentifier: undefined }), primary)).toBe(true);
    // The package's fresh cluster: another system identifier, timeline 1, nothing of a user's.
    expect(clonedWithoutAsking(data({ systemIdentifier: "7000000000000000002" }), primary)).toBe(true);
    expect(clonedWithoutAsking(data({ systemIdentifier: "7000000000000000002" }), undefined)).toBe(true);
    // A standby of a cluster that holds nothing yet looks fresh too: it is a member, never cloned over.
    expect(clonedWithoutAsking(data({ systemIdentifier: primary, standbySignal: true }), primary)).toBe(false);
    expect(clonedWithoutAsking(data({ systemIdentifier: "7000000000000000002", userDatabases: 1 }), primary)).toBe(false);
    expect(clonedWithoutAsking(data({ systemIdentifier: "7000000000000000002", timeline: 2 }), primary)).toBe(false);
    expect(clonedWithoutAsking(data({ exists: false, entries: 0, systemIdentifier: undefined, replacedLeft: true }), primary)).toBe(false);
  });

  it("skips the standbys' restart in the bundled playbook only for such a standby", () => {
    const inv = inventoryFrom(THREE);
    const restart = loadClusterPlaybook(BUNDLED_PLAYBOOK, inv).plays.find((p) => p.name === "Restart standbys for pending settings")!.tasks.find((t) => t.moduleName === "pg_restart_pending")!;
    const when = (replacedByClone: boolean) => isTruthy(renderValue(restart.when, hostVariables(inv, inv.hosts[1]!, undefined, { reclone: [], replacedByClone }), "t"));
    expect(when(true)).toBe(false);
    expect(when(false)).toBe(true);
  });
});

describe("configuration templates", () => {
  const inv = inventoryFrom(`postgresql:\n  clients: [10.1.0.0/16]\n  settings: { shared_buffers: 256MB, max_connections: 200, jit: false }\n${THREE}`);
  inv.replication.password = undefined;
  ensureReplicationPassword(inv);
  const facts = { os_id: "debian", os_version: "12", os_codename: "bookworm", arch: "amd64", hostname: "x", cpus: 2, memory_mb: 1024 };
  const vars = (host: string) => hostVariables(inv, inv.hosts.find((h) => h.name === host)!, facts);
  const template = (name: string) => readFileSync(join(import.meta.dirname, "../../templates", name), "utf8");

  it("gives a standby streaming settings with a passfile, never a password", () => {
    const conf = render(template("pgprov.conf.hbs"), vars("pg2"), "pgprov.conf.hbs");
    expect(conf).toContain(
      "primary_conninfo = 'host=10.0.0.11 port=5432 user=replicator passfile=/var/lib/postgresql/.pgprov.pgpass application_name=pg2 " +
        "sslmode=verify-full sslrootcert=/etc/postgresql/15/main/pgprov-ca.crt channel_binding=require'",
    );
    expect(conf).toContain("primary_slot_name = 'pgprov_pg2'");
    expect(conf).not.toContain(inv.replication.password!.reveal());
    expect(conf).toMatch(/\nshared_buffers = '256MB'\nmax_connections = 200\njit = off\n/);
    expect(conf).toContain("max_wal_senders = 16");
  });

  it("issue 9: the bundled playbook's templates, compiled when the bundle is built, render what compiling them at run time renders", async () => {
    const root = join(import.meta.dirname, "../..");
    const scripts = (await import(join(root, "scripts/precompile-templates.mjs"))) as {
      COMPILE_OPTIONS: object;
      bundledTemplateTexts: (root: string) => string[];
      precompiledModule: (root: string) => string;
    };
    const atRunTime = await import("../../src/playbook/template.js");
    expect(scripts.COMPILE_OPTIONS).toEqual(atRunTime.COMPILE_OPTIONS);
    // The module the build puts in place of src/playbook/precompiled.ts, and template.ts loaded again over it.
    const file = join(dir, "precompiled.mjs");
    writeFileSync(file, scripts.precompiledModule(root));
    const { PRECOMPILED } = (await import(file)) as { PRECOMPILED: Map<string, unknown> };
    const texts = scripts.bundledTemplateTexts(root);
    expect([...PRECOMPILED.keys()]).toEqual(texts);
    expect(texts).toContain(template("pgprov.conf.hbs"));
    vi.resetModules();
    vi.doMock("../../src/playbook/precompiled.js", () => ({ PRECOMPILED }));
    try {
      const bundled = await import("../../src/playbook/template.js");
      const outcome = (r: typeof render, text: string, context: object) => {
        try {
          return r(text, context, "t");
        } catch (e) {
          return `threw ${(e as Error).message}`;
        }
      };
      for (const host of ["pg1", "pg2"]) {
        for (const text of texts) expect(outcome(bundled.render, text, vars(host))).toBe(outcome(atRunTime.render, text, vars(host)));
      }
      // A missing variable is named the same way.
      const missing = texts.find((t) => t.includes("{{ postgresql.config_directory }}"))!;
      expect(outcome(bundled.render, missing, {})).toMatch(/^threw t: unknown variable "/);
      expect(outcome(bundled.render, missing, {})).toBe(outcome(atRunTime.render, missing, {}));
    } finally {
      vi.doUnmock("../../src/playbook/precompiled.js");
      vi.resetModules();
    }
  });

  it("gives the primary no primary_conninfo", () => {
    expect(render(template("pgprov.conf.hbs"), vars("pg1"), "pgprov.conf.hbs")).not.toContain("primary_conninfo");
  });

  it("allows replication from members only, clients by network, and trusts no address", () => {
    const hba = render(template("pg_hba.conf.hbs"), vars("pg1"), "pg_hba.conf.hbs");
    const rules = hba.split("\n").filter((l) => l && !l.startsWith("#"));
    expect(rules.filter((l) => l.includes("replication")).map((l) => l.split(/\s+/).slice(0, 5).join(" "))).toEqual([
      "hostnossl replication all 0.0.0.0/0 reject",
      "hostnossl replication all ::/0 reject",
      "hostssl replication replicator 10.0.0.11/32 scram-sha-256",
      "hostssl replication replicator 10.0.0.12/32 scram-sha-256",
      "hostssl replication replicator 10.0.0.13/32 scram-sha-256",
    ]);
    expect(rules).toContainEqual(expect.stringMatching(/^hostssl +all +all +10\.1\.0\.0\/16 +scram-sha-256$/));
    expect(rules.filter((l) => /\btrust\b/.test(l))).toEqual([]);
  });

  it("escapes a passfile's special characters", () => {
    expect(render("{{ pgpass p }}", { p: "a:b\\c" }, "t")).toBe("a\\:b\\\\c");
  });

  it("prints multi-host connection strings", () => {
    expect(connectionStrings(inv.hosts, 5432).readWrite).toBe("postgresql://10.0.0.11:5432,10.0.0.12:5432,10.0.0.13:5432/postgres?target_session_attrs=read-write");
  });
});
