/**
 * The engine against a fake host (HostIO): where batches break, the re-read after an act, handlers
 * that survive a failed run, --limit and --tags with read-only plays, a stop from the safety gate,
 * and reading ahead (a converged run in one round trip; a wrong guess falls back, never skips a
 * change). The fake host is a key-value store that runs a tiny script language; the modules here
 * speak it, so the engine's own logic is what is tested.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { PgprovError } from "../../src/common/errors.js";
import type { Section, SectionResult } from "../../src/engine/batch.js";
import { noChange } from "../../src/engine/change.js";
import type { RunEvent } from "../../src/engine/events.js";
import { FACTS_SCRIPT, parseFacts } from "../../src/engine/facts.js";
import type { HostIO } from "../../src/engine/host-io.js";
import type { Module, ProbeReader } from "../../src/engine/module.js";
import { runPlaybook, type RunOptions } from "../../src/engine/run.js";
import type { Target } from "../../src/engine/targets.js";
import { loadPlaybook } from "../../src/playbook/playbook.js";

/** A host: keys and values, and every batch it was sent (one per round trip). */
class FakeHost implements HostIO {
  batches: Section[][] = [];
  constructor(readonly values: Record<string, string> = {}) {}

  get roundTrips(): number {
    return this.batches.length;
  }

  async run(sections: Section[]): Promise<SectionResult[]> {
    this.batches.push(sections);
    const results: SectionResult[] = [];
    let stopped = false;
    for (const section of sections) {
      if (stopped) {
        results.push({ ran: false, code: -1, stdout: "", stderr: "" });
        continue;
      }
      const r = this.section(section.script);
      results.push({ ran: true, ...r });
      if (r.code !== 0 && section.stopOnFailure) stopped = true;
    }
    return results;
  }

  /** `get K...` prints K=V lines; `set K V` sets; `fail` fails; the facts script prints facts. */
  private section(script: string): Omit<SectionResult, "ran"> {
    if (script === FACTS_SCRIPT) return { code: 0, stderr: "", stdout: "os_id=debian\nos_version=12\nos_codename=bookworm\narch=amd64\nhostname=h\ncpus=2\nmemory_mb=1024\n" };
    let stdout = "";
    for (const line of script.split("\n")) {
      const [verb, ...rest] = line.split(" ");
      if (verb === "get") for (const k of rest) stdout += `${k}=${this.values[k] ?? ""}\n`;
      else if (verb === "set") this.values[rest[0]!] = rest.slice(1).join(" ");
      else if (verb === "fail") return { code: 3, stdout, stderr: "it failed" };
    }
    return { code: 0, stdout, stderr: "" };
  }

  /** The scripts of every section sent, batch by batch. */
  scripts(): string[][] {
    return this.batches.map((b) => b.map((s) => s.script));
  }
}

const kvArgs = z.strictObject({ key: z.string(), value: z.string() });

/** key = value; reads with a shell probe of its own. */
const kv: Module<z.output<typeof kvArgs>, string> = {
  name: "kv",
  args: kvArgs,
  probe: (args) => `get ${args.key}`,
  decide(args, state) {
    const now = state.stdout.trim().split("=")[1] ?? "";
    if (now === args.value) return noChange(`${args.key} is ${now}`, now);
    return { changes: [{ action: "update", summary: `${args.key}: ${now} -> ${args.value}`, commands: [{ script: `set ${args.key} ${args.value}` }] }], value: now };
  },
};

/** Reads many keys with one `get`. */
const keysReader: ProbeReader<string> = {
  name: "keys",
  script: (keys) => `get ${keys.join(" ")}`,
  split: (output, keys) => keys.map((_k, n) => ({ ...output, stdout: `${output.stdout.split("\n")[n]}\n` })),
};
const kvShared: Module<z.output<typeof kvArgs>, string> = { ...kv, name: "kv_shared", probe: (args) => ({ reader: keysReader, item: args.key }) };

/** Reads a key, changes nothing. */
const read: Module<{ key: string }, string> = {
  name: "read",
  readOnly: true,
  args: z.strictObject({ key: z.string() }),
  probe: (args) => `get ${args.key}`,
  decide: (_args, state) => noChange("read", state.stdout.trim().split("=")[1] ?? ""),
};

/** Always changes: runs its script (`fail` fails). */
const run: Module<{ script: string }> = {
  name: "run",
  args: z.strictObject({ script: z.string() }),
  probe: () => "get never",
  decide: (args) => ({ changes: [{ action: "run", summary: args.script, commands: [{ script: args.script }] }] }),
};

