/**
 * One SSH connection per host for a whole run, and on it one remote shell that runs every script
 * pgprov sends. A script travels on that shell's stdin (never in a remote process's arguments,
 * where `ps` would show it), without a PTY (so stderr stays apart), as root through one `sudo -n`
 * when the user is not root, and with a bound on time. Keeping the shell open means a round trip
 * costs the network and the script itself, not a new SSH session, PAM and sudo each time.
 *
 * Remote work ends with the connection that started it (see remote-shell.sh): when pgprov ends,
 * is killed or interrupted, each host ends the script it was running. A lost connection fails its
 * host with a message, never the process. A run that changes hosts holds each host's lock, and
 * the host records who holds it, so the next run can say exactly what holds a host, and end the
 * remote work of a run from this machine that is gone.
 */
import { lastLines } from "../common/text.js";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import type { NodeSSH } from "node-ssh";
import type { ClientChannel } from "ssh2";
import { PgprovError } from "../common/errors.js";
import type { SshHost } from "./target.js";
import { PACKAGE_ROOT } from "../common/paths.js";
import { describePath } from "../sshconfig/connection.js";
import { type ConnectFailure, EndpointError, type EndpointOptions, type JumpHosts, KEEPALIVE_COUNT_MAX, KEEPALIVE_INTERVAL_MS, openEndpoint, type Opened } from "./endpoint.js";

export type { ConnectFailure };
export { preferKnownTypes } from "./endpoint.js";

export class ConnectError extends PgprovError {
  override readonly name = "ConnectError";
  constructor(
    readonly host: SshHost,
    readonly reason: ConnectFailure,
    readonly detail: string,
    /** The jump host on the way that could not be reached (`detail` is its failure, the same for every host behind it). */
    readonly jumpHost?: string,
  ) {
    super(`host ${host.name} (${host.address}): ${detail}`);
  }
}

/** A remote command failed to run to completion (timeout, lost connection), as opposed to exiting non-zero. */
export class RemoteError extends PgprovError {
  override readonly name = "RemoteError";
}

export interface RunOptions {
  /** Bound on the whole command; every wait in pgprov has one. */
  timeoutMs?: number;
  /** What the command is for, for the message when the bound is hit. */
  purpose?: string;
  /**
   * When the connection goes away mid-script, the host lets the script finish for up to this
   * long before ending it (a package install: dpkg stopped halfway leaves more to repair).
   */
  graceSeconds?: number;
  /** The script's stderr as it comes, while it runs (a long command's progress). */
  onStderr?: (text: string) => void;
}

export interface RunResult {
  /** The script's exit code (128 + N when a signal N ended it). */
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface OpenOptions extends EndpointOptions {
  /** The run's jump hosts, shared by every host behind them. */
  jumps: JumpHosts;
  /**
   * Hold the host's pgprov lock for the whole run: a second pgprov run that would change the
   * same host is refused instead of acting alongside this one. Reads (ping, status) need none.
   */
  exclusive?: boolean;
  /** Bound on waiting for another pgprov run that holds the host (default 120 s). */
  lockWaitMs?: number;
  /** Progress while waiting for a host (default: a line on stderr). */
  log?: (line: string) => void;
}

const DEFAULT_RUN_TIMEOUT_MS = 120_000;
const DEFAULT_LOCK_WAIT_MS = 120_000;
/** Between two attempts to take a host's lock, and between two progress lines while waiting. */
const LOCK_RETRY_MS = 2_000;
const LOCK_PROGRESS_MS = 10_000;

/** This pgprov process, as the hosts it holds record it. */
const SELF = {
  client: hostname().replace(/[^A-Za-z0-9._-]/g, "_") || "unknown",
  machine: machineId(),
  pid: process.pid,
  started: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
  run: randomBytes(8).toString("hex"),
};

/** The open connections, so an interruption can end the remote work of every one. */
const live = new Set<HostConnection>();
/** Set once pgprov is interrupted (SIGINT, SIGTERM): no script starts any more. */
let interruption: string | undefined;

/**
 * Ctrl-C or SIGTERM: no new script starts on any host; the scripts running are ended on their
 * hosts (TERM, then KILL: see remote-shell.sh) and every host's lock released. Resolves once each
 * host has confirmed it, or after `timeoutMs`, with the names of the hosts that did not confirm.
 */
export async function interruptAll(signal: string, timeoutMs = 20_000): Promise<string[]> {
  interruption ??= signal;
  const unconfirmed = await Promise.all([...live].map(async (c) => ((await c.interrupt(timeoutMs)) ? [] : [c.host.name])));
  return unconfirmed.flat();
}

/** The signal that interrupted this run, if one did. */
export function interruptedBy(): string | undefined {
  return interruption;
}

export class HostConnection {
  /** Scripts run on this connection (round trips): reported by the engine to show what a run cost. */
  commands = 0;
  /** Set when this connection recorded the host's key in known_hosts. */
  learnedHostKey?: string;
  /** The key or agent the host accepted, for `pgprov ping`. */
  readonly identity: string;
  private shell?: Promise<RemoteShell>;
  /** Scripts run one after another: the remote shell runs one at a time. */
  private queue: Promise<unknown> = Promise.resolve();
  /** Why the SSH connection was lost, once it was. */
  private lost?: string;
  private closing = false;
  /** A shell of this connection was given up (timed out) while it may still hold the lock. */
  private abandonedShell = false;
  /** How the next shell starts: with the lock, or ending the remote work of a run that is gone first. */
  private nextMode?: string;

