/**
 * Connecting to many hosts at once. A host that cannot be reached is a value (its ConnectError),
 * not an exception, so the caller decides whether the others go on.
 */
import { KnownHostsFile } from "./known-hosts.js";
import { ConnectError, HostConnection } from "./ssh.js";
import type { SshHost, SshSettings } from "./target.js";

export interface FleetOptions {
  acceptNewHostKeys?: boolean;
  /** Take each host's pgprov lock (runs that change hosts). */
  exclusive?: boolean;
}

/** A host as the caller gave it, with its connection or why there is none. */
export type Reached<H extends SshHost = SshHost> = { host: H; connection: HostConnection } | { host: H; error: ConnectError };

export async function connectAll<H extends SshHost>(hosts: H[], settings: SshSettings, options: FleetOptions = {}): Promise<Reached<H>[]> {
  // One KnownHostsFile for all hosts: keys accepted in parallel are appended in turn, never lost.
  const knownHosts = new KnownHostsFile(settings.knownHosts);
  return Promise.all(
    hosts.map(async (host): Promise<Reached<H>> => {
      try {
        const connection = await HostConnection.open(host, settings, {
          knownHosts,
          acceptNewHostKeys: options.acceptNewHostKeys ?? false,
          exclusive: options.exclusive ?? false,
        });
        return { host, connection };
      } catch (e) {
        if (e instanceof ConnectError) return { host, error: e };
        throw e;
      }
    }),
  );
}

export function closeAll(reached: Reached<SshHost>[]): void {
  for (const r of reached) if ("connection" in r) r.connection.close();
}
