/**
 * What transport needs to reach a host: its own types, so SSH knows nothing of inventories. The
 * cluster layer hands it the inventory's hosts, each with its connection resolved (see
 * sshconfig/connection.ts: the inventory's keys, then ssh's configuration, then defaults).
 */
import type { Connection } from "../sshconfig/connection.js";

/** A host to connect to: a name for messages, an address for the network, how to reach it. */
export interface SshHost {
  name: string;
  address: string;
  connection: Connection;
}
