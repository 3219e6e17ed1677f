/**
 * One SSH connection to one endpoint (a host, or a jump host on the way to one), as OpenSSH makes
 * it: the endpoint's user, port and keys (see identities.ts), its host key checked against the
 * known_hosts files that apply to it, and, behind jump hosts, over a channel that the last jump
 * host opens to it (ssh2's forwardOut, as `ssh -J` does with a direct-tcpip channel).
 *
 * A jump host's connection is shared by every host behind it: one connection per jump host per
 * run, opened once; when it cannot be made, every host behind it fails with the same error,
 * which names the jump host (EndpointError.jumpHost), so that it is reported once (fleet.ts).
 */
import type { Duplex } from "node:stream";
import { type Config, NodeSSH } from "node-ssh";
import { endpointKey, type Endpoint } from "../sshconfig/connection.js";
import type { AuthMethod, Identities } from "./identities.js";
import { fingerprint, type HostKeyCheck, keyTypeOf, KnownHosts, knownHostsName } from "./known-hosts.js";

export type ConnectFailure =
  | "refused"
  | "timeout"
  | "unreachable"
  | "dns"
  | "auth"
  | "host-key-unknown"
  | "host-key-changed"
  | "host-key-revoked"
  | "host-certificate"
  | "error";

/** Why an endpoint could not be reached; the caller names the host it was for. */
export class EndpointError extends Error {
  constructor(
    readonly reason: ConnectFailure,
    readonly detail: string,
    /** Set when a jump host on the way could not be reached: its name; `detail` says why. */
    readonly jumpHost?: string,
  ) {
    super(detail);
  }
}

export interface EndpointOptions {
  /** The known_hosts files of an endpoint, one instance per set of files for the whole run. */
  knownHosts: (endpoint: Endpoint) => KnownHosts;
  identities: Identities;
  /** Like OpenSSH's StrictHostKeyChecking=accept-new: record an unknown key; a changed key is still refused. */
  acceptNewHostKeys: boolean;
}

export interface Opened {
  ssh: NodeSSH;
  /** The key or agent the server accepted, for `pgprov ping`. */
  identity: string;
  /** Set when this connection recorded the endpoint's key in known_hosts. */
  learnedHostKey?: string;
}

/** pgprov always notices a silent peer: ServerAliveInterval from ssh's configuration, or this. */
export const KEEPALIVE_INTERVAL_MS = 5_000;
export const KEEPALIVE_COUNT_MAX = 3;

/** `addr:port` as messages show it. */
export function target(endpoint: Endpoint): string {
  const host = endpoint.hostname.value;
  return `${host.includes(":") ? `[${host}]` : host}:${endpoint.port.value}`;
}

/** The name its key is looked up under: HostKeyAlias as written, else `addr` or `[addr]:port`. */
export function hostKeyName(endpoint: Endpoint): string {
  return endpoint.hostKeyAlias?.value ?? knownHostsName(endpoint.hostname.value, endpoint.port.value);
}

/** Connects to `endpoint`, over `sock` when a jump host opened the way. */
export async function openEndpoint(endpoint: Endpoint, sock: Duplex | undefined, options: EndpointOptions): Promise<Opened> {
  const knownHosts = options.knownHosts(endpoint);
  const name = hostKeyName(endpoint);
  let check: HostKeyCheck | undefined;
  let presented: Buffer | undefined;
  const { methods, skipped } = options.identities.methods(endpoint);
  const queue = [...methods];
  let offered: AuthMethod | undefined;
  const user = endpoint.user.value;
  const alive = endpoint.serverAliveInterval.value > 0;
  const ssh = new NodeSSH();
  const config: Config = {
    ...(sock ? { sock } : { host: endpoint.hostname.value, port: endpoint.port.value }),
    username: user,
    readyTimeout: endpoint.connectTimeout.value * 1000,
    keepaliveInterval: alive ? endpoint.serverAliveInterval.value * 1000 : KEEPALIVE_INTERVAL_MS,
    keepaliveCountMax: alive ? endpoint.serverAliveCountMax.value : KEEPALIVE_COUNT_MAX,
    authHandler: (_left, _partial, next) => {
      offered = queue.shift();
      if (!offered) return next(false as never);
      next(offered.type === "agent" ? { type: "agent", username: user, agent: offered.socket } : { type: "publickey", username: user, key: offered.key });
    },
    algorithms: { serverHostKey: preferKnownTypes(knownHosts.knownKeyTypes(name)) },
    hostVerifier: (key: Buffer) => {
      presented = key;
      check = knownHosts.check(name, key);
      return check.kind === "known" || (check.kind === "unknown" && check.authorities.length === 0 && options.acceptNewHostKeys);
    },
  };
  try {
    await ssh.connect(config);
  } catch (e) {
    ssh.dispose();
    throw classify(endpoint, knownHosts, e as Error & { code?: string; level?: string }, check, presented, { methods, skipped });
  }
  const opened: Opened = { ssh, identity: offered ? describeMethod(offered) : "none" };
  if (check?.kind === "unknown" && presented) {
    knownHosts.add(name, presented);
    opened.learnedHostKey = `${keyTypeOf(presented)} ${fingerprint(presented)}`;
  }
  return opened;
}

