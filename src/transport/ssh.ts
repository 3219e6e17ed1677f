/**
 * One SSH connection per host for a whole run. Every remote command is a shell script sent on
 * stdin (never in the remote process's arguments, where `ps` would show it), run without a PTY
 * (so stderr stays apart), through `sudo -n` when the user is not root, and with a bound on time.
 */
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { resolve } from "node:path";
import { type Config, NodeSSH } from "node-ssh";
import type { ClientChannel } from "ssh2";
import { PgprovError } from "../errors.js";
import type { Host, SshSettings } from "../inventory/inventory.js";
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
  constructor(readonly host: Host, readonly reason: ConnectFailure, readonly detail: string) {
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
  /** Exit code; -1 when the remote process was killed by a signal. */
  code: number;
  signal?: string;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface OpenOptions {
  knownHosts: KnownHostsFile;
  /** Like OpenSSH's StrictHostKeyChecking=accept-new: record an unknown key; a changed key is still refused. */
  acceptNewHostKeys?: boolean;
}

const DEFAULT_RUN_TIMEOUT_MS = 120_000;
/** OpenSSH allows 10 sessions per connection (MaxSessions); stay below it. */
const MAX_PARALLEL_CHANNELS = 8;

export class HostConnection {
  /** Remote commands run on this connection: reported by the engine to show what a run cost. */
  commands = 0;
  /** Set when this connection recorded the host's key in known_hosts. */
  learnedHostKey?: string;
  private channels = 0;
  private readonly waiting: (() => void)[] = [];

  private constructor(readonly host: Host, private readonly ssh: NodeSSH, private readonly sudo: boolean) {}

  static async open(host: Host, settings: SshSettings, options: OpenOptions): Promise<HostConnection> {
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
    const connection = new HostConnection(host, ssh, settings.user !== "root");
    if (verdict?.kind === "unknown" && presented) {
      options.knownHosts.add(name, presented);
      connection.learnedHostKey = `${keyTypeOf(presented)} ${fingerprint(presented)}`;
    }
    return connection;
  }

  /**
   * Runs a shell script on the host. Resolves with the exit code whatever it is: deciding what a
   * non-zero exit means is the caller's job. Rejects only when the command could not complete.
   */
  async run(script: string, options: RunOptions = {}): Promise<RunResult> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS;
    await this.acquireChannel();
    const started = performance.now();
    this.commands++;
    try {
      const channel = await this.exec(this.sudo ? "sudo -n sh -c 'eval \"$(cat)\"'" : "sh -c 'eval \"$(cat)\"'");
      const result = await collect(channel, script, timeoutMs, () =>
        new RemoteError(`host ${this.host.name}: timed out after ${timeoutMs / 1000} s waiting for ${options.purpose ?? "a remote command"}`),
      );
      const ms = performance.now() - started;
      if (this.sudo && result.code === 1 && /sudo: (a terminal|a password) is required/.test(result.stderr)) {
        throw new RemoteError(
          `host ${this.host.name}: sudo asks for a password; pgprov needs passwordless sudo for this user (a sudoers line with NOPASSWD)`,
        );
      }
      return { ...result, ms };
    } finally {
      this.releaseChannel();
    }
  }

  close(): void {
    this.ssh.dispose();
  }

  private exec(command: string): Promise<ClientChannel> {
    const client = this.ssh.connection;
    if (!client) return Promise.reject(new RemoteError(`host ${this.host.name}: the SSH connection is closed`));
    return new Promise((resolvePromise, reject) => {
      client.exec(command, (err, channel) => {
        if (err) reject(new RemoteError(`host ${this.host.name}: cannot start a remote command: ${err.message}`));
        else resolvePromise(channel);
      });
    });
  }

  private async acquireChannel(): Promise<void> {
    while (this.channels >= MAX_PARALLEL_CHANNELS) await new Promise<void>((r) => this.waiting.push(r));
    this.channels++;
  }

  private releaseChannel(): void {
    this.channels--;
    this.waiting.shift()?.();
  }
}

function collect(
  channel: ClientChannel,
  script: string,
  timeoutMs: number,
  onTimeout: () => Error,
): Promise<Omit<RunResult, "ms">> {
  return new Promise((resolvePromise, reject) => {
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let code: number | null = null;
    let signal: string | undefined;
    const timer = setTimeout(() => {
      channel.close();
      reject(onTimeout());
    }, timeoutMs);
    channel.on("data", (d: Buffer) => stdout.push(d));
    channel.stderr.on("data", (d: Buffer) => stderr.push(d));
    channel.on("exit", (c: number | null, sig?: string) => {
      code = c;
      signal = sig ?? undefined;
    });
    channel.on("close", () => {
      clearTimeout(timer);
      resolvePromise({
        code: code ?? -1,
        ...(signal ? { signal } : {}),
        stdout: Buffer.concat(stdout).toString("utf8"),
        stderr: Buffer.concat(stderr).toString("utf8"),
      });
    });
    channel.end(script);
  });
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
  host: Host,
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