  private readonly ssh: NodeSSH;

  private constructor(
    readonly host: SshHost,
    opened: Opened,
    /** Lets go of the jump hosts this connection goes through. */
    private readonly release: () => void,
    private readonly sudo: boolean,
    private readonly exclusive: boolean,
    private readonly lockWaitMs: number,
    private readonly log: (line: string) => void,
  ) {
    this.ssh = opened.ssh;
    this.identity = opened.identity;
    if (opened.learnedHostKey) this.learnedHostKey = opened.learnedHostKey;
    const client = opened.ssh.connection!;
    // Without these, a lost connection (a keepalive timeout, a reset) is an unhandled 'error'
    // event, which ends the whole process; it must fail this host only.
    client.on("error", (e: Error & { level?: string }) => this.connectionLost(describeLoss(e, host)));
    client.on("close", () => this.connectionLost("the connection closed"));
    live.add(this);
  }

  /** Connects to `host` the way its resolved connection says: directly, or through its jump hosts. */
  static async open(host: SshHost, options: OpenOptions): Promise<HostConnection> {
    const c = host.connection;
    let release = () => {};
    let opened: Opened;
    try {
      let sock;
      if (c.via.length > 0) ({ sock, release } = await options.jumps.tunnel(c.via, c));
      opened = await openEndpoint(c, sock, options);
    } catch (e) {
      release();
      if (e instanceof EndpointError) throw new ConnectError(host, e.reason, e.detail, e.jumpHost);
      throw e;
    }
    return new HostConnection(
      host,
      opened,
      release,
      c.user.value !== "root",
      options.exclusive ?? false,
      options.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS,
      options.log ?? ((line) => process.stderr.write(`pgprov: ${line}\n`)),
    );
  }

  /** `direct`, or `via root@bastion:22`, for `pgprov ping` and messages. */
  get path(): string {
    return describePath(this.host.connection);
  }

  /**
   * Runs a shell script on the host. Resolves with the exit code whatever it is: deciding what a
   * non-zero exit means is the caller's job. Rejects only when the script could not complete.
   */
  run(script: string, options: RunOptions = {}): Promise<RunResult> {
    const result = this.queue.then(() => this.runNow(script, options));
    this.queue = result.catch(() => {});
    return result;
  }

  /**
   * Starts the remote shell now (its channel, its program, the host's lock), while the caller
   * still prepares its first script, which then need not wait for it. What starting it finds (a
   * held lock, a lost connection) is met by the first run as without this.
   */
  startShellEarly(): void {
    if (this.shell || this.lost || interruption) return;
    this.shell = this.startShell();
    this.shell.catch(() => {});
  }