const modules = { kv, kv_shared: kvShared, read, run };

interface Setup {
  dir: string;
  hosts: Record<string, FakeHost>;
  events: RunEvent[];
  run(options?: Partial<RunOptions>): ReturnType<typeof runPlaybook>;
}

/** A playbook (YAML) over fake hosts h1 (group "first") and h2; runs of one directory share a state file. */
function setup(
  yaml: string,
  hosts: Record<string, FakeHost> = { h1: new FakeHost(), h2: new FakeHost() },
  dir = mkdtempSync(join(tmpdir(), "pgprov-engine-")),
  extraModules: Record<string, Module> = {},
): Setup {
  const file = join(dir, `playbook.yml`);
  writeFileSync(file, yaml);
  const targets: Target[] = Object.keys(hosts).map((name, i) => ({ name, address: `10.0.0.${i + 1}`, groups: i === 0 ? ["first"] : [] }));
  const playbook = loadPlaybook<Module>(file, { modules: { ...modules, ...extraModules }, hostNames: Object.keys(hosts), groups: ["first"], variables: ["host"], factKeys: [] });
  const events: RunEvent[] = [];
  return {
    dir,
    hosts,
    events,
    run: (options = {}) => {
      events.length = 0;
      return runPlaybook(playbook, {
        inventoryFile: join(dir, "inventory.yml"),
        targets,
        reached: targets.map((t) => ({ name: t.name, io: hosts[t.name]! })),
        variables: (t) => ({ host: { name: t.name } }),
        statePath: join(dir, "state.json"),
        emit: (e) => events.push(e),
        ...options,
      });
    },
  };
}

/** A play of reads on every host, then a play that changes. */
const READ_THEN_CHANGE = `
- name: reads
  hosts: all
  tasks:
    - { name: read a, read: { key: a } }
- name: changes
  hosts: all
  tasks:
    - { name: tagged, kv: { key: t, value: "1" }, tags: [t] }
    - { name: untagged, kv: { key: u, value: "1" } }
`;

/** A task that notifies, then a second task (one that fails, or not). */
const notifyThen = (second: string) => `
- name: p
  hosts: first
  tasks:
    - { name: change, kv: { key: k, value: "1" }, notify: h }
    - { name: second, ${second} }
  handlers:
    - { name: h, kv: { key: handled, value: "yes" } }
`;

const taskEvents = (events: RunEvent[]) => events.flatMap((e) => (e.type === "task" ? [`${e.host} ${e.task} ${e.status}`] : []));

