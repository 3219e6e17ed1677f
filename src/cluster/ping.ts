/**
 * `pgprov ping`: can pgprov reach and use every host? One connection and one command per host,
 * all hosts in parallel.
 */
import type { Host, Inventory } from "../inventory/inventory.js";
import { withoutHostPrefix } from "../common/errors.js";
import { describePath } from "../sshconfig/connection.js";
import { closeAll, connectAll, type FleetOptions, type JumpFailure, jumpFailures, unreachedReason } from "../transport/fleet.js";
import { type ConnectFailure, RemoteError } from "../transport/ssh.js";

export type PingResult =
  | {
      host: Host;
      reachable: true;
      os: string;
      /** `systemctl is-system-running`, or "absent" when PID 1 is not systemd. */
      systemd: string;
      /** Round trip of one minimal remote command on the open connection. */
      rttMs: number;
      /** `direct`, or `via user@bastion:port`. */
      path: string;
      user: string;
      /** The key file or agent the host accepted. */
      identity: string;
      learnedHostKey?: string;
    }
  | { host: Host; reachable: false; reason: ConnectFailure | "command"; message: string; path: string; jumpHost?: string };

/** Prints key=value lines; parsed by parsePingFacts. */
export const PING_SCRIPT = [
  `. /etc/os-release 2>/dev/null; echo "os=\${PRETTY_NAME:-unknown}"`,
  `if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then echo "systemd=$(systemctl is-system-running 2>/dev/null)"; else echo systemd=absent; fi`,
].join("\n");

export function parsePingFacts(stdout: string): { os: string; systemd: string } {
  const facts = Object.fromEntries(stdout.split("\n").filter((l) => l.includes("=")).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
  return { os: facts.os || "unknown", systemd: facts.systemd || "unknown" };
}

/** Each host's result; a jump host that could not be reached once, with the hosts behind it. */
export async function ping(inventory: Inventory, options: FleetOptions = {}): Promise<{ results: PingResult[]; jumpFailures: JumpFailure[] }> {
  const reached = await connectAll(inventory.hosts, inventory.ssh, options);
  try {
    const results = await Promise.all(
      reached.map(async (r): Promise<PingResult> => {
        if ("error" in r) {
          const jump = r.error.jumpHost !== undefined ? { jumpHost: r.error.jumpHost } : {};
          return { host: r.host, reachable: false, reason: r.error.reason, message: unreachedReason(r.error), path: describePath(r.host.connection), ...jump };
        }
        let facts;
        try {
          facts = await r.connection.run(PING_SCRIPT, { timeoutMs: 15_000, purpose: "the ping facts" });
        } catch (e) {
          // Reached, but cannot run commands (sudo wants a password, the shell is broken, ...).
          if (e instanceof RemoteError) return { host: r.host, reachable: false, reason: "command", message: withoutHostPrefix(e.message), path: r.connection.path };
          throw e;
        }
        if (facts.code !== 0) {
          return { host: r.host, reachable: false, reason: "command", message: `the facts script exited ${facts.code}: ${facts.stderr.trim()}`, path: r.connection.path };
        }
        const rtt = await r.connection.run(":", { timeoutMs: 15_000, purpose: "a round trip" });
        return {
          host: r.host,
          reachable: true,
          ...parsePingFacts(facts.stdout),
          rttMs: rtt.ms,
          path: r.connection.path,
          user: r.host.connection.user.value,
          identity: r.connection.identity,
          ...(r.connection.learnedHostKey ? { learnedHostKey: r.connection.learnedHostKey } : {}),
        };
      }),
    );
    return { results, jumpFailures: jumpFailures(reached) };
  } finally {
    closeAll(reached);
  }
}
