/**
 * The inventory's access rules as pg_hba.conf lines: one place that decides how a rule is written
 * (its connection type, its address), so that pg_hba.conf and pgbouncer's hba file say the same.
 */
import { isIP } from "node:net";

export interface HbaRule {
  database: string;
  user: string;
  /** A network, or one host (IP address or DNS name). */
  from: string;
  method: string;
}

/**
 * `cert` needs a TLS connection (PostgreSQL refuses it on a `host` line); with the cluster's TLS
 * on (issue 10), every network line is hostssl; otherwise the others take either.
 */
export function hbaConnectionType(method: string, tls = false): "host" | "hostssl" {
  return tls || method === "cert" ? "hostssl" : "host";
}

/** One host as pg_hba.conf reads it: an address with its full mask, or a DNS name as written. */
export function hbaAddress(from: string): string {
  if (from.includes("/")) return from;
  return isIP(from) === 4 ? `${from}/32` : isIP(from) === 6 ? `${from}/128` : from;
}

/** The `clients` shorthand: every role, every database, from these networks, with scram-sha-256. */
export function clientRules(networks: string[]): HbaRule[] {
  return networks.map((from) => ({ database: "all", user: "all", from, method: "scram-sha-256" }));
}

/** The lines, in the rules' order, columns aligned like the rest of pgprov's pg_hba.conf. */
export function hbaLines(rules: HbaRule[], { tls = false }: { tls?: boolean } = {}): string[] {
  return rules.map((r) => `${hbaConnectionType(r.method, tls).padEnd(7)} ${r.database.padEnd(12)} ${r.user.padEnd(21)} ${hbaAddress(r.from).padEnd(24)} ${r.method}`);
}