describe("engine on a fake host", () => {
  it("issue 9 item 5: a task that reads a value registered in its own play waits for it (a batch break)", async () => {
    const s = setup(`
- name: p
  hosts: all
  tasks:
    - { name: a, read: { key: a }, register: got }
    - { name: b, kv: { key: b, value: "{{ got.stdout }}" } }
    - { name: c, kv: { key: c, value: "1" } }
`);
    s.hosts.h1!.values.a = "x";
    await s.run({ check: true });
    // facts, then a (with c read ahead; b cannot be rendered yet), then b (and c, rendered with it).
    expect(s.hosts.h1!.scripts()).toEqual([[FACTS_SCRIPT], [FACTS_SCRIPT, "get a", "get c"], [FACTS_SCRIPT, "get b"]]);
    expect(taskEvents(s.events).filter((e) => e.startsWith("h1"))).toEqual(["h1 a ok", "h1 b changed", "h1 c changed"]);
  });

  it("issue 9 item 5: an act's round trip re-reads the rest of its batch, which is decided on what it reads then", async () => {
    const s = setup(`
- name: p
  hosts: first
  tasks:
    - { name: set k, kv: { key: k, value: "1" } }
    - { name: k is 1, kv: { key: k, value: "1" } }
`);
    const summary = await s.run();
    expect(summary.failed).toBe(false);
    const h1 = s.hosts.h1!.scripts();
    expect(h1.at(-1)).toEqual(["set k 1", "get k"]);
    // Decided on the stale read, the second task would have set k again.
    expect(taskEvents(s.events)).toEqual(["h1 set k changed", "h1 k is 1 ok"]);
  });

  it("issue 9 item 5: a handler notified before a run failed runs in the next run", async () => {
    const failing = setup(notifyThen(`run: { script: fail }`));
    const summary = await failing.run();
    expect(summary.failed).toBe(true);
    expect(failing.hosts.h1!.values).toEqual({ k: "1" });
    // The same hosts and state file, the failing task fixed: the handler runs, though nothing changes now.
    const fixed = setup(notifyThen(`kv: { key: k, value: "1" }`), failing.hosts, failing.dir);
    await fixed.run();
    expect(taskEvents(fixed.events)).toEqual(["h1 change ok", "h1 second ok", "h1 h changed"]);
    expect(fixed.hosts.h1!.values.handled).toBe("yes");
    await fixed.run();
    expect(taskEvents(fixed.events)).toEqual(["h1 change ok", "h1 second ok"]);
  });

  it("issue 9 item 5: --limit and --tags leave read-only plays whole", async () => {
    const s = setup(READ_THEN_CHANGE);
    await s.run({ limit: ["h2"], tags: ["t"] });
    expect(taskEvents(s.events)).toEqual(["h1 read a ok", "h2 read a ok", "h2 tagged changed"]);
    expect(s.hosts.h1!.values).toEqual({});
    expect(s.hosts.h2!.values).toEqual({ t: "1" });
  });

  it("issue 9 item 5: a stop from the gate after a play changes nothing after it, on any host", async () => {
    const s = setup(READ_THEN_CHANGE);
    s.hosts.h2!.values.a = "writable";
    const summary = await s.run({
      afterPlay: (play, results) => {
        // What the gate reads is typed by module: results.of(read) is a Map of host -> string.
        const writable = [...results.of(read)].filter(([, v]) => v === "writable").map(([h]) => h);
        if (writable.length) throw new PgprovError(`after ${play.name}: ${writable.join(", ")} is writable`);
      },
    });
    expect(summary.failed).toBe(true);
    expect(s.events.find((e) => e.type === "failure")).toMatchObject({ host: "cluster", play: "reads", message: "after reads: h2 is writable" });
    expect([s.hosts.h1!.values, s.hosts.h2!.values]).toEqual([{}, { a: "writable" }]);
    expect([...s.hosts.h1!.scripts(), ...s.hosts.h2!.scripts()].flat().filter((x) => x.startsWith("set"))).toEqual([]);
  });

  it("issue 9 item 1: a converged run reads every play in one round trip per host", async () => {
    const s = setup(`
- name: one
  hosts: all
  tasks:
    - { name: read a, read: { key: a }, register: a }
- name: two
  hosts: all
  tasks:
    - { name: b from a, kv: { key: b, value: "{{ a.stdout }}" } }
    - { name: c, kv_shared: { key: c, value: "1" } }
    - { name: d, kv_shared: { key: d, value: "1" } }
- name: three
  hosts: first
  tasks:
    - { name: e, kv: { key: e, value: "1" } }
`);
    s.hosts.h1!.values.a = "x";
    s.hosts.h2!.values.a = "y";
    await s.run();
    expect([s.hosts.h1!.values, s.hosts.h2!.values]).toEqual([
      { a: "x", b: "x", c: "1", d: "1", e: "1" },
      { a: "y", b: "y", c: "1", d: "1" },
    ]);
    s.hosts.h1!.batches = [];
    s.hosts.h2!.batches = [];
    const summary = await s.run();
    expect(summary.changed).toBe(false);
    expect([summary.hosts.h1!.commands, summary.hosts.h2!.commands]).toEqual([1, 1]);
    // One batch: the facts, each shell probe, and one section for both shared probes.
    expect(s.hosts.h1!.scripts()).toEqual([[FACTS_SCRIPT, "get a", "get b", "get e", "get c d"]]);
  });

  it("issue 9 item 1: a wrong guess is read again, and its change made", async () => {
    const s = setup(`
- name: one
  hosts: first
  tasks:
    - { name: read name, read: { key: name }, register: name }
- name: two
  hosts: first
  tasks:
    - { name: the key named, kv: { key: "{{ name.stdout }}", value: "1" } }
`);
    s.hosts.h1!.values.name = "x";
    await s.run();
    expect(s.hosts.h1!.values.x).toBe("1");
    // By hand: the name now says y. The guess (x) made the read-ahead probe `get x`.
    s.hosts.h1!.values.name = "y";
    s.hosts.h1!.batches = [];
    const summary = await s.run();
    expect(s.hosts.h1!.scripts()).toEqual([[FACTS_SCRIPT, "get name", "get x"], [FACTS_SCRIPT, "get y"], ["set y 1"]]);
    expect(summary.hosts.h1!.changed).toBe(1);
    expect(s.hosts.h1!.values.y).toBe("1");
  });

  it("issue 9 item 1: after any change, later plays are read again, on every host", async () => {
    const s = setup(`
- name: one
  hosts: all
  tasks:
    - { name: set k on h1, kv: { key: k, value: "1" }, when: "{{ eq host.name 'h1' }}" }
- name: two
  hosts: all
  tasks:
    - { name: k, read: { key: k } }
`);
    s.hosts.h1!.values.k = "0";
    s.hosts.h2!.values.k = "0";
    await s.run();
    s.hosts.h1!.values.k = "0";
    s.hosts.h1!.batches = [];
    s.hosts.h2!.batches = [];
    const summary = await s.run();
    expect(summary.results.of(read).get("h1")).toBe("1");
    // h2 changed nothing itself, but it is read again after h1's change: the read ahead is dropped everywhere.
    expect(s.hosts.h2!.scripts()).toEqual([[FACTS_SCRIPT, "get k"], [FACTS_SCRIPT, "get k"]]);
  });
});

