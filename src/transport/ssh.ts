/**
 * One SSH connection per host for a whole run, and on it one remote shell that runs every script
 * pgprov sends. A script travels on that shell's stdin (never in a remote process's arguments,
 * where `ps` would show it), without a PTY (so stderr stays apart), as root through one `sudo -n`
 * when the user is not root, and with a bound on time. Keeping the shell open means a round trip
 * costs the network and the script itself, not a new SSH session, PAM and sudo each time.
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { resolve } from "node:path";
import { type Config, NodeSSH } from "node-ssh";
import type { ClientChannel } from "ssh2";
import { PgprovError } from "../common/errors.js";
import type { SshHost, SshSettings } from "./target.js";
import { fingerprint, type HostKeyVerdict, keyTypeOf, KnownHostsFile, knownHostsName } from "./known-hosts.js";

export type ConnectFailure =
  | "refused"
  | "timeout"
  | "unreachable"
  | "dns"
  | "auth"
  | "host-key-unknown"
  | "host-key-changed"
  | "host-key-revoked"
  | "error";

export class ConnectError extends PgprovError {
  override readonly name = "ConnectError";
  constructor(readonly host: SshHost, readonly reason: ConnectFailure, readonly detail: string) {
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
}

export interface RunResult {
  /** The script's exit code (128 + N when a signal N ended it). */
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface OpenOptions {
  knownHosts: KnownHostsFile;
  /**
   * Hold the host's pgprov lock for the whole run: a second pgprov run that would change the
   * same host is refused instead of acting alongside this one. Reads (ping, status) need none.
   */
  exclusive?: boolean;
  /** Like OpenSSH's StrictHostKeyChecking=accept-new: record an unknown key; a changed key is still refused. */
  acceptNewHostKeys?: boolean;
}

const DEFAULT_RUN_TIMEOUT_MS = 120_000;

