/**
 * `pgprov apply` for a cluster: the playbook run by the engine, with the safety checks and the
 * streaming verification around it. The bundled playbook reads each host's data directory in its
 * first play (register: pgprov_data_directory): when every host has, the rules of safety.ts decide
 * whether the run may go on. Its last play reads pg_stat_replication on the primary
 * (register: pgprov_replication): standbys that do not stream yet are waited for, with a bound.
 */
import type { Emit } from "../engine/events.js";
import { Redactor } from "../engine/redact.js";
import { hostsUsed, runPlaybook, type RunOptions, type RunSummary } from "../engine/run.js";
import type { ClusterContext } from "../engine/variables.js";
import { PgprovError } from "../errors.js";
import { ensureReplicationPassword, type Inventory } from "../inventory/inventory.js";
import { REPLICATION_QUERY, standbyReplication } from "../modules/pg/read.js";
import type { Playbook } from "../playbook/playbook.js";
import { closeAll, connectAll, type Reached } from "../transport/fleet.js";
import { HostPostgres, type Row } from "../transport/postgres.js";
import type { HostConnection } from "../transport/ssh.js";
import type { DataDirectory } from "./data-directory.js";
import { assessCluster } from "./safety.js";
import { askStandby } from "./standby-report.js";

/** The registers of the bundled playbook that apply's checks read. */
const DATA_DIRECTORY = "pgprov_data_directory";

export interface ApplyOptions extends Omit<RunOptions, "cluster" | "afterPlay" | "secrets" | "emit" | "reached"> {
  /** Connections a cluster operation already holds (with their locks); otherwise apply opens its own. */
  reached?: Reached[];
  acceptNewHostKeys?: boolean;
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
  const redactor = new Redactor(secrets);
  const emit: Emit = (e) => options.emit(redactor.value(e));
  let replication: Row[] | undefined;
  // The cluster's members: every host but those a cluster operation excluded (a failed primary
  // it fenced or could not reach). The safety reads cover all of them, whatever --limit says.
  const members = inventory.hosts.filter((h) => !options.exclude?.includes(h.name));
  // Connections a cluster operation already holds (with their locks) are used, and left open;
  // otherwise exactly the hosts the run touches are connected.
  const used = hostsUsed(inventory, playbook, options);
  const reached =
    options.reached?.filter((r) => used.includes(r.host)) ??
    (await connectAll(inventory, used, { acceptNewHostKeys: options.acceptNewHostKeys ?? false, exclusive: !options.check }));
  try {
    const summary = await runPlaybook(inventory, playbook, {
      ...options,
      secrets,
      cluster,
      reached,
      afterPlay: (play, registered) => {
        const registers = new Set(play.tasks.map((t) => t.register));
        if (registers.has(DATA_DIRECTORY)) {
          // Fail closed: a host whose data directory was not read could be a second primary.
          const unread = members.filter((h) => !(registered.get(h.name)?.[DATA_DIRECTORY] as { value?: unknown } | undefined)?.value);
          if (unread.length) throw new PgprovError(`refusing to change anything: the data directory of ${unread.map((h) => h.name).join(", ")} could not be read`);
          const data = new Map(members.map((h) => [h.name, (registered.get(h.name)![DATA_DIRECTORY] as { value: DataDirectory }).value]));
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
      const standbys = inventory.standbys.filter((h) => members.includes(h)).map((h) => h.name);
      const rows = options.check || !primary || !("connection" in primary)
        ? replication
        : await waitForStreaming(primary.connection, inventory, standbys, replication, options.streamingTimeoutMs ?? 120_000);
      const report = standbys.map((name) => standbyReplication(name, rows));
      emit({ type: "replication", primary: inventory.primary.name, standbys: report });
      for (const s of report) {
        if (s.state !== "streaming" && !options.check) {
          summary.failed = true;
          // What the standby itself says shows the cause (a primary_conninfo elsewhere, a refused password...).
          const standby = reached.find((r) => r.host.name === s.host);
          const says = standby && "connection" in standby ? await askStandby(standby.connection, inventory.postgresql.port) : "it was not reached to ask why";
          emit({
            type: "failure",
            host: s.host,
            message: `${s.host} does not stream from ${inventory.primary.name} (${s.state}) after waiting ${(options.streamingTimeoutMs ?? 120_000) / 1000} s: ${says}`,
          });
        }
      }
    }
    emit({ type: "recap", hosts: summary.hosts });
    return summary;
  } finally {
    if (!options.reached) closeAll(reached);
  }
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
