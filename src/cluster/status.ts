/**
 * `pgprov status`: the live cluster, one row per host, read with the pg client through SSH:
 * role (primary, standby, stopped, unreachable), version, timeline, LSN, lag, slot, streaming.
 * It also names trouble that apply refuses to work with (two writable servers, a live primary
 * other than the inventory's), and prints the connection strings applications should use.
 */
import type { Host, Inventory } from "../inventory/inventory.js";
import { slotName } from "../postgres/slot-names.js";
import { REPLICATION_QUERY, standbyReplication } from "../postgres/read.js";
import { closeAll, connectAll } from "../transport/fleet.js";
import { HostPostgres, type Row } from "../transport/postgres.js";
import { RemoteError } from "../transport/ssh.js";

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
  (select status from pg_stat_wal_receiver) as receiver`;

export async function clusterStatus(inventory: Inventory, options: { acceptNewHostKeys?: boolean } = {}): Promise<ClusterStatus> {
  const reached = await connectAll(inventory.hosts, inventory.ssh, { acceptNewHostKeys: options.acceptNewHostKeys ?? false });
  try {
    const rows = await Promise.all(
      reached.map(async (r): Promise<{ status: HostStatus; replication?: Row[] }> => {
        const base = { host: r.host.name, address: r.host.address, expectedRole: r.host.role };
        if ("error" in r) return { status: { ...base, role: "unreachable", reason: r.error.detail } };
        let pg: HostPostgres | undefined;
        try {
          pg = await HostPostgres.connect(r.connection, { port: inventory.postgresql.port, timeoutMs: 10_000 });
          const [row] = await pg.query(HOST_QUERY);
          const primary = row!.in_recovery === false;
          const status: HostStatus = {
            ...base,
            role: primary ? "primary" : "standby",
            version: String(row!.version).split(" ")[0]!,
            timeline: Number(row!.timeline),
            lsn: String(row!.lsn),
            ...(primary ? {} : { streaming: row!.receiver ? String(row!.receiver) : "not streaming" }),
          };
          return primary ? { status, replication: await pg.query(REPLICATION_QUERY) } : { status };
        } catch (e) {
          if (!(e instanceof RemoteError)) throw e;
          return { status: { ...base, role: "stopped", reason: e.message.replace(/^host \S+: /, "") } };
        } finally {
          await pg?.close();
        }
      }),
    );
    const hosts = rows.map((r) => r.status);
    const writable = hosts.filter((h) => h.role === "primary");
    const live = rows.find((r) => r.status.host === inventory.primary.name && r.replication) ?? rows.find((r) => r.replication);
    for (const standby of hosts.filter((h) => h.role === "standby")) {
      const seen = standbyReplication(standby.host, live?.replication ?? []);
      if (seen.state !== "absent") {
        standby.lagBytes = seen.lagBytes;
        standby.lagSeconds = seen.lagSeconds;
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
    const warnings: string[] = [];
    if (writable.length > 1) warnings.push(`more than one server accepts writes: ${writable.map((h) => h.host).join(", ")}`);
    if (writable.length === 1 && writable[0]!.host !== inventory.primary.name) {
      warnings.push(`the writable server is ${writable[0]!.host}, but the inventory says the primary is ${inventory.primary.name}`);
    }
    // With a pooler, applications connect to it: target_session_attrs still finds the primary through it.
    return { hosts, warnings, connectionStrings: connectionStrings(inventory.hosts, inventory.pooler?.port ?? inventory.postgresql.port) };
  } finally {
    closeAll(reached);
  }
}

/**
 * libpq multi-host URIs: clients try each host and keep the one that fits, so they follow a
 * switchover without being reconfigured. prefer-standby needs libpq 14 or later.
 */
export function connectionStrings(hosts: Host[], port: number): { readWrite: string; preferStandby: string } {
  const list = hosts.map((h) => `${h.address.includes(":") ? `[${h.address}]` : h.address}:${port}`).join(",");
  return {
    readWrite: `postgresql://${list}/postgres?target_session_attrs=read-write`,
    preferStandby: `postgresql://${list}/postgres?target_session_attrs=prefer-standby`,
  };
}