  /** A stream to a Unix socket on the host (sshd connects to it as the SSH user). */
  openUnixSocket(path: string, timeoutMs = 10_000): Promise<ClientChannel> {
    const client = this.ssh.connection;
    if (this.lost) return Promise.reject(this.lostError(`a connection to ${path}`));
    if (!client) return Promise.reject(new RemoteError(`host ${this.host.name}: the SSH connection is closed`));
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => reject(new RemoteError(`host ${this.host.name}: timed out after ${timeoutMs / 1000} s opening ${path}`)), timeoutMs);
      try {
        client.openssh_forwardOutStreamLocal(path, (err, channel) => {
          clearTimeout(timer);
          if (err) reject(this.lost ? this.lostError(`a connection to ${path}`) : new RemoteError(`host ${this.host.name}: cannot open ${path}: ${err.message}`));
          else {
            // Its user (the pg client) reports errors its own way; one after it let go must not crash pgprov.
            channel.on("error", () => {});
            resolvePromise(channel);
          }
        });
      } catch (e) {
        clearTimeout(timer);
        reject(this.lost ? this.lostError(`a connection to ${path}`) : new RemoteError(`host ${this.host.name}: cannot open ${path}: ${(e as Error).message}`));
      }
    });
  }

  close(): void {
    this.closing = true;
    live.delete(this);
    void this.shell?.then((s) => s.close()).catch(() => {});
    this.ssh.dispose();
    this.release();
  }

  /**
   * Ends the remote work of this connection: the shell's stdin is closed, so the host ends the
   * script running (see remote-shell.sh) and the shell, which releases the lock. True once the
   * host confirmed it (the channel closed) within `timeoutMs`.
   */
  async interrupt(timeoutMs: number): Promise<boolean> {
    const shell = await this.shell?.catch(() => undefined);
    const confirmed = shell ? await shell.end(timeoutMs) : true;
    this.close();
    return confirmed;
  }

  private async runNow(script: string, options: RunOptions): Promise<RunResult> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS;
    const purpose = options.purpose ?? "a remote command";
    const waiting: LockWait = { since: Date.now(), lastLog: Date.now() };
    for (;;) {
      if (interruption) throw new RemoteError(`host ${this.host.name}: not started (${purpose}): pgprov was interrupted by ${interruption}`);
      if (this.lost) throw this.lostError(purpose);
      const shell = await (this.shell ??= this.startShell());
      this.commands++;
      const started = performance.now();
      try {
        const result = await shell.run(script, timeoutMs, purpose, options.graceSeconds ?? 0, options.onStderr);
        return { ...result, ms: performance.now() - started };
      } catch (e) {
        this.shell = undefined; // a shell that timed out or died is not reused
        if (e instanceof ShellTimeout) {
          this.abandonedShell = true;
          throw new RemoteError(`host ${this.host.name}: timed out after ${timeoutMs / 1000} s waiting for ${purpose}`);
        }
        if (!(e instanceof ShellClosed)) throw e;
        if (interruption) throw new RemoteError(`host ${this.host.name}: interrupted by ${interruption} while running ${purpose}; the host ended it`);
        if (this.lost) throw this.lostError(purpose);
        const held = parseHolder(e.stderr);
        if (held) {
          this.commands--; // nothing ran
          await this.waitForHolder(held, waiting);
          continue;
        }
        const lockDir = /@@pgprov-lock-dir (.*)/.exec(e.stderr);
        if (lockDir) {
          throw new RemoteError(
            `host ${this.host.name}: ${LOCK_DIR} is not a directory owned by root with mode 0700 (found: ${lockDir[1]!.trim()}); pgprov keeps its lock there and trusts nothing else there. Remove it (it holds nothing pgprov needs) and rerun`,
          );
        }
        if (this.sudo && /sudo: (a terminal|a password) is required/.test(e.stderr)) {
          throw new RemoteError(
            `host ${this.host.name}: sudo asks for a password; pgprov needs passwordless sudo for this user (a sudoers line with NOPASSWD)`,
          );
        }
        throw new RemoteError(`host ${this.host.name}: the remote shell ended while running ${purpose}${e.stderr.trim() ? `: ${lastLines(e.stderr.trim(), 3).join(" / ")}` : ""}`);
      }
    }
  }

  /**
   * Another run holds the host. When it is a run of this machine that is gone (or this
   * connection's own shell that timed out), its remote work is ended and the lock taken; otherwise
   * pgprov waits, saying what holds the host, up to the bound.
   */
  private async waitForHolder(held: Holder, waiting: LockWait): Promise<void> {
    const ours = held.run === SELF.run && this.abandonedShell;
    const gone = held.run !== undefined && held.run !== SELF.run && held.machine === SELF.machine && !pgprovRuns(held.pid);
    if ((ours || gone) && waiting.evicted !== held.run) {
      waiting.evicted = held.run;
      this.nextMode = `evict:${held.run}`;
      if (gone) this.log(`host ${this.host.name}: ending the remote work left by ${describeHolder(held)}`);
      return;
    }
    const waited = Date.now() - waiting.since;
    // Work the host lets finish (a package install) is waited for as long as it may take.
    const bound = Math.max(this.lockWaitMs, held.grace > 0 ? (held.grace + 60) * 1000 : 0);
    if (waited >= bound) {
      throw new RemoteError(
        `host ${this.host.name}: another pgprov run holds this host: ${describeHolder(held)}; gave up after waiting ${Math.round(waited / 1000)} s. ` +
          `Let it finish, or end it where it runs, then rerun`,
      );
    }
    if (Date.now() - waiting.lastLog >= LOCK_PROGRESS_MS || waited === 0 || waiting.lastLog === waiting.since) {
      waiting.lastLog = Date.now();
      this.log(`host ${this.host.name}: waiting for ${describeHolder(held)}: ${Math.round(waited / 1000)} s of at most ${Math.round(bound / 1000)} s`);
    }
    await new Promise((r) => setTimeout(r, LOCK_RETRY_MS));
  }

  private lostError(purpose: string): RemoteError {
    const via = this.host.connection.via.length > 0 ? ` (${this.path})` : "";
    return new RemoteError(
      `host ${this.host.name}: the SSH connection to ${this.host.address}${via} was lost while running ${purpose} (${this.lost}); ` +
        `what it was doing there ends when the host notices, or the next run ends it`,
    );
  }

  private connectionLost(why: string): void {
    if (!this.closing) this.lost ??= why;
  }

  private async startShell(): Promise<RemoteShell> {
    const client = this.ssh.connection;
    if (this.lost) throw this.lostError("starting a remote shell");
    if (!client) throw new RemoteError(`host ${this.host.name}: the SSH connection is closed`);
    const mode = this.exclusive ? (this.nextMode ?? "lock") : "read";
    this.nextMode = undefined;
    // Who runs pgprov travels in the arguments: nothing secret, and `ps` on the host shows it.
    const args = [mode, SELF.client, SELF.machine, SELF.pid, SELF.started, SELF.run].join(" ");
    const command = `${this.sudo ? "sudo -n " : ""}sh -c '${BOOTSTRAP}' pgprov-shell ${args}`;
    const channel = await new Promise<ClientChannel>((resolvePromise, reject) => {
      const failed = (message: string) => reject(this.lost ? this.lostError("starting a remote shell") : new RemoteError(`host ${this.host.name}: cannot start a remote shell: ${message}`));
      try {
        client.exec(command, (err, ch) => (err ? failed(err.message) : resolvePromise(ch)));
      } catch (e) {
        failed((e as Error).message);
      }
    });
    const shell = new RemoteShell(channel);
    shell.send(`${Buffer.byteLength(REMOTE_SHELL)}\n${REMOTE_SHELL}`);
    return shell;
  }
}

