/**
 * Issue 9 (engine speed): a run's remote shells start as soon as their hosts are reached
 * (startShellEarly), before the first script. What a shell says when it refuses at once (another
 * run holds the host, sudo wants a password) must still reach the first run: it waits for the
 * holder, or says why. A fake SSH connection whose shell refuses as soon as it starts.
 */
import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { HostConnection } from "../../src/transport/ssh.js";

/** An ssh2 channel that writes `stderr` and closes once it has been sent the remote shell's program. */
function refusingChannel(stderr: string) {
  const channel = Object.assign(new EventEmitter(), {
    stderr: Object.assign(new EventEmitter(), { setEncoding: () => {} }),
    setEncoding: () => {},
    written: 0,
    write(_text: unknown) {
      if (channel.written++ > 0) return true;
      // The shell checks the lock (or sudo refuses) before any script comes.
      setTimeout(() => {
        channel.stderr.emit("data", stderr);
        channel.emit("close");
      }, 2);
      return true;
    },
    end: () => {},
    close: () => {},
  });
  return channel;
}

function connection(stderr: string, sudo: boolean, log: string[]): HostConnection {
  const client = Object.assign(new EventEmitter(), { exec: (_command: string, cb: (err: Error | undefined, ch: unknown) => void) => cb(undefined, refusingChannel(stderr)) });
  const opened = { ssh: { connection: client, dispose: () => {} }, identity: "test key" };
  const host = { name: "pg1", address: "10.0.0.11", connection: { via: [] } };
  type Constructor = new (...args: unknown[]) => HostConnection;
  // The private constructor, as HostConnection.open calls it once connected.
  return new (HostConnection as unknown as Constructor)(host, opened, () => {}, sudo, true, 50, (line: string) => log.push(line));
}

const HELD = ["lock=held", "client=other", "machine=elsewhere", "pid=4242", "started=2026-11-27T18:00:00Z", "run=r1"].map((l) => `@@pgprov-held ${l}\n`).join("");

describe("issue 9: a remote shell started early", () => {
  it("issue 9: a host held by another run, refused before the first script, is waited for and its holder named", async () => {
    const log: string[] = [];
    const c = connection(HELD, false, log);
    c.startShellEarly();
    await new Promise((r) => setTimeout(r, 30));
    await expect(c.run("true", { purpose: "the probes of play 1" })).rejects.toThrow(/host pg1: another pgprov run holds this host: pgprov PID 4242 on other \(other/);
    expect(log.join("\n")).toMatch(/host pg1: waiting for pgprov PID 4242/);
    c.close();
  }, 20_000); // one retry after LOCK_RETRY_MS (2 s), on a loaded machine

  it("issue 9: sudo asking for a password before the first script is said so", async () => {
    const c = connection("sudo: a password is required\n", true, []);
    c.startShellEarly();
    await new Promise((r) => setTimeout(r, 30));
    await expect(c.run("true", { purpose: "the probes of play 1" })).rejects.toThrow(/pgprov needs passwordless sudo/);
    c.close();
  });
});