describe("issue 10: a change whose later commands depend on the control machine (Command.next)", () => {
  // Reads `k`; to change it, the host prints a request, the control machine answers it, the host
  // stores the answer: as a host makes a signing request that pgprov signs.
  const signArgs = z.strictObject({ key: z.string() });
  const sign = (answer: (request: string) => Promise<string>): Module<z.output<typeof signArgs>> => ({
    name: "sign",
    args: signArgs,
    probe: (args) => `get ${args.key}`,
    decide(args, state) {
      if (state.stdout.trim() !== `${args.key}=`) return noChange("signed");
      return {
        changes: [
          {
            action: "create",
            summary: `sign ${args.key}`,
            commands: [{ script: "get request", next: async (request) => [{ script: `set ${args.key} ${await answer(request.trim().split("=")[1]!)}` }] }],
          },
        ],
      };
    },
  });
  const PLAY = `
- name: p
  hosts: all
  tasks:
    - { name: sign k, sign: { key: k } }
    - { name: later, read: { key: k } }
`;
  const withSign = (module: Module) => {
    const dir = mkdtempSync(join(tmpdir(), "pgprov-engine-"));
    const file = join(dir, "playbook.yml");
    writeFileSync(file, PLAY);
    const host = new FakeHost({ request: "csr" });
    const playbook = loadPlaybook<Module>(file, { modules: { ...modules, sign: module }, hostNames: ["h1"], groups: [], variables: ["host"], factKeys: [] });
    const events: RunEvent[] = [];
    const target: Target = { name: "h1", address: "10.0.0.1", groups: [] };
    const go = () =>
      runPlaybook(playbook, {
        inventoryFile: join(dir, "inventory.yml"),
        targets: [target],
        reached: [{ name: "h1", io: host }],
        variables: () => ({ host: { name: "h1" } }),
        statePath: join(dir, "state.json"),
        emit: (e) => events.push(e),
      });
    return { host, events, go };
  };

  it("issue 10: runs up to the command, hands its output to next, runs what it returns, then re-reads the later tasks", async () => {
    const { host, go } = withSign(sign(async (request) => `signed-${request}`));
    const summary = await go();
    expect(summary.failed).toBe(false);
    expect(host.values.k).toBe("signed-csr");
    // The first run learns the facts first; then the check, the request, and the answer with the re-read.
    expect(host.scripts()).toEqual([[FACTS_SCRIPT], [FACTS_SCRIPT, "get k"], ["get request"], ["set k signed-csr", "get k"]]);
    expect(summary.results.of(read).get("h1")).toBe("signed-csr");
  });

  it("issue 10: a failure on the control machine fails the host, naming the task, and runs nothing more", async () => {
    const { host, events, go } = withSign(sign(async () => { throw new PgprovError("the signing request from h1 does not verify"); }));
    const summary = await go();
    expect(summary.failed).toBe(true);
    expect(host.values.k).toBeUndefined();
    expect(host.scripts()).toEqual([[FACTS_SCRIPT], [FACTS_SCRIPT, "get k"], ["get request"]]);
    const failure = events.find((e) => e.type === "failure");
    expect(failure).toMatchObject({ host: "h1", task: "sign k", message: expect.stringContaining("the signing request from h1 does not verify") });
  });
});

