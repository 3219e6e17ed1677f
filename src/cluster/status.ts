/**
 * `pgprov status`: the live cluster, one row per host, read with the pg client through SSH:
 * role (primary, standby, stopped, unreachable), version, timeline, LSN, lag, slot, streaming.
 * It also names trouble that apply refuses to work with (two writable servers, a live primary
 * other than the inventory's), and prints the connection strings applications should use.
 */
import type { Host, Inventory } from "../inventory/inventory.js";
import { withoutHostPrefix } from "../common/errors.js";
import { slotName } from "../postgres/slot-names.js";
import { REPLICATION_QUERY, standbyReplication } from "../postgres/read.js";
import { closeAll, connectAll, describeJumpFailure, jumpFailures, type Reached, unreachedReason } from "../transport/fleet.js";
import { HostPostgres, type Row } from "../transport/postgres.js";
import { type HostConnection, RemoteError } from "../transport/ssh.js";
import { parsePools, type PoolUsage, poolsScript } from "../postgres/pooler.js";
import { upstreamOf } from "../inventory/topology.js";
import { topologyOf } from "./variables.js";

export interface HostStatus {
  host: string;
  address: string;
  /** What the inventory says. */
  expectedRole: "primary" | "standby";
  role: "primary" | "standby" | "stopped" | "unreachable";
  /** Why the role is stopped or unreachable. */
  reason?: string;
  version?: string;
  timeline?: number;
  /** The primary's current WAL position, or a standby's replay position. */
  lsn?: string;
  /** For a standby, as its primary sees it. */
  lagBytes?: number;
  lagSeconds?: number;
  slot?: string;
  slotActive?: boolean;
  /** A standby's WAL receiver ("streaming", ...), or for the primary how many standbys stream. */
  streaming?: string;
  /** The server a standby streams from, as that server's pg_stat_replication shows it. */
  upstream?: string;
  /** The upstream the inventory gives a standby (the primary when it names none). */
  expectedUpstream?: string;
  /** pg_stat_replication's sync_state on its upstream: async, potential, sync, quorum. */
  syncState?: string;
  /** recovery_min_apply_delay of a delayed standby. */
  applyDelay?: string;
  /** With the inventory's pooler: its pgbouncer's pools (SHOW POOLS), or why they could not be read. */
  pooler?: { pools: PoolUsage[] } | { error: string };
}

export interface ClusterStatus {
  hosts: HostStatus[];
  /** Trouble a person must look at: two writable servers, a primary the inventory does not name. */
  warnings: string[];
  connectionStrings: { readWrite: string; preferStandby: string };
}

const HOST_QUERY = `select pg_is_in_recovery() as in_recovery,
  current_setting('server_version') as version,
  -- A primary's timeline from its current WAL file name (pg_control's lags until a checkpoint).
  case when pg_is_in_recovery() then coalesce((select received_tli from pg_stat_wal_receiver), (select timeline_id from pg_control_checkpoint()))
       else ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int end as timeline,
  (case when pg_is_in_recovery() then pg_last_wal_replay_lsn() else pg_current_wal_lsn() end)::text as lsn,
  (select status from pg_stat_wal_receiver) as receiver,
  current_setting('recovery_min_apply_delay') as apply_delay`;

export async function clusterStatus(inventory: Inventory, options: { acceptNewHostKeys?: boolean } = {}): Promise<ClusterStatus> {
  const reader = await StatusReader.open(inventory, options);
  try {
    return await reader.read();
  } finally {
    await reader.close();
  }
}

/**
 * Reads the cluster's status as often as asked (`status --watch`) on one SSH connection per host,
 * and one SQL session per server, opened again only when lost.
 */
export class StatusReader {
  private readonly sessions = new Map<string, HostPostgres>();

  private constructor(
    private readonly inventory: Inventory,
    private readonly reached: Reached<Host>[],
  ) {}

