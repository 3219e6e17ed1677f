/** pgprov's replication slots are named by this prefix, so it knows which slots are its own. */
export const SLOT_PREFIX = "pgprov_";

/** The slot of a standby: its host name, made a valid slot name (lower-case letters, digits, _). */
export function slotName(host: string): string {
  return `${SLOT_PREFIX}${host.toLowerCase().replace(/[^a-z0-9_]/g, "_")}`.slice(0, 63);
}