function describeMethod(m: AuthMethod): string {
  return m.type === "agent" ? `agent (${m.socket})` : `key ${m.file}`;
}

/**
 * The jump hosts of a run: one connection each (per path to it), opened on first use, shared by
 * every host behind it, closed when the last of them closes.
 */
export class JumpHosts {
  private readonly opening = new Map<string, Promise<NodeSSH>>();
  /** How many connections each jump host's connection carries now. */
  private readonly users = new Map<string, number>();

  constructor(private readonly options: EndpointOptions) {}

  /**
   * A channel to `to` through `via` (the first hop connected to first), and a function that
   * lets go of the jump hosts once the connection over it is closed.
   */
  async tunnel(via: Endpoint[], to: Endpoint): Promise<{ sock: Duplex; release: () => void }> {
    const keys = via.map((_, i) => endpointKey(via.slice(0, i + 1)));
    for (const key of keys) this.users.set(key, (this.users.get(key) ?? 0) + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      for (const key of keys) this.release(key);
    };
    try {
      const last = await this.jump(via, via.length - 1);
      return { sock: await forward(last, via.at(-1)!, to), release };
    } catch (e) {
      release();
      throw e;
    }
  }

  private jump(via: Endpoint[], i: number): Promise<NodeSSH> {
    const key = endpointKey(via.slice(0, i + 1));
    let opening = this.opening.get(key);
    if (!opening) {
      const endpoint = via[i]!;
      opening = (async () => {
        try {
          // Inside the try: a hop before that cannot open a channel to this one fails as this jump host.
          const sock = i === 0 ? undefined : await forward(await this.jump(via, i - 1), via[i - 1]!, endpoint);
          const opened = await openEndpoint(endpoint, sock, this.options);
          // A jump host's loss closes the channels over it; the hosts behind it report that themselves.
          opened.ssh.connection?.on("error", () => {});
          return opened.ssh;
        } catch (e) {
          // A hop before it that failed named itself already; a channel it could not open to this one names the hop it came from.
          if (e instanceof EndpointError && e.jumpHost === undefined) {
            const detail = e.detail.startsWith("jump host ") ? e.detail : `jump host ${endpoint.name} (${target(endpoint)}, user ${endpoint.user.value}): ${e.detail}`;
            throw new EndpointError(e.reason, detail, endpoint.name);
          }
          throw e;
        }
      })();
      opening.catch(() => {});
      this.opening.set(key, opening);
    }
    return opening;
  }

  private release(key: string): void {
    const left = (this.users.get(key) ?? 1) - 1;
    this.users.set(key, left);
    if (left > 0) return;
    const opening = this.opening.get(key);
    this.opening.delete(key);
    void opening?.then((ssh) => ssh.dispose(), () => {});
  }
}

