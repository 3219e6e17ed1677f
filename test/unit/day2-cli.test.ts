/** Issue 14's small things that need no host: --limit patterns, -v probe times, an operation's plan as text. */
import { describe, expect, it } from "vitest";
import { matchHosts } from "../../src/inventory/select.js";
import { PlainRenderer } from "../../src/output/plain.js";

const render = (verbose: boolean, event: Parameters<PlainRenderer["event"]>[0]) => {
  let out = "";
  new PlainRenderer({ diff: false, verbose, color: false, write: (t) => (out += t) }).event(event);
  return out;
};

describe("issue 14: the small things", () => {
  it("issue 14: --limit takes glob patterns; one that matches no host is an error naming it", () => {
    const names = ["pg1", "pg2", "pg3", "db1"];
    expect(matchHosts(["pg*"], names, "--limit")).toEqual(["pg1", "pg2", "pg3"]);
    expect(matchHosts(["pg[23]", "db?"], names, "--limit")).toEqual(["pg2", "pg3", "db1"]);
    expect(matchHosts(["pg[!1]"], names, "--limit")).toEqual(["pg2", "pg3"]);
    expect(matchHosts(["pg1", "pg1"], names, "--limit")).toEqual(["pg1"]);
    expect(() => matchHosts(["web*"], names, "--limit")).toThrow('--limit: "web*" matches no host of the inventory (pg1, pg2, pg3, db1)');
    // A dot is a dot, not any character.
    expect(() => matchHosts(["pg.1"], ["pgx1"], "--reclone")).toThrow(/matches no host/);
  });

  it("issue 14: -v prints every task's probe time (the round trip that read it, and how many checks shared it)", () => {
    const task: Parameters<PlainRenderer["event"]>[0] = { type: "task", play: "p", host: "pg1", task: "server settings", handler: false, status: "ok", changes: [], reason: "as wanted", ms: 0, probe: { ms: 42, checks: 7 } };
    expect(render(true, task)).toContain("server settings  (as wanted)  [checked in 42 ms, one round trip for 7 checks]");
    expect(render(false, task)).toBe("");
  });

  it("issue 14: an operation's plan reads as facts, then the numbered steps (would: under --dry-run)", () => {
    const out = render(false, { type: "plan", dryRun: true, operation: "switchover", facts: { target: "pg2", targetLagBytes: 0 }, steps: ["stop pg1", "promote pg2"] });
    expect(out).toBe("switchover plan\n  target: pg2\n  target lag bytes: 0\nwould: 1. stop pg1\nwould: 2. promote pg2\n");
    expect(render(false, { type: "step", operation: "failover", seconds: 1.5, message: "promoted pg2" })).toBe("[  1.50 s] promoted pg2\n");
  });
});

describe("issue 14: confirmation", () => {
  it("issue 14: without a terminal and without --yes, a confirmation refuses naming --yes; --yes and --dry-run ask nothing", async () => {
    const { confirmation } = await import("../../src/cli/confirm.js");
    const [tty, errTty] = [process.stdin.isTTY, process.stderr.isTTY];
    try {
      process.stdin.isTTY = false;
      expect(() => confirmation("failover", { yes: false, dryRun: false })).toThrow(/failover asks for confirmation, and stdin is not a terminal: pass --yes .*nothing was changed/);
      expect(confirmation("failover", { yes: true, dryRun: false })).toBeUndefined();
      expect(confirmation("failover", { yes: false, dryRun: true })).toBeUndefined();
      process.stdin.isTTY = true;
      process.stderr.isTTY = true;
      expect(confirmation("failover", { yes: false, dryRun: false })).toBeTypeOf("function");
    } finally {
      process.stdin.isTTY = tty;
      process.stderr.isTTY = errTty;
    }
  });

  it("issue 14: with stderr not a terminal (redirected to a file), the question would not be seen: refuses naming --yes", async () => {
    const { confirmation } = await import("../../src/cli/confirm.js");
    const [tty, errTty] = [process.stdin.isTTY, process.stderr.isTTY];
    try {
      process.stdin.isTTY = true;
      process.stderr.isTTY = false;
      expect(() => confirmation("apply --reclone", { yes: false })).toThrow(/apply --reclone asks for confirmation, and stderr is not a terminal \(the question is asked there\): pass --yes .*nothing was changed/);
    } finally {
      process.stdin.isTTY = tty;
      process.stderr.isTTY = errTty;
    }
  });
});