describe("the facts script", () => {
  it("issue 9 item 2: runs on shell builtins and exits 0 (cluster operations run it as a command that must succeed)", () => {
    const r = spawnSync("sh", ["-c", FACTS_SCRIPT], { encoding: "utf8" });
    expect(r.status).toBe(0);
    const facts = parseFacts(r.stdout);
    expect(facts.hostname).toBe(readFileSync("/proc/sys/kernel/hostname", "utf8").trim());
    expect(facts.memory_mb).toBeGreaterThan(0);
    expect(facts.cpus).toBeGreaterThan(0);
  });
});

describe("engine on a fake host: the second reader's findings", () => {
  it("issue 9 item 5: a handler notified by a task whose act failed half-way runs in the next run", async () => {
    // The first command of the act (the file written) took effect, the second failed: the host
    // already holds what the task wanted, so the next run sees no change and would never notify.
    const halfWay: Module<z.output<typeof kvArgs>, string> = {
      ...kv,
      name: "half_way",
      decide(args, state) {
        const d = kv.decide(args, state, { playbookDir: "", render: (t) => t });
        return d.changes.length ? { ...d, changes: d.changes.map((c) => ({ ...c, commands: [...c.commands, { script: "fail" }] })) } : d;
      },
    };
    const s = setup(
      `
- name: p
  hosts: first
  tasks:
    - { name: change, half_way: { key: k, value: "1" }, notify: h }
  handlers:
    - { name: h, kv: { key: handled, value: "yes" } }
`,
      undefined,
      undefined,
      { half_way: halfWay },
    );
    expect((await s.run()).failed).toBe(true);
    expect(s.hosts.h1!.values).toEqual({ k: "1" });
    await s.run();
    expect(taskEvents(s.events)).toEqual(["h1 change ok", "h1 h changed"]);
    expect(s.hosts.h1!.values.handled).toBe("yes");
  });
});

describe("engine on a fake host: reading ahead while another host acts", () => {
  it("issue 9 item 1: a read-ahead that comes back after another host's act is not used in later plays", async () => {
    // Two hosts that see one state (as a primary sees its standbys): h2 changes it in play one
    // while h1's read-ahead is on its way back, with what it read before the change.
    const shared: Record<string, string> = { k: "0" };
    let release = () => {};
    const acted = new Promise<void>((resolve) => (release = resolve));
    class Slow extends FakeHost {
      override async run(sections: Section[]): Promise<SectionResult[]> {
        const results = await super.run(sections);
        if (sections.some((s) => s.script.startsWith("get k"))) await acted; // the read-ahead's reply
        return results;
      }
    }
    class Acting extends FakeHost {
      override async run(sections: Section[]): Promise<SectionResult[]> {
        const results = await super.run(sections);
        if (sections.some((s) => s.script.startsWith("set"))) release();
        return results;
      }
    }
    const s = setup(
      `
- name: one
  hosts: all
  tasks:
    - { name: set k on h2, kv: { key: k, value: "1" }, when: "{{ eq host.name 'h2' }}" }
- name: two
  hosts: first
  tasks:
    - { name: k, read: { key: k } }
`,
      { h1: new Slow(shared), h2: new Acting(shared) },
    );
    const summary = await s.run();
    expect(shared.k).toBe("1");
    expect(summary.results.of(read).get("h1")).toBe("1");
  });
});

describe("engine on a fake host: a template file's variables", () => {
  /** Like the template module: `prepare` renders a file of the playbook's directory with the host's variables. */
  const templateArgs = z.strictObject({ key: z.string(), src: z.string(), value: z.string().optional() });
  const fileTemplate: Module<z.output<typeof templateArgs>, string> = {
    name: "template",
    args: templateArgs,
    prepare: (args, context) => ({ ...args, value: context.render(readFileSync(join(context.playbookDir, args.src), "utf8"), args.src) }),
    probe: (args) => `get ${args.key}`,
    decide: (args, state, context) => kv.decide({ key: args.key, value: args.value! }, state, context),
  };

  it("issue 9 item 5: a task whose template file reads a value registered in its own play waits for it (a batch break)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pgprov-engine-"));
    writeFileSync(join(dir, "b.hbs"), "{{ got.stdout }}");
    const s = setup(
      `
- name: p
  hosts: first
  tasks:
    - { name: a, read: { key: a }, register: got }
    - { name: b, template: { key: b, src: b.hbs } }
`,
      undefined,
      dir,
      { template: fileTemplate },
    );
    s.hosts.h1!.values.a = "x";
    const summary = await s.run();
    expect(s.events.filter((e) => e.type === "failure")).toEqual([]);
    expect(summary.failed).toBe(false);
    expect(s.hosts.h1!.values.b).toBe("x");
  });
});

