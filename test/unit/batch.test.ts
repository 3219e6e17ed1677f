import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { buildBatch, newNonce, parseBatch, TIMED_OUT } from "../../src/engine/batch.js";

/** Runs a batch with the local shell, the way a host runs it: the script on stdin. */
function runLocally(script: string): string {
  try {
    return execFileSync("sh", ["-c", 'eval "$(cat)"'], { input: script, encoding: "utf8" });
  } catch (e) {
    return (e as { stdout: string }).stdout;
  }
}

describe("batch", () => {
  it("keeps each section's stdout, stderr and exit code apart", () => {
    const nonce = newNonce();
    const sections = [
      { script: "echo one; echo err1 >&2" },
      { script: "printf 'no newline'; exit 3" },
      { script: "cat; echo after-stdin" }, // stdin is closed: cannot swallow the rest of the batch
      { script: "" },
    ];
    const results = parseBatch(runLocally(buildBatch(sections, nonce)), nonce, sections.length);
    expect(results).toEqual([
      { ran: true, code: 0, stdout: "one\n", stderr: "err1\n" },
      { ran: true, code: 3, stdout: "no newline", stderr: "" },
      { ran: true, code: 0, stdout: "after-stdin\n", stderr: "" },
      { ran: true, code: 0, stdout: "", stderr: "" },
    ]);
  });

  it("stops at a failing act and says which sections did not run", () => {
    const nonce = newNonce();
    const sections = [
      { script: "false\necho not reached", stopOnFailure: true },
      { script: "echo later" },
    ];
    const results = parseBatch(runLocally(buildBatch(sections, nonce)), nonce, 2);
    expect(results[0]).toMatchObject({ ran: true, code: 1, stdout: "" });
    expect(results[1]).toMatchObject({ ran: false });
  });

  it("kills a section that outlives its bound, children included, and goes on", () => {
    const nonce = newNonce();
    const started = Date.now();
    const sections = [
      { script: "sleep 20 & sleep 20; echo never", timeoutSeconds: 1 },
      { script: "cat <<'EOF'\nheredoc kept\nEOF\nstat -c %a \"$0\"", timeoutSeconds: 5 },
    ];
    const results = parseBatch(runLocally(buildBatch(sections, nonce)), nonce, 2);
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(results[0]).toMatchObject({ ran: true, code: TIMED_OUT, stdout: "" });
    // The section (which may carry a secret) waits in a file only its owner can read.
    expect(results[1]).toMatchObject({ ran: true, code: 0, stdout: "heredoc kept\n600\n" });
  });

  it("issue 8 item 13: removes its temporary directory when it is ended by TERM", async () => {
    const nonce = newNonce();
    const { spawn } = await import("node:child_process");
    // In a session of its own, as the host's remote shell runs each script.
    const shell = spawn("sh", ["-c", 'eval "$(cat)"'], { stdio: ["pipe", "pipe", "ignore"], detached: true });
    let stdout = "";
    shell.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    shell.stdin.end(buildBatch([{ script: 'echo "dir=$(dirname "$0")"; sleep 30', timeoutSeconds: 60 }], nonce));
    while (!/dir=(\S+)/.test(stdout)) await new Promise((r) => setTimeout(r, 20));
    const dir = /dir=(\S+)/.exec(stdout)![1]!;
    expect(existsSync(dir)).toBe(true);
    // As the host's remote shell does: TERM to every process of the script's session.
    execFileSync("pkill", ["-TERM", "-s", String(shell.pid)]);
    await new Promise((r) => shell.on("close", r));
    expect(existsSync(dir)).toBe(false);
  });

  it("is not fooled by output that looks like a marker of another batch", () => {
    const nonce = newNonce();
    const results = parseBatch(runLocally(buildBatch([{ script: "echo '@@deadbeef:0:end'" }], nonce)), nonce, 1);
    expect(results[0]!.stdout).toBe("@@deadbeef:0:end\n");
  });
});
