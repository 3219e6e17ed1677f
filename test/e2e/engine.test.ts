/**
 * The playbook engine on real hosts: every module, idempotence measured in round trips, drift
 * repaired, --check changing nothing, readable failures, handlers that survive a failed run,
 * and a non-root SSH user.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Lab, labDown, labExec, labUp } from "../lab/lab.js";
import { events, eventually, inventoryCopy, pgprov, recapOf } from "./helpers.js";

const SAMPLE = join(import.meta.dirname, "../fixtures/sample-playbook.yml");

let lab: Lab;
let inventory: string;

/** Checksums of everything the sample playbook manages, and of all of /etc, per host. */
async function fingerprints(): Promise<string[]> {
  return Promise.all(
    lab.hosts.map(async (h) => {
      const r = await labExec(h, "find /etc /var/lib/pgprov-sample-initialised -xdev -type f -print0 2>/dev/null | sort -z | xargs -0 sha256sum; stat -c '%n %a %U %G' /etc/pgprov-sample/*; systemctl is-active cron");
      return r.stdout;
    }),
  );
}

beforeAll(async () => {
  lab = await labUp({ hosts: 2 });
  inventory = inventoryCopy(lab, (doc) => doc.set("apt", { proxy: lab.aptProxy }));
  // pg2 has no apt proxy of its own: the inventory's `apt.proxy` is all it has.
  await labExec(lab.hosts[1]!, "rm -f /etc/apt/apt.conf.d/01proxy");
});
afterAll(async () => {
  await labDown();
});

