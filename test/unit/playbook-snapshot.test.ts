/**
 * Issue 9 (engine speed): the bundled playbook is bound from a snapshot made when the bundle is
 * built, not parsed at each run. The snapshot must give exactly the playbook the file gives, and
 * be used only while the file, its templates and the inventory allow it: otherwise the file is
 * loaded, with its problems reported at their place.
 */
import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadClusterPlaybook, snapshotClusterPlaybook } from "../../src/cluster/playbook.js";
import { BUILTIN_VARIABLES } from "../../src/cluster/variables.js";
import { FileError } from "../../src/common/errors.js";
import { FACT_KEYS } from "../../src/engine/facts.js";
import { loadInventory } from "../../src/inventory/inventory.js";
import { playbookFromSnapshot } from "../../src/playbook/playbook.js";
import { yamlFiles } from "./yaml-files.js";

const ROOT = join(import.meta.dirname, "../..");
const THREE = `hosts:\n  pg1: { address: 10.0.0.11, role: primary }\n  pg2: { address: 10.0.0.12, role: standby }\n  pg3: { address: 10.0.0.13, role: standby }\n`;
const { dir, write } = yamlFiles("playbook-snapshot", () => undefined);
writeFileSync(join(dir, "inventory.yml"), THREE);
const inventory = loadInventory(join(dir, "inventory.yml"));

/** The bundled playbook and its templates, copied where a test may edit them. */
function copy(): string {
  cpSync(join(ROOT, "playbooks"), join(dir, "playbooks"), { recursive: true });
  cpSync(join(ROOT, "templates"), join(dir, "templates"), { recursive: true });
  return join(dir, "playbooks", "cluster.yml");
}

/** What a run uses of a playbook: everything but the module objects, which are compared by name. */
const shape = (p: ReturnType<typeof loadClusterPlaybook>) => JSON.parse(JSON.stringify({ ...p, modules: Object.keys(p.modules) }, (k, v) => (k === "module" ? undefined : v)));

describe("issue 9: the bundled playbook from its build-time snapshot", () => {
  const file = copy();
  const snapshot = JSON.parse(JSON.stringify(snapshotClusterPlaybook(file)));

  it("issue 9: the snapshot binds to the same playbook as loading the file, modules included", () => {
    const fromFile = loadClusterPlaybook(file, inventory, undefined);
    const fromSnapshot = loadClusterPlaybook(file, inventory, snapshot);
    expect(shape(fromSnapshot)).toEqual(shape(fromFile));
    const tasks = (p: typeof fromFile) => p.plays.flatMap((pl) => [...pl.tasks, ...pl.handlers]);
    for (const t of tasks(fromSnapshot)) expect(t.module).toBe(fromSnapshot.modules[t.moduleName as keyof typeof fromSnapshot.modules]);
  });

  it("issue 9: an edited playbook or template is loaded from its file, not from the snapshot", () => {
    const scope = { modules: loadClusterPlaybook(file, inventory, undefined).modules, hostNames: ["pg1", "pg2", "pg3"], groups: ["primary", "standbys", "backup"], variables: [...BUILTIN_VARIABLES], factKeys: FACT_KEYS };
    expect(playbookFromSnapshot(snapshot, file, scope)).toBeDefined();
    const text = readFileSync(file, "utf8");
    writeFileSync(file, text.replace("- name: ", "- name:  "));
    expect(playbookFromSnapshot(snapshot, file, scope)).toBeUndefined();
    writeFileSync(file, text);
    const template = join(dir, "templates", Object.keys(snapshot.templates)[0]!.replace(/^.*templates\//, ""));
    const before = readFileSync(template, "utf8");
    writeFileSync(template, `${before}\n`);
    expect(playbookFromSnapshot(snapshot, file, scope)).toBeUndefined();
    writeFileSync(template, before);
    expect(playbookFromSnapshot(snapshot, file, { ...scope, variables: scope.variables.filter((v) => v !== "tls") })).toBeUndefined();
    expect(playbookFromSnapshot(snapshot, file, { ...scope, groups: ["primary"] })).toBeUndefined();
  });

  it("issue 9: a snapshot made elsewhere names this copy's file in every task's place", () => {
    const elsewhere = join(dir, "elsewhere");
    cpSync(join(dir, "playbooks"), join(elsewhere, "playbooks"), { recursive: true });
    cpSync(join(dir, "templates"), join(elsewhere, "templates"), { recursive: true });
    const here = join(elsewhere, "playbooks", "cluster.yml");
    const bound = loadClusterPlaybook(here, inventory, snapshot);
    const places = bound.plays.flatMap((p) => [p.where, ...p.tasks.map((t) => t.where), ...p.handlers.map((t) => t.where)]);
    for (const w of places) expect(w).toMatch(new RegExp(`^${here.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:\\d+:\\d+$`));
    expect(shape(bound)).toEqual(shape(loadClusterPlaybook(here, inventory, undefined)));
  });

  it("issue 9: the bundled text with a snapshot the scope cannot bind is loaded from its file, whole", () => {
    const unbindable = JSON.parse(JSON.stringify(snapshot));
    unbindable.plays[0].tasks[0].uses.push("not_a_variable");
    const scope = { modules: loadClusterPlaybook(file, inventory, undefined).modules, hostNames: ["pg1", "pg2", "pg3"], groups: ["primary", "standbys", "backup"], variables: [...BUILTIN_VARIABLES], factKeys: FACT_KEYS };
    expect(playbookFromSnapshot(unbindable, file, scope)).toBeUndefined();
    expect(shape(loadClusterPlaybook(file, inventory, unbindable))).toEqual(shape(loadClusterPlaybook(file, inventory, undefined)));
  });

  it("issue 9: a playbook the inventory cannot bind is reported from its file, at its place", () => {
    const own = write(`- name: mine\n  hosts: pg9\n  tasks:\n    - name: x\n      command: { cmd: "echo {{ nope }}" }\n`);
    const mine = snapshotClusterPlaybook(join(dir, "playbooks", "cluster.yml"));
    // The snapshot's text is not this file's: the file is loaded, and its problems reported.
    expect(() => loadClusterPlaybook(own, inventory, mine)).toThrow(FileError);
    expect(() => loadClusterPlaybook(own, inventory, mine)).toThrow(/:2:10: hosts: "pg9"/);
  });
});