interface LockWait {
  since: number;
  lastLog: number;
  /** The run whose remote work this connection ended once already. */
  evicted?: string;
}

/** What a host records about the pgprov run that holds it (remote-shell.sh's __pg_report). */
export interface Holder {
  client?: string;
  machine?: string;
  pid?: number;
  started?: string;
  run?: string;
  doing?: string;
  /** Seconds the host lets the script it runs finish once its connection is gone. */
  grace: number;
  /** Its connection is gone, and the host lets its script finish (see grace). */
  finishing: boolean;
  /** Whether the remote shell that holds the lock still runs. */
  shellAlive: boolean;
  /** The processes of the script it runs: "PID SECONDS ARGS". */
  processes: string[];
}

export function parseHolder(stderr: string): Holder | undefined {
  if (!stderr.includes("@@pgprov-held")) return undefined;
  const lines = stderr.split("\n").filter((l) => l.startsWith("@@pgprov-held")).map((l) => l.slice("@@pgprov-held".length).trim());
  const holder: Holder = { grace: 0, finishing: false, shellAlive: false, processes: [] };
  for (const line of lines) {
    const eq = line.indexOf("=");
    if (eq < 0) continue;
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1).trim();
    if (key === "client" || key === "machine" || key === "started" || key === "run" || key === "doing") holder[key] = value;
    else if (key === "pid" && /^\d+$/.test(value)) holder.pid = Number(value);
    else if (key === "grace" && /^\d+$/.test(value)) holder.grace = Number(value);
    else if (key === "finishing") holder.finishing = value === "yes";
    else if (key === "loop_alive") holder.shellAlive = value === "yes";
    else if (key === "process" && holder.processes.length < 5) holder.processes.push(value);
  }
  return holder;
}