  static async open(inventory: Inventory, options: { acceptNewHostKeys?: boolean } = {}): Promise<StatusReader> {
    return new StatusReader(inventory, await connectAll(inventory.hosts, inventory.ssh, { acceptNewHostKeys: options.acceptNewHostKeys ?? false }));
  }

  async read(): Promise<ClusterStatus> {
    const inventory = this.inventory;
    // On the host's shell, while SQL goes over its own channel.
    const pools = this.reached.map((r) => (inventory.pooler && "connection" in r ? readPools(r.connection, inventory.pooler.port) : undefined));
    const rows = await Promise.all(
      this.reached.map(async (r): Promise<{ status: HostStatus; replication?: Row[] }> => {
        const base = { host: r.host.name, address: r.host.address, expectedRole: r.host.role };
        if ("error" in r) return { status: { ...base, role: "unreachable", reason: unreachedReason(r.error) } };
        try {
          let pg = this.sessions.get(r.host.name);
          if (!pg) {
            pg = await HostPostgres.connect(r.connection, { port: inventory.postgresql.port, timeoutMs: 10_000 });
            this.sessions.set(r.host.name, pg);
          }
          const [row] = await pg.query(HOST_QUERY);
          const primary = row!.in_recovery === false;
          const status: HostStatus = {
            ...base,
            role: primary ? "primary" : "standby",
            version: String(row!.version).split(" ")[0]!,
            timeline: Number(row!.timeline),
            lsn: String(row!.lsn),
            ...(primary ? {} : { streaming: row!.receiver ? String(row!.receiver) : "not streaming" }),
            ...(!primary && row!.apply_delay && row!.apply_delay !== "0" ? { applyDelay: String(row!.apply_delay) } : {}),
          };
          // Every server's downstreams: a standby streams to its cascading standbys.
          return { status, replication: await pg.query(REPLICATION_QUERY) };
        } catch (e) {
          if (!(e instanceof RemoteError)) throw e;
          // The next read connects again: the server may be back.
          await this.sessions.get(r.host.name)?.close();
          this.sessions.delete(r.host.name);
          return { status: { ...base, role: "stopped", reason: withoutHostPrefix(e.message) } };
        }
      }),
    );
    const hosts = rows.map((r) => r.status);
    for (const [i, read] of pools.entries()) if (read) hosts[i]!.pooler = await read;
    // A jump host that cannot be reached, once, rather than on each host behind it.
    const warnings: string[] = jumpFailures(this.reached).map(describeJumpFailure);
    const writable = hosts.filter((h) => h.role === "primary");
    const topology = topologyOf(inventory);
    for (const standby of hosts.filter((h) => h.role === "standby")) {
      const host = inventory.hosts.find((h) => h.name === standby.host)!;
      const expected = upstreamOf(topology, host);
      if (expected) standby.expectedUpstream = expected.name;
      // The server whose pg_stat_replication lists it: its upstream, seen from there.
      const from = rows.find((r) => r.replication?.some((x) => x.application_name === standby.host));
      const seen = standbyReplication(standby.host, from?.replication ?? []);
      if (from && seen.state !== "absent") {
        standby.upstream = from.status.host;
        standby.lagBytes = seen.lagBytes;
        standby.lagSeconds = seen.lagSeconds;
        if (seen.syncState) standby.syncState = seen.syncState;
        if (seen.slot) standby.slot = seen.slot;
        standby.slotActive = seen.slotActive === true;
      } else if (inventory.replication.slots) {
        standby.slot = slotName(standby.host);
      }
    }
    for (const p of writable) {
      const rep = rows.find((r) => r.status === p)?.replication ?? [];
      p.streaming = `${rep.filter((x) => x.state === "streaming").length} standby(s) streaming`;
    }
    for (const h of hosts) {
      if (h.upstream && h.expectedUpstream && h.upstream !== h.expectedUpstream) {
        warnings.push(`${h.host} streams from ${h.upstream}, but the inventory says from ${h.expectedUpstream}: \`pgprov apply\` repoints it`);
      }
    }
    if (writable.length > 1) warnings.push(`more than one server accepts writes: ${writable.map((h) => h.host).join(", ")}`);
    if (writable.length === 1 && writable[0]!.host !== inventory.primary.name) {
      warnings.push(`the writable server is ${writable[0]!.host}, but the inventory says the primary is ${inventory.primary.name}`);
    }
    const caFile = inventory.tls.enabled ? inventory.tls.caFiles.cert : undefined;
    // With a pooler, applications connect to it: target_session_attrs still finds the primary through it.
    return { hosts, warnings, connectionStrings: connectionStrings(inventory.hosts, inventory.pooler?.port ?? inventory.postgresql.port, caFile) };
  }

