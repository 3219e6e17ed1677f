/**
 * The variables a host's templates see, from lowest to highest precedence: the inventory's
 * `vars`, the host's `vars`, then pgprov's own (host, hosts, primary, standbys, facts, postgresql,
 * replication, cluster), then (added by the engine) values registered by earlier tasks. pgprov's
 * own names cannot be overridden by accident: the playbook loader rejects a `register` that would shadow them.
 */
import { isIP } from "node:net";
import { Secret } from "../common/secret.js";
import { FACT_KEYS, type Facts } from "../engine/facts.js";
import type { BackupHost, Host, Inventory } from "../inventory/inventory.js";
import { backupVariables } from "./backup-config.js";
import { conninfoSecurity, debianCluster, postgresVersion, tlsFiles } from "../postgres/debian.js";
import { serverNames } from "../tls/index.js";
import { slotName } from "../postgres/slot-names.js";
import { downstreamsOf, isCascading, synchronousStandbyNames, upstreamOf } from "../inventory/topology.js";
import { preloadLibraries } from "../postgres/extensions.js";
import { clientRules, hbaLines } from "../postgres/hba.js";
import { LOOKUP_FUNCTION, POOLER_AUTH_USER } from "../postgres/pooler.js";

export const BUILTIN_VARIABLES = ["host", "hosts", "primary", "standbys", "facts", "postgresql", "replication", "pooler", "ssh_user", "cluster", "tls", "backup"] as const;

/** What pgprov knows of the cluster when a task is rendered, for the cluster playbook. */
export interface ClusterContext {
  /** The primary's system identifier, once read (from its data directory, then pg_control). */
  primarySystemIdentifier?: string;
  /** Hosts whose data the user agreed to replace (--reclone). */
  reclone: string[];
  /** Standbys cloned again even though they hold this cluster's data (after `pgprov restore`). */
  cloneAlways?: string[];
  /**
   * Members left out of this run (a failed primary failover fenced, or could not reach): a
   * standby whose upstream is one of them streams from the primary meanwhile.
   */
  excluded?: string[];
  /** A standby whose data pg_standby will replace with a clone without asking (see clonedWithoutAsking). */
  replacedByClone?: boolean;
  /** The facts of the other hosts, once read: the repository host's pgBackRest names the database hosts' data directories. */
  factsOf?: (name: string) => Facts | undefined;
}

function describe(host: Host | BackupHost) {
  // For pg_hba: one address per member; a DNS name is written as is (pg_hba resolves it).
  const cidr = isIP(host.address) === 4 ? `${host.address}/32` : isIP(host.address) === 6 ? `${host.address}/128` : host.address;
  return { name: host.name, address: host.address, role: host.role, cidr, slot: slotName(host.name) };
}

function postgresqlVariables(inventory: Inventory, facts: Facts | undefined) {
  const version = postgresVersion(inventory.postgresql.version, facts);
  const standbys = inventory.standbys.length;
  return {
    ...debianCluster(version),
    port: inventory.postgresql.port,
    settings: withPreload(inventory),
    clients: inventory.postgresql.clients,
    /** pg_hba.conf lines of the inventory's access rules, in order. */
    access: hbaLines(inventory.access, { tls: inventory.tls.enabled }),
    /** The server and client, and the packages the inventory adds (extensions outside contrib). */
    packages: [
      `postgresql-${version}`,
      `postgresql-client-${version}`,
      ...inventory.postgresql.packages,
      ...(inventory.pooler ? ["pgbouncer"] : []),
      ...(inventory.backup ? ["pgbackrest"] : []),
    ],
    /** For pg_roles: passwords revealed here only (masked again in all output); pgbouncer's own role with them. */
    roles: [
      ...inventory.roles.map((r) => ({ ...r, password: r.password?.reveal() })),
      ...(inventory.pooler ? [{ name: POOLER_AUTH_USER, password: inventory.pooler.password?.reveal() ?? "" }] : []),
    ],
    databases: inventory.databases,
    database_names: inventory.databases.map((d) => d.name),
    /** Added to every connection string to another server (primary_conninfo, pg_basebackup, the boot check); see conninfoSecurity. */
    conninfo_auth: conninfoSecurity(version, inventory.tls.enabled ? tlsFiles(debianCluster(version)).ca_file : undefined),
    // pg_basebackup -X stream holds two WAL senders while it runs: every standby can clone at
    // once, and every standby can stream, with room for a few more. Rounded up to a multiple
    // of 16: both need a restart to change, and adding a standby should not restart the others.
    // The same on every host, counting every standby: a host's downstreams (cascading standbys
    // clone and stream from it) are at most all of them, a standby's max_wal_senders may not be
    // below its primary's, and any host may become the primary.
    max_wal_senders: roundUp(3 * standbys + 4, 16),
    max_replication_slots: roundUp(standbys + 4, 16),
    /** max_slot_wal_keep_size in PostgreSQL's unit (MB); -1: no limit. */
    max_slot_wal_keep_size: inventory.replication.maxSlotWalKeepSize < 0 ? "-1" : `${Math.ceil(inventory.replication.maxSlotWalKeepSize / 1024 ** 2)}MB`,
  };
}