export class HostConnection {
  /** Scripts run on this connection (round trips): reported by the engine to show what a run cost. */
  commands = 0;
  /** Set when this connection recorded the host's key in known_hosts. */
  learnedHostKey?: string;
  private shell?: Promise<RemoteShell>;
  /** Scripts run one after another: the remote shell runs one at a time. */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly host: SshHost,
    private readonly ssh: NodeSSH,
    private readonly sudo: boolean,
    private readonly exclusive: boolean,
  ) {}

  static async open(host: SshHost, settings: SshSettings, options: OpenOptions): Promise<HostConnection> {
    const name = knownHostsName(host.address, settings.port);
    let verdict: HostKeyVerdict | undefined;
    let presented: Buffer | undefined;
    const ssh = new NodeSSH();
    const config: Config = {
      host: host.address,
      port: settings.port,
      username: settings.user,
      readyTimeout: settings.connectTimeoutMs,
      keepaliveInterval: 5_000,
      keepaliveCountMax: 3,
      ...credentials(settings),
      algorithms: { serverHostKey: preferKnownTypes(options.knownHosts.knownKeyTypes(name)) },
      hostVerifier: (key: Buffer) => {
        presented = key;
        verdict = options.knownHosts.verify(name, key);
        return verdict.kind === "known" || (verdict.kind === "unknown" && options.acceptNewHostKeys === true);
      },
    };
    try {
      await ssh.connect(config);
    } catch (e) {
      throw classifyConnectError(host, settings, e as Error & { code?: string; level?: string }, verdict, presented);
    }
    const connection = new HostConnection(host, ssh, settings.user !== "root", options.exclusive ?? false);
    if (verdict?.kind === "unknown" && presented) {
      options.knownHosts.add(name, presented);
      connection.learnedHostKey = `${keyTypeOf(presented)} ${fingerprint(presented)}`;
    }
    return connection;
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

  /** A stream to a Unix socket on the host (sshd connects to it as the SSH user). */
  openUnixSocket(path: string, timeoutMs = 10_000): Promise<ClientChannel> {
    const client = this.ssh.connection;
    if (!client) return Promise.reject(new RemoteError(`host ${this.host.name}: the SSH connection is closed`));
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => reject(new RemoteError(`host ${this.host.name}: timed out after ${timeoutMs / 1000} s opening ${path}`)), timeoutMs);
      client.openssh_forwardOutStreamLocal(path, (err, channel) => {
        clearTimeout(timer);
        if (err) reject(new RemoteError(`host ${this.host.name}: cannot open ${path}: ${err.message}`));
        else resolvePromise(channel);
      });
    });
  }

  close(): void {
    void this.shell?.then((s) => s.close()).catch(() => {});
    this.ssh.dispose();
  }

  private async runNow(script: string, options: RunOptions): Promise<RunResult> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS;
    const purpose = options.purpose ?? "a remote command";
    const shell = await (this.shell ??= this.startShell());
    this.commands++;
    const started = performance.now();
    try {
      const result = await shell.run(script, timeoutMs);
      return { ...result, ms: performance.now() - started };
    } catch (e) {
      this.shell = undefined; // a shell that timed out or died is not reused
      if (e instanceof ShellTimeout) throw new RemoteError(`host ${this.host.name}: timed out after ${timeoutMs / 1000} s waiting for ${purpose}`);
      if (e instanceof ShellClosed) {
        if (e.stderr.includes(LOCK_HELD)) {
          throw new RemoteError(`host ${this.host.name}: another pgprov run is changing this host (it holds ${LOCK_FILE}); wait for it to finish`);
        }
        if (this.sudo && /sudo: (a terminal|a password) is required/.test(e.stderr)) {
          throw new RemoteError(
            `host ${this.host.name}: sudo asks for a password; pgprov needs passwordless sudo for this user (a sudoers line with NOPASSWD)`,
          );
        }
        throw new RemoteError(`host ${this.host.name}: the remote shell ended while running ${purpose}${e.stderr.trim() ? `: ${e.stderr.trim().split("\n").slice(-3).join(" / ")}` : ""}`);
      }
      throw e;
    }
  }

  private async startShell(): Promise<RemoteShell> {
    const client = this.ssh.connection;
    if (!client) throw new RemoteError(`host ${this.host.name}: the SSH connection is closed`);
    const loop = this.exclusive ? `${TAKE_LOCK} ${SHELL_LOOP}` : SHELL_LOOP;
    const command = this.sudo ? `sudo -n sh -c '${loop}'` : `sh -c '${loop}'`;
    const channel = await new Promise<ClientChannel>((resolvePromise, reject) => {
      client.exec(command, (err, ch) => (err ? reject(new RemoteError(`host ${this.host.name}: cannot start a remote shell: ${err.message}`)) : resolvePromise(ch)));
    });
    return new RemoteShell(channel);
  }
}

/**
 * The remote end: reads "LENGTH ID" lines, then LENGTH bytes of script, runs the script in a
 * subshell with stdin closed (so it cannot eat the next script), and ends its stdout and its
 * stderr with a marker carrying ID and the exit code. Fixed text: nothing secret is in it.
 */
const SHELL_LOOP = [
  `while read -r n id; do`,
  // fd 9 is the lock (see TAKE_LOCK): closed for the scripts, so no daemon they start keeps it.
  `s=$(head -c "$n"); (eval "$s") </dev/null 9>&-; r=$?;`,
  `printf "\\n@@%s %s\\n" "$id" "$r"; printf "\\n@@%s\\n" "$id" >&2;`,
  `done`,
].join(" ");

const LOCK_FILE = "/run/lock/pgprov.lock";
const LOCK_HELD = "pgprov: the lock is held";
/** Taken by the remote shell itself, released when it ends, however it ends. */
const TAKE_LOCK = `mkdir -p /run/lock && exec 9>${LOCK_FILE} && flock -n 9 || { echo "${LOCK_HELD}" >&2; exit 75; };`;

class ShellTimeout extends Error {}
class ShellClosed extends Error {
  constructor(readonly stderr: string) {
    super("the remote shell closed");
  }
}

/** The control-machine side of SHELL_LOOP: one script at a time. */
class RemoteShell {
  private stdout = "";
  private stderr = "";
  private closed = false;
  private wake?: () => void;

  constructor(private readonly channel: ClientChannel) {
    // Decoded as streams: a character split between two packets stays one character.
    channel.setEncoding("utf8");
    channel.stderr.setEncoding("utf8");
    channel.on("data", (d: string) => {
      this.stdout += d;
      this.wake?.();
    });
    channel.stderr.on("data", (d: string) => {
      this.stderr += d;
      this.wake?.();
    });
    channel.on("close", () => {
      this.closed = true;
      this.wake?.();
    });
  }

