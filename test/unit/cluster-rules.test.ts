import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { DataDirectory } from "../../src/postgres/data-directory.js";
import { assessCluster } from "../../src/cluster/safety.js";
import { connectionStrings } from "../../src/cluster/status.js";
import { hostVariables } from "../../src/cluster/variables.js";
import { FileError } from "../../src/common/errors.js";
import { ensureReplicationPassword, type Inventory, loadInventory } from "../../src/inventory/inventory.js";
import { render } from "../../src/playbook/template.js";

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

describe("configuration templates", () => {
  const inv = inventoryFrom(`postgresql:\n  clients: [10.1.0.0/16]\n  settings: { shared_buffers: 256MB, max_connections: 200, jit: false }\n${THREE}`);
  inv.replication.password = undefined;
  ensureReplicationPassword(inv);
  const facts = { os_id: "debian", os_version: "12", os_codename: "bookworm", arch: "amd64", hostname: "x", cpus: 2, memory_mb: 1024 };
  const vars = (host: string) => hostVariables(inv, inv.hosts.find((h) => h.name === host)!, facts);
  const template = (name: string) => readFileSync(join(import.meta.dirname, "../../templates", name), "utf8");

  it("gives a standby streaming settings with a passfile, never a password", () => {
    const conf = render(template("pgprov.conf.hbs"), vars("pg2"), "pgprov.conf.hbs");
    expect(conf).toContain("primary_conninfo = 'host=10.0.0.11 port=5432 user=replicator passfile=/var/lib/postgresql/.pgprov.pgpass application_name=pg2'");
    expect(conf).toContain("primary_slot_name = 'pgprov_pg2'");
    expect(conf).not.toContain(inv.replication.password!.reveal());
    expect(conf).toMatch(/\nshared_buffers = '256MB'\nmax_connections = 200\njit = off\n/);
    expect(conf).toContain("max_wal_senders = 16");
  });

  it("gives the primary no primary_conninfo", () => {
    expect(render(template("pgprov.conf.hbs"), vars("pg1"), "pgprov.conf.hbs")).not.toContain("primary_conninfo");
  });

  it("allows replication from members only, clients by network, and trusts no address", () => {
    const hba = render(template("pg_hba.conf.hbs"), vars("pg1"), "pg_hba.conf.hbs");
    const rules = hba.split("\n").filter((l) => l && !l.startsWith("#"));
    expect(rules.filter((l) => l.includes("replication")).map((l) => l.split(/\s+/).slice(0, 5).join(" "))).toEqual([
      "host replication replicator 10.0.0.11/32 scram-sha-256",
      "host replication replicator 10.0.0.12/32 scram-sha-256",
      "host replication replicator 10.0.0.13/32 scram-sha-256",
    ]);
    expect(rules).toContainEqual(expect.stringMatching(/^host +all +all +10\.1\.0\.0\/16 +scram-sha-256$/));
    expect(rules.filter((l) => /\btrust\b/.test(l))).toEqual([]);
  });

  it("escapes a passfile's special characters", () => {
    expect(render("{{ pgpass p }}", { p: "a:b\\c" }, "t")).toBe("a\\:b\\\\c");
  });

  it("prints multi-host connection strings", () => {
    expect(connectionStrings(inv.hosts, 5432).readWrite).toBe("postgresql://10.0.0.11:5432,10.0.0.12:5432,10.0.0.13:5432/postgres?target_session_attrs=read-write");
  });
});