export function hostVariables(
  inventory: Inventory,
  host: Host | BackupHost,
  facts: Facts | undefined,
  cluster: ClusterContext = { reclone: [] },
): Record<string, unknown> {
  const topology = topologyOf(inventory, cluster.excluded);
  // The backup host runs no server: it streams from nothing, and no slot is its.
  const member = host.role === "backup" ? undefined : host;
  return {
    ...(reveal(inventory.vars) as Record<string, unknown>),
    ...(reveal(host.vars) as Record<string, unknown>),
    host: describe(host),
    hosts: inventory.hosts.map(describe),
    primary: describe(inventory.primary),
    standbys: inventory.standbys.map(describe),
    facts: facts ?? Object.fromEntries(FACT_KEYS.map((k) => [k, ""])),
    // Computed only once facts are known (the version may come from the distribution).
    ...(facts || inventory.postgresql.version ? { postgresql: postgresqlVariables(inventory, facts) } : {}),
    replication: {
      user: inventory.replication.user,
      password: inventory.replication.password?.reveal() ?? "",
      slots: inventory.replication.slots,
      passfile: "/var/lib/postgresql/.pgprov.pgpass",
    },
    pooler: poolerVariables(inventory),
    // The user sshd runs the pg client's socket forward as, mapped to postgres by pg_ident.conf.
    ssh_user: host.connection.user.value,
    tls: tlsVariables(inventory, host, facts),
    backup: backupVariables(inventory, host, (db) => {
      const dbFacts = databaseFacts(inventory, db, cluster.factsOf);
      // Like postgresql's: computed once known (the version may come from the distribution).
      return dbFacts || inventory.postgresql.version ? debianCluster(postgresVersion(inventory.postgresql.version, dbFacts)) : undefined;
    }),
    cluster: {
      // The slots of the standbys that stream from this host: a cascading standby's lives on its upstream.
      slots: inventory.replication.slots && member ? downstreamsOf(topology, member).map((h) => slotName(h.name)) : [],
      slot: inventory.replication.slots && host.role === "standby" ? slotName(host.name) : "",
      /** Where this host streams and clones from: its upstream, or the primary (the primary: itself). */
      upstream: describe((member && upstreamOf(topology, member)) ?? host),
      /** Streams from a standby: cloned after the standbys of the primary. */
      cascading: member ? isCascading(topology, member) : false,
      synchronous_standby_names: synchronousStandbyNames(inventory.hosts, inventory.replication.synchronous),
      apply_delay: member?.applyDelay ?? "",
      primary_system_identifier: cluster.primarySystemIdentifier ?? "",
      reclone: cluster.reclone.includes(host.name),
      clone_always: cluster.cloneAlways?.includes(host.name) ?? false,
      /** Its server is stopped for the clone's swap and started with it: no restart for pending settings before. */
      replaced_by_clone: cluster.replacedByClone ?? false,
    },
  };
}

/**
 * A database host's facts, for what depends on its PostgreSQL version where another host renders
 * it (the repository host, which runs no server: its own release says nothing of theirs): the
 * host's own, else another database host's (they run one version).
 */
function databaseFacts(inventory: Inventory, host: Host, factsOf: ClusterContext["factsOf"]): Facts | undefined {
  return factsOf?.(host.name) ?? inventory.hosts.map((h) => factsOf?.(h.name)).find((f) => f !== undefined);
}

