/**
 * Safety as a type (issue 9 item 6): apply finds the data-directory reads by module, typed, not by
 * the name a playbook registers them under, and refuses a playbook that clones without them.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { requireSafetyReads, safetyGate } from "../../src/cluster/apply.js";
import { loadClusterPlaybook, targetOf } from "../../src/cluster/playbook.js";
import { PgprovError } from "../../src/common/errors.js";
import { RunResults } from "../../src/engine/results.js";
import { loadInventory } from "../../src/inventory/inventory.js";
import type { DataDirectory } from "../../src/postgres/data-directory.js";
import { pgDataDirectory } from "../../src/postgres/read.js";
import { yamlFiles } from "./yaml-files.js";

const BUNDLED = join(import.meta.dirname, "../../playbooks/cluster.yml");
const THREE = `hosts:\n  pg1: { address: 10.0.0.11, role: primary }\n  pg2: { address: 10.0.0.12, role: standby }\n  pg3: { address: 10.0.0.13, role: standby }\n`;
const { dir, write } = yamlFiles("safety-reads", () => undefined);
writeFileSync(join(dir, "inventory.yml"), THREE);
const inventory = loadInventory(join(dir, "inventory.yml"));
const targets = inventory.hosts.map(targetOf);

/** The bundled playbook, edited (its templates found where they are). */
function bundledWith(edit: (text: string) => string): ReturnType<typeof loadClusterPlaybook> {
  const templates = join(import.meta.dirname, "../../templates/");
  return loadClusterPlaybook(write(edit(readFileSync(BUNDLED, "utf8")).replaceAll("../templates/", templates)), inventory);
}

const writable = (id: string): DataDirectory => ({
  exists: true, entries: 20, standbySignal: false, running: true, partialClone: false, replacedLeft: false,
  userDatabases: 1, userRelations: 9, tablespaces: 0, nextOid: 20000, timeline: 1, state: "in production", systemIdentifier: id,
});

describe("issue 9 item 6: safety as a type", () => {
  it("accepts the bundled playbook, and one whose data-directory read registers nothing", () => {
    expect(() => requireSafetyReads(loadClusterPlaybook(BUNDLED, inventory), targets, inventory.hosts)).not.toThrow();
    const unregistered = bundledWith((t) => t.replace("      register: pgprov_data_directory\n", ""));
    expect(() => requireSafetyReads(unregistered, targets, inventory.hosts)).not.toThrow();
  });

  it("refuses a playbook that clones without reading every host's data directory in an earlier read-only play", () => {
    const noReads = bundledWith((t) => t.replace(/- name: Cluster state\n[\s\S]*?register: pgprov_data_directory\n/, ""));
    expect(() => requireSafetyReads(noReads, targets, inventory.hosts)).toThrow(/refusing a playbook that clones \(pg_standby\) without first reading the data directory of pg1, pg2, pg3/);
    const primaryOnly = bundledWith((t) => t.replace("- name: Cluster state\n  hosts: [primary, standbys]", "- name: Cluster state\n  hosts: primary"));
    expect(() => requireSafetyReads(primaryOnly, targets, inventory.hosts)).toThrow(/data directory of pg2, pg3/);
  });

  it("issue 9 item 6: refuses a playbook that clones and changes a host before it has read every data directory", () => {
    // The reads moved after the configuration plays: those would change hosts (a reload, a
    // restart of a server the gate has not seen) before the gate could stop the run.
    const readsLate = bundledWith((t) => {
      const reads = /- name: Cluster state\n[\s\S]*?register: pgprov_data_directory\n/.exec(t)![0];
      return t.replace(reads, "").replace("- name: Standbys\n", `${reads}\n- name: Standbys\n`);
    });
    expect(() => requireSafetyReads(readsLate, targets, inventory.hosts)).toThrow(/without first reading the data directory of pg1, pg2, pg3/);
  });

  it("gates on what pg_data_directory read, whatever it was registered as: two writable servers stop the run", () => {
    const playbook = bundledWith((t) => t.replace("      register: pgprov_data_directory\n", ""));
    const gate = safetyGate(playbook, inventory, inventory.hosts, []);
    const results = new RunResults();
    results.record(pgDataDirectory, "pg1", writable("1"));
    results.record(pgDataDirectory, "pg2", writable("2"));
    results.record(pgDataDirectory, "pg3", { ...writable("1"), running: false, standbySignal: true });
    expect(() => gate(playbook.plays[0]!, results, ["pg1", "pg2", "pg3"])).toThrow(PgprovError);
    expect(() => gate(playbook.plays[0]!, results, ["pg1", "pg2", "pg3"])).toThrow(/more than one server accepts writes: pg1 \(timeline 1\), pg2/);
    // A host that was not read fails closed.
    const partial = new RunResults();
    partial.record(pgDataDirectory, "pg1", writable("1"));
    expect(() => gate(playbook.plays[0]!, partial, ["pg1"])).toThrow(/the data directory of pg2, pg3 could not be read/);
    // Plays that read no data directory are not gated.
    expect(() => gate(playbook.plays[1]!, partial, ["pg1"])).not.toThrow();
  });

  it("issue 9 item 6: judges reads split over several read-only plays together, before the first play that may change a host", () => {
    const split = bundledWith((t) =>
      t.replace(
        /- name: Cluster state\n  hosts: \[primary, standbys\]\n([\s\S]*?register: pgprov_data_directory\n)/,
        "- name: Cluster state of the primary\n  hosts: primary\n$1\n- name: Cluster state of the standbys\n  hosts: standbys\n$1",
      ),
    );
    expect(() => requireSafetyReads(split, targets, inventory.hosts)).not.toThrow();
    const gate = safetyGate(split, inventory, inventory.hosts, []);
    const results = new RunResults();
    results.record(pgDataDirectory, "pg1", writable("1"));
    // After the primary's read, the standbys' is still to come: nothing to judge yet.
    expect(() => gate(split.plays[0]!, results, ["pg1"])).not.toThrow();
    results.record(pgDataDirectory, "pg2", writable("2"));
    // After the standbys' read (pg3 not read), before the first play that may change a host: judged.
    expect(() => gate(split.plays[1]!, results, ["pg2", "pg3"])).toThrow(/the data directory of pg3 could not be read/);
    results.record(pgDataDirectory, "pg3", { ...writable("1"), running: false, standbySignal: true });
    expect(() => gate(split.plays[1]!, results, ["pg2", "pg3"])).toThrow(/more than one server accepts writes: pg1 \(timeline 1\), pg2/);
  });
});
