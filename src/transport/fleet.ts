/**
 * Connecting to every host of an inventory at once. A host that cannot be reached is a value
 * (its ConnectError), not an exception, so the caller decides whether the others go on.
 */
import type { Host, Inventory } from "../inventory/inventory.js";
import { KnownHostsFile } from "./known-hosts.js";
import { ConnectError, HostConnection } from "./ssh.js";

export interface FleetOptions {
  acceptNewHostKeys?: boolean;
  /** Take each host's pgprov lock (runs that change hosts). */
  exclusive?: boolean;
}

export type Reached = { host: Host; connection: HostConnection } | { host: Host; error: ConnectError };

export async function connectAll(inventory: Inventory, hosts: Host[], options: FleetOptions = {}): Promise<Reached[]> {
  // One KnownHostsFile for all hosts: keys accepted in parallel are appended in turn, never lost.
  const knownHosts = new KnownHostsFile(inventory.ssh.knownHosts);
  return Promise.all(
    hosts.map(async (host): Promise<Reached> => {
      try {
        const connection = await HostConnection.open(host, inventory.ssh, {
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

export function closeAll(reached: Reached[]): void {
  for (const r of reached) if ("connection" in r) r.connection.close();
}