/** One line a person reads: which run, from where, whether it still runs, what it does on the host. */
export function describeHolder(h: Holder, self: { machine: string } = SELF): string {
  if (h.pid === undefined) return "a process that left no record of itself (an older pgprov?)";
  const where = h.machine === self.machine ? "this machine" : (h.client ?? "another machine");
  const state = h.machine === self.machine ? (pgprovRuns(h.pid) ? "it still runs" : "that process is gone") : "pgprov cannot tell from here whether it still runs";
  const finishing = h.finishing ? `, which the host lets finish (at most ${h.grace} s)` : "";
  const doing = h.doing ? `, now running ${h.doing}${finishing}` : h.shellAlive ? ", between two steps" : "";
  const processes = h.processes.length
    ? ` (on the host: ${h.processes.map((p) => {
        const m = /^(\d+)\s+(\d+)\s+(.*)$/.exec(p);
        return m ? `PID ${m[1]} for ${m[2]} s: ${m[3]!.slice(0, 100)}` : p.slice(0, 100);
      }).join("; ")})`
    : "";
  return `pgprov PID ${h.pid} on ${where} (${h.client ?? "?"}, run started ${h.started ?? "?"}; ${state})${doing}${processes}`;
}

/** The remote end: remote-shell.sh, sent on stdin first; the command line stays short and fixed. */
export const REMOTE_SHELL = readFileSync(join(PACKAGE_ROOT, "src", "transport", "remote-shell.sh"), "utf8");
export const BOOTSTRAP = `IFS= read -r n && eval "$(head -c "$n")"`;
/** Root's alone (mode 0700): see remote-shell.sh. */
const LOCK_DIR = "/run/pgprov";

class ShellTimeout extends Error {}
class ShellClosed extends Error {
  constructor(readonly stderr: string) {
    super("the remote shell closed");
  }
}

/** The control-machine side of remote-shell.sh: one script at a time. */
class RemoteShell {
  private stdout = "";
  private stderr = "";
  private closed = false;
  private ranScript = false;
  /** The running script's listener to its stderr, if it has one. */
  private onStderr?: (text: string) => void;
  /** Whoever waits for output or the close: a script's run, and an interruption's end(). */
  private readonly waiters = new Set<() => void>();

  constructor(private readonly channel: ClientChannel) {
    // Decoded as streams: a character split between two packets stays one character.
    channel.setEncoding("utf8");
    channel.stderr.setEncoding("utf8");
    channel.on("data", (d: string) => {
      this.stdout += d;
      this.wake();
    });
    channel.stderr.on("data", (d: string) => {
      this.stderr += d;
      this.onStderr?.(d);
      this.wake();
    });
    channel.on("close", () => {
      this.closed = true;
      this.wake();
    });
    // A write to a channel the connection's loss closed: the close above says what matters.
    channel.on("error", () => {});
    channel.stderr.on("error", () => {});
  }

