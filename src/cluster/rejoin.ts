/**
 * `pgprov rejoin HOST`: a former primary (after a failover, say) back as a standby of the
 * current primary. Its data must be this cluster's (same system identifier) and not ahead of
 * the primary; pg_rewind then undoes what it wrote after the timelines parted, which needs data
 * checksums or wal_log_hints (pgprov sets both). If the rewind cannot work, rejoin stops, and
 * --reclone replaces the data with a fresh clone instead.
 */
import type { Emit } from "../engine/events.js";
import { conninfoAuth } from "../engine/variables.js";
import { PgprovError } from "../errors.js";
import type { Inventory } from "../inventory/inventory.js";
import { shellQuote } from "../modules/shell.js";
import type { Playbook } from "../playbook/playbook.js";
import { applyCluster } from "./apply.js";
import { ClusterOperation } from "./operations.js";

export interface RejoinOptions {
  reclone: boolean;
  acceptNewHostKeys?: boolean;
  log: (line: string) => void;
  emit: Emit;
}

export async function rejoin(inventory: Inventory, playbook: Playbook, hostName: string, options: RejoinOptions): Promise<{ failed: boolean; rewound: boolean }> {
  const host = inventory.hosts.find((h) => h.name === hostName);
  if (!host) throw new PgprovError(`no host named "${hostName}" in ${inventory.file}`);
  if (host.role !== "standby") throw new PgprovError(`${host.name} is the inventory's primary; rejoin brings a former primary back as a standby`);
  const primary = inventory.primary;
  const op = await ClusterOperation.open(inventory, options);
  try {
    const [p] = (await op.trySql(primary, "select pg_is_in_recovery() as in_recovery, system_identifier::text as sysid from pg_control_system()")) ?? [];
    if (p?.in_recovery !== false) throw new PgprovError(`${primary.name}, the inventory's primary, is not a running primary; see \`pgprov status\``);
    const primaryData = await op.dataDirectory(primary);
    const data = await op.dataDirectory(host);
    op.step(`${host.name}: system identifier ${data.systemIdentifier ?? "none"}, timeline ${data.timeline ?? "?"}; ${primary.name}: timeline ${primaryData.timeline ?? "?"}`);

    let rewound = false;
    if (data.systemIdentifier !== p.sysid) {
      if (!options.reclone) throw new PgprovError(`${host.name} does not hold this cluster's data (system identifier ${data.systemIdentifier ?? "none"}, ${primary.name}'s is ${String(p.sysid)}); pg_rewind cannot help. Rerun with --reclone to replace it with a clone`);
    } else if (data.timeline !== undefined && primaryData.timeline !== undefined && data.timeline > primaryData.timeline) {
      throw new PgprovError(`${host.name} is on timeline ${data.timeline}, ahead of ${primary.name} (timeline ${primaryData.timeline}): it may hold the newest writes; pgprov will not rewind it`);
    } else if (!data.standbySignal || data.running) {
      // It came back writable (or is stopped as a primary): stop it, then rewind onto the primary.
      if (data.running) {
        await op.stopServer(host);
        op.step(`stopped ${host.name}`);
      }
      // pg_rewind reads the source's timeline from its pg_control, which a recent promotion
      // updates only at the next checkpoint (pg_rewind's documentation): make it now.
      await op.sql(primary, "checkpoint");
      op.step(`checkpoint on ${primary.name}, so that its pg_control shows its timeline`);
      const paths = await op.pathsOf(host);
      const source = [`host=${primary.address} port=${inventory.postgresql.port} user=${inventory.replication.user} dbname=postgres`, conninfoAuth(paths.version)].filter(Boolean).join(" ");
      const rewind = await op.connection(host).run(
        [
          `runuser -u postgres -- env PGPASSFILE=/var/lib/postgresql/.pgprov.pgpass ${shellQuote(paths.bin_directory)}/pg_rewind`,
          `--target-pgdata=${shellQuote(paths.data_directory)} --config-file=${shellQuote(`${paths.config_directory}/postgresql.conf`)}`,
          `--source-server=${shellQuote(source)}`,
        ].join(" "),
        { timeoutMs: 3_600_000, purpose: `pg_rewind of ${host.name}` },
      );
      if (rewind.code !== 0) {
        const why = rewind.stderr.trim().split("\n").slice(-3).join(" / ");
        if (!options.reclone) throw new PgprovError(`pg_rewind of ${host.name} failed (exit ${rewind.code}): ${why}. Its data is as it was; rerun with --reclone to replace it with a clone`);
        op.step(`pg_rewind failed (${why}); replacing the data with a clone, as --reclone asked`);
      } else {
        rewound = true;
        op.step(`rewound ${host.name} onto ${primary.name}: ${rewind.stdout.trim().split("\n").at(-1) ?? "done"}`);
        await op.writeStandbySignal(host);
      }
    } else {
      op.step(`${host.name} is already a standby of this cluster`);
    }

    // The cluster playbook configures it as a standby, starts (and enables) it, and checks it streams.
    const summary = await applyCluster(inventory, playbook, {
      reached: op.connections,
      ...(options.reclone && !rewound ? { reclone: [host.name] } : {}),
      emit: options.emit,
    });
    op.step(summary.failed ? "the cluster playbook failed: see above" : `${host.name} streams from ${primary.name}`);
    return { failed: summary.failed, rewound };
  } finally {
    await op.close();
  }
}
