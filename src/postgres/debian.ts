/** Debian's PostgreSQL: which version a release ships, and postgresql-common's cluster layout. */
import { rewindMark } from "./data-directory.js";
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

/**
 * What every connection string pgprov writes to another server of the cluster carries
 * (primary_conninfo, pg_basebackup, pg_rewind, the boot check's questions): with TLS, the server
 * must show a certificate from the cluster's CA for the very name or address asked for
 * (verify-full), and SCRAM must be bound to that TLS channel (channel_binding=require), so a
 * server without such a certificate gets no password, not even a SCRAM exchange it could relay.
 * `caFile` is the CA's certificate on the host; undefined when TLS is off.
 */
export function conninfoSecurity(version: number, caFile: string | undefined): string {
  const tls = caFile ? [`sslmode=verify-full`, `sslrootcert=${caFile}`, `channel_binding=require`] : [];
  return [...tls, conninfoAuth(version)].filter(Boolean).join(" ");
}

/** Where pgprov keeps a server's TLS files: beside its configuration, which postgres owns. */
export function tlsFiles(cluster: Pick<DebianCluster, "config_directory">) {
  return {
    ca_file: `${cluster.config_directory}/pgprov-ca.crt`,
    cert_file: `${cluster.config_directory}/pgprov-server.crt`,
    key_file: `${cluster.config_directory}/pgprov-server.key`,
  };
}

/** Paths and names of the Debian cluster "main" of a version (postgresql-common's layout). */
export function debianCluster(version: number) {
  return {
    version,
    cluster: `${version}/main`,
    service: `postgresql@${version}-main`,
    data_directory: `/var/lib/postgresql/${version}/main`,
    /** See rewindMark: the boot check refuses to start the server while it is there. */
    rewind_mark: rewindMark(`/var/lib/postgresql/${version}/main`),
    config_directory: `/etc/postgresql/${version}/main`,
    bin_directory: `/usr/lib/postgresql/${version}/bin`,
  };
}

export type DebianCluster = ReturnType<typeof debianCluster>;