describe("engine", () => {
  it("applies a playbook that uses every module", async () => {
    const r = await pgprov(["apply", inventory, "--playbook", SAMPLE, "--json"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const recap = recapOf(r);
    for (const host of ["pg1", "pg2"]) expect(recap[host]).toMatchObject({ failed: 0, changed: expect.any(Number) });
    expect(recap.pg1!.changed).toBeGreaterThanOrEqual(7);
    const handlerRuns = events(r).filter((e) => e.type === "task" && e.handler && e.status === "changed");
    expect(handlerRuns.map((e) => e.type === "task" && e.host).sort()).toEqual(["pg1", "pg2"]);

    const conf = await labExec(lab.hosts[0]!, "cat /etc/pgprov-sample/pg1.conf; stat -c '%a %U' /etc/pgprov-sample/pg1.conf; cat /etc/pgprov-sample/hostname /etc/pgprov-sample/primary");
    expect(conf.stdout).toBe(
      [
        "# Managed by pgprov (sample). Rendered for pg1.",
        "name = pg1",
        `address = ${lab.hosts[0]!.address}`,
        "role = primary",
        "os = debian bookworm",
        `peers = pg1=${lab.hosts[0]!.address},pg2=${lab.hosts[1]!.address}`,
        "640 root",
        "pg1",
        "this host is the primary",
        "",
      ].join("\n"),
    );
    expect((await labExec(lab.hosts[1]!, "test -e /etc/pgprov-sample/primary || echo absent")).stdout).toBe("absent\n");
    expect((await labExec(lab.hosts[1]!, "systemctl is-active cron")).stdout).toBe("active\n");
  });

  it("issue 9 item 1: reruns with nothing changed, in one round trip per host, with or without --forks", async () => {
    for (const forks of [[], ["--forks", "1"]]) {
      const r = await pgprov(["apply", inventory, "--playbook", SAMPLE, "--json", ...forks]);
      expect(r.code).toBe(0);
      const recap = recapOf(r);
      for (const host of ["pg1", "pg2"]) {
        expect(recap[host]).toMatchObject({ changed: 0, failed: 0 });
        // Every play read ahead in the first round trip, the third play's template rendered with
        // the value the last run registered (and found the same).
        expect(recap[host]!.commands).toBeLessThanOrEqual(1);
      }
    }
  });

  it("--check changes nothing on any host, and says what apply would do", async () => {
    // Drift made by hand, so there is something to report.
    await labExec(lab.hosts[0]!, "echo 'greeting = bonjour' > /etc/pgprov-sample/static.conf; chmod 600 /etc/pgprov-sample/pg1.conf");
    await labExec(lab.hosts[1]!, "systemctl stop cron");
    const before = await fingerprints();

    const check = await pgprov(["apply", inventory, "--playbook", SAMPLE, "--check", "--json"]);
    expect(check.code).toBe(2);
    const plan = await pgprov(["plan", inventory, "--playbook", SAMPLE]);
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain("-greeting = bonjour");
    expect(plan.stdout).toContain("+greeting = hello");
    expect(plan.stdout).toMatch(/mode 0600 -> 0640 of \/etc\/pgprov-sample\/pg1\.conf/);
    expect(plan.stdout).toMatch(/start cron \(inactive\)/);
    expect(await fingerprints()).toEqual(before);

    const wouldChange = events(check).flatMap((e) => (e.type === "task" && e.status === "changed" ? [`${e.host}: ${e.task}`] : []));
    expect(wouldChange).toEqual(expect.arrayContaining(["pg1: static file", "pg1: rendered file", "pg2: cron runs"]));
  });

  it("repairs a file and a service changed by hand", async () => {
    const r = await pgprov(["apply", inventory, "--playbook", SAMPLE, "--json"]);
    expect(r.code).toBe(0);
    expect(recapOf(r).pg1!.changed).toBeGreaterThanOrEqual(2);
    expect((await labExec(lab.hosts[0]!, "cat /etc/pgprov-sample/static.conf; stat -c %a /etc/pgprov-sample/pg1.conf")).stdout).toBe("greeting = hello\n640\n");
    expect((await labExec(lab.hosts[1]!, "systemctl is-active cron")).stdout).toBe("active\n");
    const again = await pgprov(["apply", inventory, "--playbook", SAMPLE, "--check"]);
    expect(again.code).toBe(0);
  });

  it("reports a failing task readably: host, play, task, command, exit code, stderr; other hosts finish the play", async () => {
    const playbook = join(dirname(inventory), "failing.yml");
    writeFileSync(
      playbook,
      `- name: Breaks on pg1
  hosts: all
  tasks:
    - name: boom
      command: { cmd: "echo boom-stderr >&2; exit 3", creates: /nonexistent }
      when: "{{ eq host.name 'pg1' }}"
    - name: after boom
      file: { path: /root/after-boom, content: "x\\n" }
- name: Never reached
  hosts: all
  tasks:
    - name: second play
      file: { path: /root/second-play, content: "x\\n" }
`,
    );
    const r = await pgprov(["apply", inventory, "--playbook", playbook]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(
      [
        `FAILED on pg1 play "Breaks on pg1", task "boom" (${playbook}:4:7)`,
        "  a command of the task failed (exit 3)",
        "  command:   echo boom-stderr >&2; exit 3",
        "  exit code: 3",
        "  stderr:",
        "    boom-stderr",
      ].join("\n"),
    );
    expect((await labExec(lab.hosts[1]!, "ls /root")).stdout).toContain("after-boom");
    for (const h of lab.hosts) expect((await labExec(h, "ls /root")).stdout).not.toContain("second-play");
  });

  it("bounds every wait: a command that outlives its timeout fails, naming what was waited for", async () => {
    const playbook = join(dirname(inventory), "slow.yml");
    writeFileSync(playbook, `- name: Slow\n  hosts: pg1\n  tasks:\n    - name: hangs\n      command: { cmd: "sleep 30", creates: /nonexistent, timeout: 1 }\n`);
    const started = Date.now();
    const r = await pgprov(["apply", inventory, "--playbook", playbook]);
    expect(r.code).toBe(1);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(r.stdout).toMatch(/FAILED on pg1 play "Slow", task "hangs".*\n  a command of the task timed out after 1 s and was killed\n  command:   sleep 30\n  exit code: 124/);
  });

  it("a second run that would change a host waits for the first, saying exactly what holds it (issue 8 item 13)", async () => {
    const playbook = join(dirname(inventory), "long.yml");
    writeFileSync(playbook, `- name: Long\n  hosts: pg1\n  tasks:\n    - name: takes a while\n      command: { cmd: "sleep 7.5", creates: /nonexistent }\n`);
    const first = pgprov(["apply", inventory, "--playbook", playbook]);
    // The second run starts once the first holds pg1 (its command runs there), not after a fixed
    // head start: on a loaded machine the first run took longer than 1.5 s to get there.
    await eventually("the first run's command on pg1", async () => (await labExec(lab.hosts[0]!, "pgrep -f '[s]leep 7.5' >/dev/null")).code === 0, 60_000);
    const second = await pgprov(["apply", inventory, "--playbook", playbook]);
    // Not refused, not run alongside: it waited (bounded), naming the holder, then ran.
    expect(second.stderr).toMatch(/host pg1: waiting for pgprov PID \d+ on this machine \([^)]*; it still runs\), now running .*: \d+ s of at most \d+ s/);
    expect(second.code, second.stdout).toBe(0);
    // Reads need no lock: check mode and status go on.
    expect((await pgprov(["apply", inventory, "--playbook", playbook, "--check"])).code).toBe(2);
    expect((await first).code).toBe(0);
  });

  it("keeps a handler notified before a failure, and runs it on the next run", async () => {
    const playbook = join(dirname(inventory), "handlers.yml");
    writeFileSync(
      playbook,
      `- name: Handlers
  hosts: pg1
  tasks:
    - name: config changes
      file: { path: /root/handler-config, content: "{{ config_version }}\\n" }
      notify: record restart
    - name: then something fails
      command: { cmd: "exit 1", unless: "{{ fail_now }}" }
  handlers:
    - name: record restart
      command: { cmd: "date >> /root/handler-ran", changed_when: true }
`,
    );
    const setVars = (failNow: string) => {
      const text = readFileSync(inventory, "utf8").replace(/\nvars:[\s\S]*$/, "");
      writeFileSync(inventory, `${text}\nvars:\n  config_version: "2"\n  fail_now: "${failNow}"\n`);
    };
    setVars("false");
    const failed = await pgprov(["apply", inventory, "--playbook", playbook, "--limit", "pg1"]);
    expect(failed.code).toBe(1);
    expect((await labExec(lab.hosts[0]!, "test -e /root/handler-ran || echo not-run")).stdout).toBe("not-run\n");
    const stateFile = join(dirname(inventory), ".pgprov", "inventory.state.json");
    expect(existsSync(stateFile)).toBe(true);
    expect(JSON.stringify(JSON.parse(readFileSync(stateFile, "utf8")).pendingHandlers)).toContain("record restart");

    setVars("true"); // `unless: true` passes: the failing command is now done
    const next = await pgprov(["apply", inventory, "--playbook", playbook, "--limit", "pg1", "--json"]);
    expect(next.code).toBe(0);
    const handler = events(next).find((e) => e.type === "task" && e.handler);
    expect(handler).toMatchObject({ task: "record restart", status: "changed" });
    expect((await labExec(lab.hosts[0]!, "wc -l < /root/handler-ran")).stdout.trim()).toBe("1");
    expect(JSON.parse(readFileSync(stateFile, "utf8")).pendingHandlers).toEqual({});

    const third = await pgprov(["apply", inventory, "--playbook", playbook, "--limit", "pg1", "--json"]);
    expect(recapOf(third).pg1).toMatchObject({ changed: 0 });
  });

  it("runs only the tagged tasks with --tags", async () => {
    const r = await pgprov(["apply", inventory, "--playbook", SAMPLE, "--tags", "packages", "--json"]);
    expect(r.code).toBe(0);
    const tasks = events(r).flatMap((e) => (e.type === "task" ? [e.task] : []));
    expect([...new Set(tasks)]).toEqual(["install cron"]);
  });

  it("masks secrets in diffs and --json, and keeps them out of remote arguments", async () => {
    const secret = "s3cret-Pa55word-e2e";
    const withSecret = inventoryCopy(lab, (doc) => doc.set("vars", { api_token: { secret: { env: "PGPROV_E2E_TOKEN" } } }));
    const playbook = join(dirname(withSecret), "secret.yml");
    writeFileSync(playbook, `- name: Secret
  hosts: all
  tasks:
    - name: token file
      file: { path: /root/token.conf, content: "token = {{ api_token }}\\n", mode: "0600" }
`);
    const env = { PGPROV_E2E_TOKEN: secret };
    const plan = await pgprov(["plan", withSecret, "--playbook", playbook], { env });
    expect(plan.stderr).toBe("");
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain("+token = ********");
    expect(plan.stdout).not.toContain(secret);

    // Watch every process's arguments on pg1 while apply writes the file.
    await labExec(lab.hosts[0]!, "rm -f /root/ps.log; (for i in $(seq 1 400); do ps -eo args >> /root/ps.log; sleep 0.01; done) >/dev/null 2>&1 &");
    const apply = await pgprov(["apply", withSecret, "--playbook", playbook, "--json", "--diff"], { env });
    expect(apply.code).toBe(0);
    expect(apply.stdout).not.toContain(secret);
    expect((await labExec(lab.hosts[0]!, "cat /root/token.conf")).stdout).toBe(`token = ${secret}\n`);
    const ps = await labExec(lab.hosts[0]!, "sleep 1; cat /root/ps.log");
    expect(ps.stdout).toContain("eval"); // the watcher saw pgprov's remote shell
    expect(ps.stdout).not.toContain(secret);

    // After a rotation, the diff's removed line would show the old secret: it is masked whole.
    const rotated = await pgprov(["plan", withSecret, "--playbook", playbook], { env: { PGPROV_E2E_TOKEN: "n3w-Pa55word-e2e" } });
    expect(rotated.code).toBe(2);
    expect(rotated.stdout).toContain("-********\n");
    expect(rotated.stdout).toContain("+token = ********");
    expect(rotated.stdout).not.toContain(secret);
  });

  it("works as a non-root user with passwordless sudo", async () => {
    const asDeploy = inventoryCopy(lab, (doc) => {
      doc.setIn(["ssh", "user"], "deploy");
      doc.set("apt", { proxy: lab.aptProxy });
    });
    await labExec(lab.hosts[0]!, "rm /etc/pgprov-sample/static.conf");
    const r = await pgprov(["apply", asDeploy, "--playbook", SAMPLE, "--json"]);
    expect(r.code).toBe(0);
    expect(recapOf(r).pg1!.changed).toBeGreaterThanOrEqual(1);
    expect((await labExec(lab.hosts[0]!, "stat -c '%U %a' /etc/pgprov-sample/static.conf")).stdout).toBe("root 644\n");
  });
});