  send(text: string | Buffer): void {
    if (!this.closed) this.channel.write(text);
  }

  /** `what` is recorded on the host while the script runs, for a run that finds the host held. */
  async run(script: string, timeoutMs: number, what: string, graceSeconds: number, onStderr?: (text: string) => void): Promise<Omit<RunResult, "ms">> {
    this.onStderr = onStderr;
    try {
      return await this.runScript(script, timeoutMs, what, graceSeconds);
    } finally {
      this.onStderr = undefined;
    }
  }

  private async runScript(script: string, timeoutMs: number, what: string, graceSeconds: number): Promise<Omit<RunResult, "ms">> {
    const id = randomBytes(8).toString("hex");
    const body = Buffer.from(script, "utf8");
    this.stdout = "";
    // What the shell said before its first script is kept: started early (startShellEarly), it
    // may already have refused (a held lock, sudo wanting a password) and closed, and that is
    // what the caller reads to wait for the holder or to say why.
    if (this.ranScript) this.stderr = "";
    this.ranScript = true;
    this.send(`${body.length} ${id} ${Math.max(0, Math.round(graceSeconds))} ${what.replace(/[\x00-\x1f\x7f]+/g, " ").slice(0, 200)}\n`);
    this.send(body);
    const outEnd = new RegExp(`\n@@${id} (-?\\d+)\n`);
    const errEnd = `\n@@${id}\n`;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const out = outEnd.exec(this.stdout);
      const errAt = this.stderr.indexOf(errEnd);
      if (out && errAt >= 0) {
        return { code: Number(out[1]), stdout: this.stdout.slice(0, out.index), stderr: this.stderr.slice(0, errAt) };
      }
      if (this.closed) throw new ShellClosed(this.stderr);
      const left = deadline - Date.now();
      if (left <= 0) {
        this.close();
        throw new ShellTimeout();
      }
      await this.until(left);
    }
  }

  /**
   * Closes the shell's stdin: the host ends the script running, then the shell (releasing the
   * lock), and the channel closes. True when it closed within `timeoutMs`.
   */
  async end(timeoutMs: number): Promise<boolean> {
    if (this.closed) return true;
    this.channel.end();
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) await this.until(deadline - Date.now());
    return this.closed;
  }

  close(): void {
    this.closed = true;
    this.channel.close();
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  /** Resolves at the next output or close, or after `ms`. */
  private until(ms: number): Promise<void> {
    return new Promise<void>((resolvePromise) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolvePromise();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
    });
  }
}

/** What ended a connection, for the message of the host's failure. */
function describeLoss(e: Error & { level?: string; code?: string }, host: SshHost): string {
  if (e.level === "client-timeout") {
    const c = host.connection;
    const silentMs = c.serverAliveInterval.value > 0 ? c.serverAliveInterval.value * 1000 * c.serverAliveCountMax.value : KEEPALIVE_INTERVAL_MS * KEEPALIVE_COUNT_MAX;
    return `no answer from ${host.address} for ${silentMs / 1000} s`;
  }
  return e.code ? `${e.code}: ${e.message}` : e.message;
}

/** Whether process `pid` of this machine is a pgprov that still runs. */
function pgprovRuns(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    // A PID used again since by something else is not that run.
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("pgprov");
  } catch {
    return true; // no /proc here: it runs, as far as pgprov can tell
  }
}

/** This machine, told apart from others with the same host name. */
function machineId(): string {
  for (const file of ["/etc/machine-id", "/var/lib/dbus/machine-id"]) {
    try {
      const id = readFileSync(file, "utf8").trim();
      if (/^[0-9a-f]{32}$/.test(id)) return id;
    } catch {
      // next
    }
  }
  return hostname().replace(/[^A-Za-z0-9._-]/g, "_") || "unknown";
}

