/** Debian's PostgreSQL: which version a release ships, and postgresql-common's cluster layout. */
import { PgprovError } from "../common/errors.js";
import type { Facts } from "../engine/facts.js";

/** The PostgreSQL major version each Debian release ships: the default when the inventory names none. */
export const DISTRIBUTION_POSTGRESQL: Readonly<Record<string, number>> = { bullseye: 13, bookworm: 15, trixie: 17 };

/** The version to use: the one configured, or the one the host's release ships. */
export function postgresVersion(configured: number | undefined, facts: Facts | undefined): number {
  if (configured) return configured;
  const version = facts && DISTRIBUTION_POSTGRESQL[facts.os_codename];
  if (!version) {
    throw new PgprovError(
      `cannot tell which PostgreSQL version to install on ${facts?.os_id ?? "this"} ${facts?.os_codename ?? "host"}: set postgresql.version in the inventory`,
    );
  }
  return version;
}

/**
 * What a connection string to another server of the cluster adds so that libpq sends the
 * replication password only by SCRAM: a server that asks for it in cleartext (anything answering
 * at the primary's address) gets nothing. `require_auth` exists from libpq 16 on; the client is
 * the host's own PostgreSQL. On 15 nothing but the network protects the password until TLS.
 */
export function conninfoAuth(version: number): string {
  return version >= 16 ? "require_auth=scram-sha-256" : "";
}

/** Paths and names of the Debian cluster "main" of a version (postgresql-common's layout). */
export function debianCluster(version: number) {
  return {
    version,
    cluster: `${version}/main`,
    service: `postgresql@${version}-main`,
    data_directory: `/var/lib/postgresql/${version}/main`,
    config_directory: `/etc/postgresql/${version}/main`,
    bin_directory: `/usr/lib/postgresql/${version}/bin`,
  };
}

export type DebianCluster = ReturnType<typeof debianCluster>;
