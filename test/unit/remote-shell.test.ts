/**
 * The remote shell (src/transport/remote-shell.sh) on this machine, without SSH: what it does when
 * its connection goes away. Read mode only: the lock lives in /run/pgprov, a host's directory.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BOOTSTRAP, describeHolder, parseHolder, REMOTE_SHELL } from "../../src/transport/ssh.js";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`gave up after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("the remote shell", () => {
  it("issue 8 item 13: ends the script it runs, and everything the script started, when its stdin closes", async () => {
    const shell = spawn("sh", ["-c", BOOTSTRAP, "pgprov-shell", "read", "client", "machine", "1", "2025-01-01T00:00:00Z", "run"], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    shell.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    const closed = new Promise<number | null>((resolve) => shell.on("close", resolve));
    const send = (script: string, id: string) => shell.stdin.write(`${Buffer.byteLength(script)} ${id} 0 a test\n${script}`);
    shell.stdin.write(`${Buffer.byteLength(REMOTE_SHELL)}\n${REMOTE_SHELL}`);

    send("echo one; exit 3", "first");
    await until("the first script's end marker", () => stdout.includes("\n@@first 3\n"));
    // A script that starts a process group of its own (as coreutils' timeout does) and waits.
    send("timeout 300 sleep 300 & echo $!; wait", "second");
    await until("the second script to start", () => /^\d+$/m.test(stdout.split("@@first 3")[1] ?? ""));
    const pid = Number(/^(\d+)$/m.exec(stdout.split("@@first 3")[1]!)![1]);
    expect(alive(pid)).toBe(true);

    shell.stdin.end();
    await until("the script's processes to end", () => !alive(pid));
    expect(await closed).toBe(129);
    expect(stdout).not.toContain("@@second");
  });

  it("issue 8 item 13: lets a script sent with a grace finish (a package install), then ends", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pgprov-remote-shell-"));
    const shell = spawn("sh", ["-c", BOOTSTRAP, "pgprov-shell", "read", "c", "m", "1", "s", "r"], { stdio: ["pipe", "pipe", "pipe"] });
    const closed = new Promise<number | null>((resolve) => shell.on("close", resolve));
    shell.stdin.write(`${Buffer.byteLength(REMOTE_SHELL)}\n${REMOTE_SHELL}`);
    const script = `echo started > ${dir}/started; sleep 2; echo done > ${dir}/done`;
    shell.stdin.write(`${Buffer.byteLength(script)} install 30 a package install\n${script}`);
    await until("the script to start", () => existsSync(join(dir, "started")));
    shell.stdin.end();
    expect(await closed).toBe(129);
    expect(readFileSync(join(dir, "done"), "utf8")).toBe("done\n");
  });

  it("issue 8 item 13: does not start a script whose connection is already gone", async () => {
    const shell = spawn("sh", ["-c", BOOTSTRAP, "pgprov-shell", "read", "c", "m", "1", "s", "r"], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    shell.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    shell.stdin.write(`${Buffer.byteLength(REMOTE_SHELL)}\n${REMOTE_SHELL}`);
    shell.stdin.end("5 only 0 echo\necho!");
    await new Promise((resolve) => shell.on("close", resolve));
    expect(stdout).toMatch(/^(|echo!\n\n@@only 0\n)$/);
  });
});

describe("who holds a host", () => {
  const report = [
    "@@pgprov-held lock=held",
    "@@pgprov-held client=ops-laptop",
    "@@pgprov-held machine=0123456789abcdef0123456789abcdef",
    "@@pgprov-held pid=4242",
    "@@pgprov-held started=2025-03-01T10:00:00Z",
    "@@pgprov-held run=abcdef0123456789",
    "@@pgprov-held loop=77",
    "@@pgprov-held session=80",
    "@@pgprov-held grace=0",
    '@@pgprov-held doing=the changes of task "clone the primary"',
    "@@pgprov-held loop_alive=yes",
    "@@pgprov-held process=81     42 /usr/lib/postgresql/15/bin/pg_basebackup -h 10.0.0.11 -D /var/lib/postgresql/15/main.pgprov-clone",
  ].join("\n");

  it("issue 8 item 13: names the run, its machine, what it does on the host and its processes", () => {
    const held = parseHolder(`some noise\n${report}\n`)!;
    expect(held).toMatchObject({ client: "ops-laptop", pid: 4242, run: "abcdef0123456789", shellAlive: true });
    const line = describeHolder(held, { machine: "another" });
    expect(line).toBe(
      'pgprov PID 4242 on ops-laptop (ops-laptop, run started 2025-03-01T10:00:00Z; pgprov cannot tell from here whether it still runs), now running the changes of task "clone the primary" ' +
        "(on the host: PID 81 for 42 s: /usr/lib/postgresql/15/bin/pg_basebackup -h 10.0.0.11 -D /var/lib/postgresql/15/main.pgprov-clone)",
    );
    // From the machine it ran on, pgprov can tell a run that is gone.
    expect(describeHolder({ ...held, pid: 2 ** 22 + 1 }, { machine: held.machine! })).toContain("on this machine (ops-laptop, run started 2025-03-01T10:00:00Z; that process is gone)");
  });

  it("issue 8 item 13: says when the host lets the work of a run that is gone finish", () => {
    const held = parseHolder(report.replace("grace=0", "grace=900") + "\n@@pgprov-held finishing=yes\n")!;
    expect(held).toMatchObject({ grace: 900, finishing: true });
    expect(describeHolder(held, { machine: "another" })).toContain('now running the changes of task "clone the primary", which the host lets finish (at most 900 s)');
  });

  it("is nothing when the shell ended for another reason", () => {
    expect(parseHolder("sudo: a password is required\n")).toBeUndefined();
    expect(describeHolder(parseHolder("@@pgprov-held lock=held\n")!)).toMatch(/left no record/);
  });
});
