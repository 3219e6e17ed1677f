/**
 * Connecting to many hosts at once. A host that cannot be reached is a value (its ConnectError),
 * not an exception, so the caller decides whether the others go on. Every key file is unlocked
 * before the first connection (a wrong passphrase is an error of its own, not every host
 * failing), and a jump host's connection is shared by all the hosts behind it.
 */
import type { Endpoint } from "../sshconfig/connection.js";
import { JumpHosts } from "./endpoint.js";
import { Identities, type Unlocking } from "./identities.js";
import { KnownHosts } from "./known-hosts.js";
import { ConnectError, HostConnection } from "./ssh.js";
import type { SshHost } from "./target.js";

export interface FleetOptions {
  acceptNewHostKeys?: boolean;
  /** Take each host's pgprov lock (runs that change hosts). */
  exclusive?: boolean;
}

/** A host as the caller gave it, with its connection or why there is none. */
export type Reached<H extends SshHost = SshHost> = { host: H; connection: HostConnection } | { host: H; error: ConnectError };

export async function connectAll<H extends SshHost>(hosts: H[], unlocking: Unlocking, options: FleetOptions = {}): Promise<Reached<H>[]> {
  const endpoints = hosts.flatMap((h) => [...h.connection.via, h.connection]);
  const identities = new Identities(unlocking);
  await identities.load(endpoints);
  // One KnownHosts per set of files for all hosts: keys accepted in parallel are appended in turn, never lost.
  const files = new Map<string, KnownHosts>();
  const knownHosts = (e: Endpoint) => {
    const key = JSON.stringify([e.userKnownHostsFiles.value, e.globalKnownHostsFiles.value]);
    let kh = files.get(key);
    if (!kh) files.set(key, (kh = new KnownHosts(e.userKnownHostsFiles.value, e.globalKnownHostsFiles.value)));
    return kh;
  };
  const endpointOptions = { knownHosts, identities, acceptNewHostKeys: options.acceptNewHostKeys ?? false };
  const jumps = new JumpHosts(endpointOptions);
  return Promise.all(
    hosts.map(async (host): Promise<Reached<H>> => {
      try {
        const connection = await HostConnection.open(host, { ...endpointOptions, jumps, exclusive: options.exclusive ?? false });
        return { host, connection };
      } catch (e) {
        if (e instanceof ConnectError) return { host, error: e };
        throw e;
      }
    }),
  );
}

/** A jump host that could not be reached, and the hosts behind it: reported once, as the jump host. */
export interface JumpFailure {
  jumpHost: string;
  /** Why, naming the jump host: `jump host pg1 (10.0.0.11:22, user root): connection refused ...`. */
  message: string;
  hosts: string[];
}

/** The jump hosts of a run that could not be reached, each once, with the hosts behind it. */
export function jumpFailures(reached: Reached<SshHost>[]): JumpFailure[] {
  const failures = new Map<string, JumpFailure>();
  for (const r of reached) {
    if (!("error" in r) || r.error.jumpHost === undefined) continue;
    const key = r.error.detail;
    const failure = failures.get(key) ?? { jumpHost: r.error.jumpHost, message: r.error.detail, hosts: [] };
    failure.hosts.push(r.host.name);
    failures.set(key, failure);
  }
  return [...failures.values()];
}

/** The jump host's failure and the hosts it left unreached, in one line. */
export function describeJumpFailure(f: JumpFailure): string {
  return `${f.message}; not reached behind it: ${f.hosts.join(", ")}`;
}

/** Why a host was not reached, said of the host alone: behind a jump host, only which one (its failure is reported once, apart). */
export function unreachedReason(error: ConnectError): string {
  return error.jumpHost !== undefined ? `behind jump host ${error.jumpHost}, which cannot be reached` : error.detail;
}

export function closeAll(reached: Reached<SshHost>[]): void {
  for (const r of reached) if ("connection" in r) r.connection.close();
}
