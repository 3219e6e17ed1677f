/**
 * The progress tree on a terminal (issue 9: a no-op "as a new user would" run it, on a terminal).
 * A converged run reads every play in one round trip, so its plays arrive already finished: they
 * print at once as finished lines instead of each animating a live tree (which cost a new user
 * about 0.3 s of drawing per play).
 */
import { describe, expect, it } from "vitest";
import type { ClusterEvent } from "../../src/cluster/events.js";
import { TreeRenderer } from "../../src/output/tree.js";

function converged(): ClusterEvent[] {
  const hosts = ["pg1", "pg2"];
  const plays = ["Cluster state", "PostgreSQL packages"];
  const events: ClusterEvent[] = [{ type: "run", playbook: "p.yml", inventory: "i.yml", check: false, hosts } as ClusterEvent];
  for (const play of plays) {
    events.push({ type: "play", play, hosts } as ClusterEvent);
    for (const host of hosts) {
      events.push({ type: "task", play, host, task: "a task", handler: false, status: "ok", changes: [], ms: 1 } as unknown as ClusterEvent);
      events.push({ type: "host", play, host, status: "ok", ok: 1, changed: 0, skipped: 0, commands: play === plays[0] ? 1 : 0, ms: 3 } as ClusterEvent);
    }
  }
  return events;
}

describe("the progress tree", () => {
  it("issue 9: prints the plays of a run that finished them at once as finished lines, without a live tree", async () => {
    let out = "";
    const tree = new TreeRenderer({ diff: false, verbose: false, color: false, write: (t) => (out += t) });
    for (const e of converged()) tree.event(e);
    const started = performance.now();
    await tree.finish();
    const ms = performance.now() - started;
    expect(out).toContain("✔ Cluster state\n  ✔ pg1  ok=1 changed=0 skipped=0 · 1 round trip · 0.00 s\n  ✔ pg2  ok=1 changed=0 skipped=0 · 1 round trip · 0.00 s\n");
    expect(out).toContain("✔ PostgreSQL packages\n  ✔ pg1  ok=1 changed=0 skipped=0 · 0 round trips · 0.00 s\n");
    // Drawn, not animated: no cursor movement, and no wait for a frame.
    expect(out).not.toMatch(/\u001b\[/);
    expect(ms).toBeLessThan(1000);
  });

  it("issue 9: a finished play shows what changed under its host, and a failed host with a cross", async () => {
    let out = "";
    const tree = new TreeRenderer({ diff: false, verbose: false, color: false, write: (t) => (out += t) });
    tree.event({ type: "run", playbook: "p.yml", inventory: "i.yml", check: true, hosts: ["pg1", "pg2"] } as ClusterEvent);
    tree.event({ type: "play", play: "Config", hosts: ["pg1", "pg2"] } as ClusterEvent);
    tree.event({
      type: "task", play: "Config", host: "pg1", task: "server settings", handler: false, status: "changed",
      changes: [{ action: "update", summary: "update /etc/x.conf" }], ms: 1,
    } as unknown as ClusterEvent);
    tree.event({ type: "host", play: "Config", host: "pg1", status: "ok", ok: 0, changed: 1, skipped: 0, commands: 1, ms: 10 } as ClusterEvent);
    tree.event({ type: "host", play: "Config", host: "pg2", status: "failed", ok: 0, changed: 0, skipped: 0, commands: 1, ms: 10 } as ClusterEvent);
    await tree.finish();
    expect(out).toContain("✖ Config\n  ✔ pg1  ok=0 changed=1 skipped=0 · 1 round trip · 0.01 s\n    would change: server settings\n      ~ update /etc/x.conf\n  ✖ pg2  ");
  });
});

describe("the one-line progress after the last play", () => {
  it("issue 14: a progress line wider than the terminal is cut to its width, so that \\r\\x1b[2K clears all of it", async () => {
    let out = "";
    const tree = new TreeRenderer({ diff: false, verbose: false, color: false, columns: 40, write: (t) => (out += t) });
    const hosts = Array.from({ length: 12 }, (_, i) => `standby-number-${i + 1}`);
    tree.event({ type: "progress", host: hosts.join(", "), task: "wait for streaming", seconds: 3, detail: "at most 300 s" } as ClusterEvent);
    const line = out.split("\r\x1b[2K").at(-1)!;
    expect(line.length).toBeLessThan(40);
    expect(line).toMatch(/^standby-number-1, standby-number-2, st…$/);
    out = "";
    tree.event({ type: "progress", host: "pg2", task: "wait for streaming", seconds: 4 } as ClusterEvent);
    expect(out).toBe("\r\x1b[2Kpg2 · wait for streaming · 4 s");
    await tree.finish();
  });
});