describe("engine on a fake host: a handler its `when` skips", () => {
  it("issue 9 item 5: a notified handler that its when skips is done with, not left pending for a later run", async () => {
    // Left pending, it would run in whichever later run its `when` first holds: a restart long
    // after the change that asked for it, on a host whose role has changed since.
    const s = setup(`
- name: p
  hosts: first
  tasks:
    - { name: change, kv: { key: k, value: "1" }, notify: h }
  handlers:
    - { name: h, kv: { key: handled, value: "yes" }, when: "{{ eq host.role 'primary' }}" }
`);
    const as = (role: string): Partial<RunOptions> => ({ variables: (t) => ({ host: { name: t.name, role } }) });
    await s.run(as("standby"));
    expect(taskEvents(s.events)).toEqual(["h1 change changed", "h1 h skipped"]);
    await s.run(as("primary"));
    expect(taskEvents(s.events)).toEqual(["h1 change ok"]);
    expect(s.hosts.h1!.values.handled).toBeUndefined();
  });
});

describe("engine on a fake host: a --check run beside a run that changes", () => {
  it("issue 9 item 5: a --check run that ends after a failed run does not lose the handler that run left pending", async () => {
    // --check takes no lock (a drift check from cron, say), so it may run beside an apply; it read
    // the state file before the apply wrote the pending handler, and must not write it back without.
    let release = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    class Held extends FakeHost {
      override async run(sections: Section[]): Promise<SectionResult[]> {
        await released;
        return super.run(sections);
      }
    }
    const values: Record<string, string> = {};
    const checking = setup(notifyThen(`kv: { key: k, value: "1" }`), { h1: new Held(values) });
    const check = checking.run({ check: true });
    const failing = setup(notifyThen(`run: { script: fail }`), { h1: new FakeHost(values) }, checking.dir);
    expect((await failing.run()).failed).toBe(true);
    release();
    await check;
    const fixed = setup(notifyThen(`kv: { key: k, value: "1" }`), { h1: new FakeHost(values) }, checking.dir);
    await fixed.run();
    expect(taskEvents(fixed.events)).toEqual(["h1 change ok", "h1 second ok", "h1 h changed"]);
  });
});

describe("engine on a fake host: the gate after a play no host takes part in", () => {
  it("issue 9 item 5: afterPlay is called after every play, also one no host is left for (the gate may have waited for it)", async () => {
    // The safety gate judges reads split over read-only plays after the last of them; if that one
    // had no host (every standby excluded, say) and the gate were not called, nothing would be judged.
    const s = setup(READ_THEN_CHANGE.replace("- name: changes\n  hosts: all", "- name: only h2\n  hosts: h2\n  tasks:\n    - { name: read b, read: { key: b } }\n- name: changes\n  hosts: all"));
    const after: string[] = [];
    await s.run({ exclude: ["h2"], afterPlay: (play) => void after.push(play.name) });
    expect(after).toEqual(["reads", "only h2", "changes"]);
  });
});

describe("issue 13: hosts behind a jump host that cannot be reached", () => {
  it("issue 13: the failure the caller grouped is reported once, with its hosts; a host unreached on its own is reported apart", async () => {
    const hosts = { h1: new FakeHost(), h2: new FakeHost(), h3: new FakeHost() };
    const s = setup(READ_THEN_CHANGE, hosts);
    const summary = await s.run({
      reached: [
        { name: "h1", error: "jump host j (10.0.0.9:22, user root): connection refused; not reached behind it: h1, h2" },
        { name: "h2", error: "jump host j (10.0.0.9:22, user root): connection refused; not reached behind it: h1, h2" },
        { name: "h3", error: "host h3 (10.0.0.3): timed out" },
      ],
      sharedFailures: [{ host: "jump host j", message: "jump host j (10.0.0.9:22, user root): connection refused; not reached behind it: h1, h2", hosts: ["h1", "h2"] }],
    });
    const failures = s.events.filter((e) => e.type === "failure");
    expect(failures).toEqual([
      { type: "failure", host: "h3", message: "host h3 (10.0.0.3): timed out" },
      { type: "failure", host: "jump host j", message: expect.stringMatching(/^jump host j .*not reached behind it: h1, h2$/), hosts: ["h1", "h2"] },
    ]);
    expect(summary.failed).toBe(true);
  });
});
