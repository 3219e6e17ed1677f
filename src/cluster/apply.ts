/**
 * `pgprov apply` for a cluster: the playbook run by the engine, with the safety checks and the
 * streaming verification around it. The bundled playbook reads each host's data directory in its
 * first play (register: pgprov_data_directory): when every host has, the rules of safety.ts decide
 * whether the run may go on. Its last play reads pg_stat_replication on the primary
 * (register: pgprov_replication): standbys that do not stream yet are waited for, with a bound.
 */
import type { Emit, StandbyReplication } from "../engine/events.js";
import { runPlaybook, type RunOptions, type RunSummary } from "../engine/run.js";
import type { ClusterContext } from "../engine/variables.js";
import { PgprovError } from "../errors.js";
import { ensureReplicationPassword, type Inventory } from "../inventory/inventory.js";
import { REPLICATION_QUERY } from "../modules/pg/read.js";
import type { Playbook } from "../playbook/playbook.js";
import { closeAll, connectAll } from "../transport/fleet.js";
import { HostPostgres, type Row } from "../transport/postgres.js";
import type { HostConnection } from "../transport/ssh.js";
import type { DataDirectory } from "./data-directory.js";
import { assessCluster } from "./safety.js";

export interface ApplyOptions extends Omit<RunOptions, "cluster" | "afterPlay" | "reached" | "secrets" | "emit"> {
  /** Hosts whose data may be replaced by a clone (--reclone). */
  reclone?: string[];
  /** Bound on waiting for standbys to stream. */
  streamingTimeoutMs?: number;
  emit: Emit;
}

export async function applyCluster(inventory: Inventory, playbook: Playbook, options: ApplyOptions): Promise<RunSummary> {
  ensureReplicationPassword(inventory);
  const cluster: ClusterContext = { reclone: options.reclone ?? [] };
  const secrets = inventory.secrets.map((s) => s.reveal());
  let replication: Row[] | undefined;
  const reached = await connectAll(inventory, inventory.hosts.filter((h) => !options.limit || options.limit.includes(h.name)), {
    acceptNewHostKeys: options.acceptNewHostKeys ?? false,
  });
  try {
    const summary = await runPlaybook(inventory, playbook, {
      ...options,
      secrets,
      cluster,
      reached,
      afterPlay: (_play, registered) => {
        const states = [...registered.entries()].filter(([, r]) => r.pgprov_data_directory);
        if (states.length > 0 && states.length === registered.size) {
          const data = new Map(states.map(([host, r]) => [host, (r.pgprov_data_directory as { value?: DataDirectory }).value]));
          const assessment = assessCluster(inventory, data, cluster.reclone);
          if (assessment.problems.length) throw new PgprovError(`refusing to change anything: ${assessment.problems.join("\n")}`);
          if (assessment.primarySystemIdentifier) cluster.primarySystemIdentifier = assessment.primarySystemIdentifier;
        }
        const fromPrimary = registered.get(inventory.primary.name);
        const control = fromPrimary?.pgprov_primary_control as { value?: { system_identifier?: string } } | undefined;
        if (control?.value?.system_identifier) cluster.primarySystemIdentifier = control.value.system_identifier;
        const rows = fromPrimary?.pgprov_replication as { value?: Row[] } | undefined;
        if (rows?.value) replication = rows.value;
      },
    });
    if (replication && !summary.failed) {
      const primary = reached.find((r) => r.host === inventory.primary);
      const standbys = inventory.standbys.map((h) => h.name);
      const rows = options.check || !primary || !("connection" in primary)
        ? replication
        : await waitForStreaming(primary.connection, inventory, standbys, replication, options.streamingTimeoutMs ?? 120_000);
      const report = standbys.map((name) => standbyReport(name, rows));
      options.emit({ type: "replication", primary: inventory.primary.name, standbys: report });
      for (const s of report) {
        if (s.state !== "streaming" && !options.check) {
          summary.failed = true;
          options.emit({
            type: "failure",
            host: s.host,
            message: `${s.host} does not stream from ${inventory.primary.name} (${s.state}) after waiting ${(options.streamingTimeoutMs ?? 120_000) / 1000} s; see its log: journalctl -u postgresql@*`,
          });
        }
      }
    }
    options.emit({ type: "recap", hosts: summary.hosts });
    return summary;
  } finally {
    closeAll(reached);
  }
}

function standbyReport(name: string, rows: Row[]): StandbyReplication {
  const row = rows.find((r) => r.application_name === name);
  if (!row) return { host: name, state: "absent" };
  return {
    host: name,
    state: String(row.state),
    lagBytes: Number(row.lag_bytes ?? 0),
    lagSeconds: Number(row.lag_seconds ?? 0),
    ...(row.slot_name ? { slot: String(row.slot_name), slotActive: row.slot_active === true } : {}),
  };
}

/** Polls the primary until every standby streams, or the bound is reached. */
async function waitForStreaming(
  connection: HostConnection,
  inventory: Inventory,
  standbys: string[],
  first: Row[],
  timeoutMs: number,
): Promise<Row[]> {
  const streaming = (rows: Row[]) => standbys.every((name) => rows.some((r) => r.application_name === name && r.state === "streaming"));
  if (streaming(first)) return first;
  const postgres = await HostPostgres.connect(connection, { port: inventory.postgresql.port });
  try {
    const deadline = Date.now() + timeoutMs;
    let rows = first;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      rows = await postgres.query(REPLICATION_QUERY);
      if (streaming(rows)) return rows;
    }
    return rows;
  } finally {
    await postgres.close();
  }
}