  async run(script: string, timeoutMs: number): Promise<Omit<RunResult, "ms">> {
    const id = randomBytes(8).toString("hex");
    const body = Buffer.from(script, "utf8");
    this.stdout = "";
    this.stderr = "";
    this.channel.write(`${body.length} ${id}\n`);
    this.channel.write(body);
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
      await new Promise<void>((wake) => {
        const timer = setTimeout(wake, left);
        this.wake = () => {
          clearTimeout(timer);
          wake();
        };
      });
    }
  }

  close(): void {
    this.closed = true;
    this.channel.close();
  }
}

function credentials(settings: SshSettings): { privateKey?: string; agent?: string } {
  if (settings.privateKey) return { privateKey: readFileSync(settings.privateKey, "utf8") };
  if (process.env.SSH_AUTH_SOCK) return { agent: process.env.SSH_AUTH_SOCK };
  for (const name of ["id_ed25519", "id_ecdsa", "id_rsa"]) {
    const path = resolve(homedir(), ".ssh", name);
    if (existsSync(path)) return { privateKey: readFileSync(path, "utf8") };
  }
  return {};
}

const HOST_KEY_ALGORITHMS = [
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "rsa-sha2-512",
  "rsa-sha2-256",
  "ssh-rsa",
] as const;
type HostKeyAlgorithm = (typeof HOST_KEY_ALGORITHMS)[number];

/** Ask the server for a key type we already know for it, as OpenSSH does, so a host known only by
 * its RSA key is not mistaken for a changed host because it offers ed25519 first. */
export function preferKnownTypes(known: string[]): HostKeyAlgorithm[] {
  const isKnown = (alg: HostKeyAlgorithm) => known.includes(alg.startsWith("rsa-sha2-") ? "ssh-rsa" : alg);
  return [...HOST_KEY_ALGORITHMS.filter(isKnown), ...HOST_KEY_ALGORITHMS.filter((a) => !isKnown(a))];
}

function classifyConnectError(
  host: SshHost,
  settings: SshSettings,
  e: Error & { code?: string; level?: string },
  verdict: HostKeyVerdict | undefined,
  presented: Buffer | undefined,
): ConnectError {
  const target = `${host.address}:${settings.port}`;
  if (verdict && presented && verdict.kind !== "known") {
    const fp = `${keyTypeOf(presented)} ${fingerprint(presented)}`;
    switch (verdict.kind) {
      case "unknown":
        return new ConnectError(host, "host-key-unknown",
          `unknown host key ${fp}, not in ${settings.knownHosts}; if this is the right server, rerun with --accept-new-host-keys to record it`);
      case "changed":
        return new ConnectError(host, "host-key-changed",
          `host key mismatch: the server presented ${fp}, which differs from the key recorded in ${settings.knownHosts} (line ${verdict.lines.join(", ")}); refusing to connect. If the server was really reinstalled, remove the old line and rerun with --accept-new-host-keys`);
      case "revoked":
        return new ConnectError(host, "host-key-revoked", `host key ${fp} is marked @revoked in ${settings.knownHosts} (line ${verdict.line})`);
    }
  }
  if (e.code === "ECONNREFUSED") return new ConnectError(host, "refused", `connection refused at ${target} (is sshd running?)`);
  if (e.code === "ENOTFOUND" || e.code === "EAI_AGAIN") return new ConnectError(host, "dns", `cannot resolve ${host.address}`);
  if (e.code === "EHOSTUNREACH" || e.code === "ENETUNREACH") return new ConnectError(host, "unreachable", `no route to ${target}`);
  if (e.level === "client-timeout" || e.code === "ETIMEDOUT")
    return new ConnectError(host, "timeout", `timed out after ${settings.connectTimeoutMs / 1000} s connecting to ${target}`);
  if (e.level === "client-authentication")
    return new ConnectError(host, "auth", `authentication failed for user ${settings.user}${settings.privateKey ? ` with key ${settings.privateKey}` : ""}`);
  return new ConnectError(host, "error", `cannot connect to ${target}: ${e.message}`);
}
