import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FACT_KEYS } from "../../src/engine/facts.js";
import { genericModules } from "../../src/modules/index.js";
import { postgresModules } from "../../src/postgres/index.js";
import { loadPlaybook, type PlaybookScope, type TaskModule } from "../../src/playbook/playbook.js";
import { yamlFiles } from "./yaml-files.js";

const scope: PlaybookScope<TaskModule> = {
  modules: { ...genericModules(), ...postgresModules({ port: 5432 }) },
  hostNames: ["pg1", "pg2"],
  groups: ["primary", "standbys"],
  variables: ["host", "hosts", "facts", "port"],
  factKeys: FACT_KEYS,
};
const { dir, problems } = yamlFiles("playbook", (file) => loadPlaybook(file, scope));

describe("playbook loading", () => {
  it("loads the sample playbook the end-to-end tests use", () => {
    const playbook = loadPlaybook(join(import.meta.dirname, "../fixtures/sample-playbook.yml"), scope);
    const modules = new Set(playbook.plays.flatMap((p) => [...p.tasks, ...p.handlers].map((t) => t.moduleName)));
    expect([...modules].sort()).toEqual(["apt", "command", "file", "service", "template"]);
    expect(playbook.plays[1]!.tasks[1]!.notify).toEqual(["restart cron"]);
    expect(playbook.plays[1]!.tasks[0]!.where).toMatch(/sample-playbook\.yml:12:7$/);
  });

  it("rejects an unknown module, with a suggestion", () => {
    const [unknown, none] = problems(`- name: p\n  hosts: all\n  tasks:\n    - name: t\n      aptt: { packages: cron }\n`);
    expect(unknown).toBe(`5:7: 0.tasks.0: unknown key "aptt" (did you mean "apt"?)`);
    expect(none).toMatch(/^4:7: 0\.tasks\.0: a task needs exactly one module \(apt, file, template, service, command, pg_role, /);
  });

  it("rejects bad module arguments at their position, and accepts templates where a type is expected", () => {
    expect(
      problems(`- name: p\n  hosts: all\n  tasks:\n    - name: t\n      file: { path: relative, mode: "{{ port }}", stat: file }\n`),
    ).toEqual([
      `5:21: 0.tasks.0.file.path: expected an absolute path, found relative`,
      `5:51: 0.tasks.0.file: unknown key "stat" (did you mean "state"?)`,
    ]);
  });

  it("rejects unknown variables and facts before anything connects", () => {
    expect(
      problems(`- name: p\n  hosts: all\n  tasks:\n    - name: t\n      file: { path: "/etc/{{ prot }}", content: "{{ facts.os_name }}" }\n`),
    ).toEqual([
      `5:21: file.path: unknown variable "prot" (did you mean "port"?)`,
      `5:49: file.content: unknown fact "os_name" (did you mean "hostname"?)`,
    ]);
  });

  it("knows a registered value only after the task that registers it", () => {
    const early = problems(
      `- name: p\n  hosts: all\n  tasks:\n    - name: a\n      file: { path: /x, content: "{{ out.stdout }}" }\n    - name: b\n      command: { cmd: id, changed_when: false }\n      register: out\n`,
    );
    expect(early).toEqual([`5:34: file.content: unknown variable "out"`]);
  });

  it("rejects a notify without a handler, and an unknown host", () => {
    expect(
      problems(`- name: p\n  hosts: [pg1, pg3]\n  tasks:\n    - name: t\n      file: { path: /x }\n      notify: restart postgrsql\n  handlers:\n    - name: restart postgresql\n      service: { name: x, state: restarted }\n`),
    ).toEqual([
      `2:16: hosts: "pg3" is neither a group (all, primary, standbys) nor a host of the inventory (did you mean "pg1"?)`,
      `6:15: notify: no handler named "restart postgrsql" in this play (did you mean "restart postgresql"?)`,
    ]);
  });

  it("checks the variables of a template file", () => {
    writeFileSync(join(dir, "t.hbs"), "x = {{ nope }}\n");
    expect(problems(`- name: p\n  hosts: all\n  tasks:\n    - name: t\n      template: { src: t.hbs, path: /x }\n`)).toEqual([
      `5:24: template t.hbs: unknown variable "nope"`,
    ]);
  });
});