  async close(): Promise<void> {
    await Promise.all([...this.sessions.values()].map((pg) => pg.close()));
    closeAll(this.reached);
  }
}

/**
 * The replication tree, as the servers show it: each server with the standbys that stream from
 * it, their sync_state and apply delay; a standby no server lists is shown apart.
 */
export function replicationTree(hosts: HostStatus[]): string[] {
  const lines: string[] = [];
  const label = (h: HostStatus) => {
    const notes = [
      h.role === "standby" ? h.syncState ?? h.streaming : h.role,
      h.applyDelay ? `apply delay ${h.applyDelay}` : "",
      h.expectedUpstream && h.upstream && h.expectedUpstream !== h.upstream ? `inventory: from ${h.expectedUpstream}` : "",
    ].filter(Boolean);
    return `${h.host} (${notes.join(", ")})`;
  };
  const below = (name: string, prefix: string, seen: Set<string>) => {
    const children = hosts.filter((h) => h.upstream === name && !seen.has(h.host));
    children.forEach((c, i) => {
      const last = i === children.length - 1;
      seen.add(c.host);
      lines.push(`${prefix}${last ? "└── " : "├── "}${label(c)}`);
      below(c.host, `${prefix}${last ? "    " : "│   "}`, seen);
    });
  };
  const seen = new Set<string>();
  for (const root of hosts.filter((h) => h.role === "primary")) {
    seen.add(root.host);
    lines.push(label(root));
    below(root.host, "", seen);
  }
  for (const h of hosts.filter((x) => !seen.has(x.host))) lines.push(`${label(h)}: streams from no server reached${h.reason ? ` (${h.reason})` : ""}`);
  return lines;
}

/**
 * libpq multi-host URIs: clients try each host and keep the one that fits, so they follow a
 * switchover without being reconfigured. prefer-standby needs libpq 14 or later. With TLS, they
 * verify each server's certificate and name against the cluster's CA (`caFile`, the CA's
 * certificate on this machine; `pgprov ca` writes it wherever clients need it).
 */
export function connectionStrings(hosts: Host[], port: number, caFile?: string): { readWrite: string; preferStandby: string } {
  const list = hosts.map((h) => `${h.address.includes(":") ? `[${h.address}]` : h.address}:${port}`).join(",");
  const tls = caFile ? `&sslmode=verify-full&sslrootcert=${encodeURIComponent(caFile)}` : "";
  return {
    readWrite: `postgresql://${list}/postgres?target_session_attrs=read-write${tls}`,
    preferStandby: `postgresql://${list}/postgres?target_session_attrs=prefer-standby${tls}`,
  };
}

/** A pgbouncer's pools, from its admin console on its host. */
async function readPools(connection: HostConnection, port: number): Promise<{ pools: PoolUsage[] } | { error: string }> {
  try {
    const r = await connection.run(poolsScript(port), { timeoutMs: 10_000, purpose: "pgbouncer's pools (SHOW POOLS)" });
    return r.code === 0 ? { pools: parsePools(r.stdout) } : { error: r.stderr.trim().split("\n").at(-1) || `psql exited ${r.code}` };
  } catch (e) {
    if (!(e instanceof RemoteError)) throw e;
    return { error: withoutHostPrefix(e.message) };
  }
}
