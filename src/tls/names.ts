/**
 * The names a server certificate is for (its subjectAltName): DNS names and IP addresses, kept
 * apart because X.509 keeps them apart and libpq's verify-full matches an address only against
 * an IP entry, a name only against a DNS entry.
 */
import { isIP } from "node:net";
import { PgprovError } from "../common/errors.js";

export interface SanNames {
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
}

/** Host names, addresses and DNS names as the inventory writes them, each put where it belongs. */
export function sanNames(values: readonly string[]): Required<SanNames> {
  const unique = [...new Set(values)];
  return { dnsNames: unique.filter((v) => isIP(v) === 0), ipAddresses: unique.filter((v) => isIP(v) !== 0) };
}

// RFC 1123 labels; no wildcard: a certificate pgprov issues names exactly the hosts it is for. No
// trailing dot either: in a SAN, `db1.example.com.` is not matched by verify-full for a client
// that dials `db1.example.com`, and a name written twice (with and without) would be one in drift.
const DNS_NAME = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export function isDnsName(value: string): boolean {
  return DNS_NAME.test(value);
}

/** Checks every name; `what` says whose names they are in the error ("the certificate of pg1"). */
export function validSanNames(names: SanNames, what: string): Required<SanNames> {
  const dnsNames = [...new Set(names.dnsNames ?? [])];
  const ipAddresses = [...new Set(names.ipAddresses ?? [])];
  for (const name of dnsNames) {
    if (!isDnsName(name)) throw new PgprovError(`${what}: ${JSON.stringify(name)} is not a DNS name (letters, digits and hyphens, in labels separated by dots; no trailing dot)`);
  }
  for (const address of ipAddresses) {
    if (isIP(address) === 0) throw new PgprovError(`${what}: ${JSON.stringify(address)} is not an IP address`);
  }
  if (dnsNames.length + ipAddresses.length === 0) throw new PgprovError(`${what}: no name or address to issue a certificate for`);
  return { dnsNames, ipAddresses };
}

/**
 * One spelling per name, so that `fd00::11` and OpenSSL's `FD00:0:0:0:0:0:0:11` compare equal. A
 * trailing dot is kept: verify-full does not match `db1.example.com.` for `db1.example.com`, so a
 * certificate naming it is drift.
 */
export function canonicalName(kind: "dns" | "ip", value: string): string {
  if (kind === "dns") return value.toLowerCase();
  const version = isIP(value);
  if (version === 0) return value.toLowerCase();
  return new URL(`http://${version === 6 ? `[${value}]` : value}/`).hostname.replace(/^\[|\]$/g, "");
}

/** The names as `kind:value` keys, for set comparison. */
export function nameKeys(names: SanNames): string[] {
  return [
    ...(names.dnsNames ?? []).map((n) => `dns:${canonicalName("dns", n)}`),
    ...(names.ipAddresses ?? []).map((a) => `ip:${canonicalName("ip", a)}`),
  ];
}

/** A key back into words: `DNS name pg1`, `IP address 10.0.0.11`. */
export function describeNameKey(key: string): string {
  const colon = key.indexOf(":");
  const [kind, value] = [key.slice(0, colon), key.slice(colon + 1)];
  return `${kind === "dns" ? "DNS name" : kind === "ip" ? "IP address" : kind} ${value}`;
}

/**
 * What a server of the cluster is reached by, for its certificate's SAN: its address (an IP
 * address or a DNS name), its name in the inventory when that is a DNS name (`pg1`), and the
 * other DNS names the inventory gives it (`dns_names`), so verify-full passes whichever a client uses.
 */
export function serverNames(name: string, address: string, dnsNames: readonly string[] = []): Required<SanNames> {
  return sanNames([address, ...(isDnsName(name) ? [name] : []), ...dnsNames]);
}
