import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildBatch, newNonce, parseBatch, TIMED_OUT } from "../../src/engine/batch.js";

/** Runs a batch with the local shell, the way a host runs it: the script on stdin. */
function runLocally(script: string, env: NodeJS.ProcessEnv = process.env): { stdout: string; stderr: string } {
  const r = spawnSync("sh", ["-c", 'eval "$(cat)"'], { input: script, encoding: "utf8", env });
  return { stdout: r.stdout, stderr: r.stderr };
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
      { script: "cat <<'EOF'\nheredoc kept\nEOF\necho done >&2", timeoutSeconds: 5 },
    ];
    const results = parseBatch(runLocally(buildBatch(sections, nonce)), nonce, 2);
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(results[0]).toMatchObject({ ran: true, code: TIMED_OUT, stdout: "" });
    expect(results[1]).toEqual({ ran: true, code: 0, stdout: "heredoc kept\n", stderr: "done\n" });
  });

  it("issue 8 item 10: writes no section to a file, so a killed run leaves no script (or secret) on the host", () => {
    const nonce = newNonce();
    // mktemp and most tools honour TMPDIR: an empty one shows whether anything was written.
    const tmp = mkdtempSync(join(tmpdir(), "pgprov-batch-"));
    const sections = [
      { script: "echo secret-in-a-timed-section; ls -A \"$TMPDIR\"; [ ! -f \"$0\" ] || echo \"read from the file $0\"", timeoutSeconds: 5, stopOnFailure: true },
      { script: "ls -A \"$TMPDIR\"; cat <&3 2>/dev/null || echo fd 3 closed", timeoutSeconds: 5 },
    ];
    const results = parseBatch(runLocally(buildBatch(sections, nonce), { ...process.env, TMPDIR: tmp }), nonce, 2);
    expect(results[0]).toEqual({ ran: true, code: 0, stdout: "secret-in-a-timed-section\n", stderr: "" });
    expect(results[1]).toMatchObject({ ran: true, code: 0, stdout: "fd 3 closed\n" });
    expect(readdirSync(tmp)).toEqual([]);
  });

  it("issue 8 item 13: a batch ended by TERM, as the host ends a dead run's script, leaves no file behind", async () => {
    const nonce = newNonce();
    const tmp = mkdtempSync(join(tmpdir(), "pgprov-batch-term-"));
    const { spawn } = await import("node:child_process");
    // In a session of its own, as the host's remote shell runs each script.
    const shell = spawn("sh", ["-c", 'eval "$(cat)"'], { stdio: ["pipe", "pipe", "ignore"], detached: true, env: { ...process.env, TMPDIR: tmp } });
    let stdout = "";
    shell.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    shell.stdin.end(buildBatch([{ script: "echo started; sleep 30", timeoutSeconds: 60 }], nonce));
    while (!stdout.includes("started")) await new Promise((r) => setTimeout(r, 20));
    // As the host's remote shell does: TERM to every process of the script's session.
    execFileSync("pkill", ["-TERM", "-s", String(shell.pid)]);
    await new Promise((r) => shell.on("close", r));
    expect(readdirSync(tmp)).toEqual([]);
  });

  it("is not fooled by output that looks like a marker of another batch", () => {
    const nonce = newNonce();
    const results = parseBatch(runLocally(buildBatch([{ script: "echo '@@deadbeef:0:end'" }], nonce)), nonce, 1);
    expect(results[0]!.stdout).toBe("@@deadbeef:0:end\n");
  });
});
