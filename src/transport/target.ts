/**
 * What transport needs to reach a host: its own types, so SSH knows nothing of inventories. The
 * cluster layer hands it the inventory's hosts and settings, which fit these shapes.
 */

/** A host to connect to: a name for messages, an address for the network. */
export interface SshHost {
  name: string;
  address: string;
}

export interface SshSettings {
  user: string;
  port: number;
  /** Absolute path; undefined means: the SSH agent, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa. */
  privateKey?: string;
  /** Absolute path; need not exist yet (then every host is unknown). */
  knownHosts: string;
  connectTimeoutMs: number;
}