/** The hosts streaming is arranged among: all but those a cluster operation left out. */
export function topologyOf(inventory: Inventory, excluded: string[] = []): Host[] {
  return inventory.hosts.filter((h) => !excluded.includes(h.name));
}

/** TLS (issue 10): on or off, the files on the host, what this host's certificate names, and a certificate issued elsewhere. */
function tlsVariables(inventory: Inventory, host: Host | BackupHost, facts: Facts | undefined) {
  const { enabled, authority, given } = inventory.tls;
  const names = serverNames(host.name, host.address, host.dnsNames);
  return {
    enabled,
    /** The pg_hba.conf type of every line on a network address. */
    hba: enabled ? "hostssl" : "host",
    ...(facts || inventory.postgresql.version ? tlsFiles(debianCluster(postgresVersion(inventory.postgresql.version, facts))) : {}),
    ca_certificate: authority?.certPem ?? "",
    /** An access rule lets clients in by certificate: only then does the server ask for one (ssl_ca_file). */
    client_certificates: inventory.access.some((rule) => rule.method === "cert"),
    names: [...names.dnsNames, ...names.ipAddresses],
    certificate: given[host.name]?.certPem ?? "",
    private_key: given[host.name]?.keyPem.reveal() ?? "",
  };
}

/** Names every host's templates can use, for checking a playbook before connecting. */
export function variableNames(inventory: Inventory): string[] {
  const perHost = inventory.hosts.map((h) => new Set(Object.keys(h.vars)));
  // A host variable counts only when every host has it: otherwise some host would fail to render.
  const onEveryHost = [...(perHost[0] ?? [])].filter((name) => perHost.every((s) => s.has(name)));
  return [...new Set([...Object.keys(inventory.vars), ...onEveryHost, ...BUILTIN_VARIABLES])];
}

/** Templates render secrets' real values (into files sent on stdin); output masks them again. */
function reveal(value: unknown): unknown {
  if (value instanceof Secret) return value.reveal();
  if (Array.isArray(value)) return value.map(reveal);
  if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, reveal(v)]));
  return value;
}

function poolerVariables(inventory: Inventory) {
  const p = inventory.pooler;
  // The role's name without a pooler too: it is made NOLOGIN then (pg_pooler_role_retired).
  if (!p) return { enabled: false, auth_user: POOLER_AUTH_USER };
  // pgbouncer's hba reads addresses only: a rule from a DNS name is left out (no one gets in by it).
  // A client certificate is checked by the server's own port only (pgbouncer has no client CA
  // here): a cert rule is a reject, so that no later rule lets that client in by password instead.
  const rules = [...inventory.access, ...clientRules(inventory.postgresql.clients)]
    .filter((r) => r.from.includes("/") || isIP(r.from) !== 0)
    .map((r) => (r.method === "cert" ? { ...r, method: "reject" } : r));
  return {
    enabled: true,
    port: p.port,
    pool_mode: p.poolMode,
    default_pool_size: p.defaultPoolSize,
    max_client_conn: p.maxClientConn,
    auth_user: POOLER_AUTH_USER,
    password: p.password?.reveal() ?? "",
    lookup_function: LOOKUP_FUNCTION,
    hba: hbaLines(rules, { tls: inventory.tls.enabled }),
  };
}

/**
 * The inventory's settings, with the libraries its databases' extensions need (pg_stat_statements,
 * say) added to shared_preload_libraries, after any the inventory lists itself.
 */
function withPreload(inventory: Inventory): Record<string, string | number | boolean> {
  const settings = inventory.postgresql.settings;
  const libraries = preloadLibraries(inventory.databases.flatMap((d) => d.extensions));
  if (!libraries.length) return settings;
  // PostgreSQL reads names in any case: the inventory's may be written SHARED_PRELOAD_LIBRARIES.
  const key = Object.keys(settings).find((k) => k.toLowerCase() === "shared_preload_libraries");
  const listed = key === undefined ? [] : String(settings[key]).split(",").map((l) => l.trim()).filter(Boolean);
  const rest = Object.fromEntries(Object.entries(settings).filter(([k]) => k !== key));
  return { ...rest, shared_preload_libraries: [...new Set([...listed, ...libraries])].join(",") };
}

function roundUp(n: number, step: number): number {
  return Math.ceil(n / step) * step;
}