/** A direct-tcpip channel from jump host `from` to `to`, bounded by `to`'s connect timeout. */
function forward(ssh: NodeSSH, from: Endpoint, to: Endpoint): Promise<Duplex> {
  const client = ssh.connection;
  const via = `jump host ${from.name} (${target(from)})`;
  if (!client) return Promise.reject(new EndpointError("error", `${via}: its connection is closed`));
  const timeoutMs = to.connectTimeout.value * 1000;
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new EndpointError("timeout", `${via} got no connection to ${target(to)} within ${timeoutMs / 1000} s`)), timeoutMs);
    try {
      client.forwardOut("127.0.0.1", 0, to.hostname.value, to.port.value, (err, channel) => {
        clearTimeout(timer);
        if (err) {
          const reason = (err as Error & { reason?: number }).reason;
          // RFC 4254 5.1: 1 administratively prohibited, 2 connect failed.
          const why = reason === 1 ? "its sshd does not allow forwarding (AllowTcpForwarding)" : err.message.replace(/^\(SSH\) Channel open failure: /, "");
          reject(new EndpointError(reason === 2 ? "refused" : "error", `${via} cannot open a connection to ${target(to)}: ${why}`));
        } else resolvePromise(channel);
      });
    } catch (e) {
      clearTimeout(timer);
      reject(new EndpointError("error", `${via}: ${(e as Error).message}`));
    }
  });
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

function classify(
  endpoint: Endpoint,
  knownHosts: KnownHosts,
  e: Error & { code?: string; level?: string },
  check: HostKeyCheck | undefined,
  presented: Buffer | undefined,
  auth: { methods: AuthMethod[]; skipped: string[] },
): EndpointError {
  const at = target(endpoint);
  const lines = (ls: { file: string; line: number }[]) => ls.map((l) => `${l.file}:${l.line}`).join(", ");
  if (check && presented && check.kind !== "known") {
    const fp = `${keyTypeOf(presented)} ${fingerprint(presented)}`;
    switch (check.kind) {
      case "unknown":
        if (check.authorities.length > 0) {
          return new EndpointError("host-certificate",
            `${lines(check.authorities)} trusts a host certificate authority (@cert-authority) for this host, but pgprov's SSH library (ssh2) cannot verify host certificates; ` +
              `record the host's own key ${fp} in ${knownHosts.userFiles[0]} (after checking it: ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub on the host), or rerun with --accept-new-host-keys`);
        }
        return new EndpointError("host-key-unknown",
          `unknown host key ${fp}, not in ${knownHosts.describe()}; if this is the right server, rerun with --accept-new-host-keys to record it`);
      case "changed":
        return new EndpointError("host-key-changed",
          `host key mismatch: the server presented ${fp}, which differs from the key recorded at ${lines(check.lines)}; refusing to connect. If the server was really reinstalled, remove the old line and rerun with --accept-new-host-keys`);
      case "revoked":
        return new EndpointError("host-key-revoked", `host key ${fp} is marked @revoked at ${lines([check.at])}`);
    }
  }
  if (e.code === "ECONNREFUSED") return new EndpointError("refused", `connection refused at ${at} (is sshd running, on port ${endpoint.port.value}?)`);
  if (e.code === "ENOTFOUND" || e.code === "EAI_AGAIN") return new EndpointError("dns", `cannot resolve ${endpoint.hostname.value}`);
  if (e.code === "EHOSTUNREACH" || e.code === "ENETUNREACH") return new EndpointError("unreachable", `no route to ${at}`);
  if (e.level === "client-timeout" || e.code === "ETIMEDOUT") return new EndpointError("timeout", `timed out after ${endpoint.connectTimeout.value} s connecting to ${at}`);
  if (e.level === "client-authentication") {
    const skipped = auth.skipped.length ? `; skipped ${auth.skipped.join(", ")}` : "";
    if (auth.methods.length === 0) {
      return new EndpointError("auth",
        `no key to offer as ${endpoint.user.value} at ${at}: no agent (SSH_AUTH_SOCK) and none of ${endpoint.identityFiles.map((f) => f.value).join(", ")} could be used${skipped}; name one with ssh.private_key`);
    }
    return new EndpointError("auth",
      `the server at ${at} refused user ${endpoint.user.value} with ${auth.methods.map(describeMethod).join(", ")}${skipped} (its authorized_keys, or sshd's AllowUsers/DenyUsers, decide this)`);
  }
  return new EndpointError("error", `cannot connect to ${at}: ${e.message}`);
}
