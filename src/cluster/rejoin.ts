/**
 * `pgprov rejoin HOST`: a former primary (after a failover, say) back as a standby of the
 * current primary. Its data must be this cluster's (same system identifier), and its position
 * provably behind on the primary's timeline history (timeline.ts); pg_rewind then undoes what it
 * wrote after the timelines parted, which needs data checksums or wal_log_hints (pgprov sets
 * both). What it wrote there are committed transactions the primary never received: rejoin undoes
 * them only with --discard-diverged. If the histories parted elsewhere, or the rewind cannot
 * work, rejoin stops, and --reclone replaces the data with a fresh clone instead.
 */
import type { ClusterEmit as Emit } from "./events.js";
import { PgprovError } from "../common/errors.js";
import { conninfoSecurity, tlsFiles } from "../postgres/debian.js";
import type { Inventory } from "../inventory/inventory.js";
import { shellQuote } from "../common/shell.js";
import type { ClusterPlaybook as Playbook } from "./playbook.js";
import { applyCluster } from "./apply.js";
import { FENCE_MARKER, wasWritable } from "../postgres/data-directory.js";
import { ClusterOperation } from "./operations.js";
import { judgeRejoin, type RejoinVerdict } from "./timeline.js";

export interface RejoinOptions {
  reclone: boolean;
  /** Consent to a rewind that undoes WAL the host wrote after the primary's history left its timeline. */
  discardDiverged?: boolean;
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
    // A host that ran as a primary (or runs now) is rewound; a stopped standby only reconfigured.
    // A fenced one ran as a primary, though it may have run read-only since (a reboot).
    const formerPrimary = wasWritable(data) || data.fenced !== undefined;
    const mustRewind = data.running || !data.standbySignal || formerPrimary;
    if (data.fenced) op.step(`${host.name}: ${data.fenced}`);
    let verdict: RejoinVerdict | undefined;
    if (data.systemIdentifier === p.sysid) {
      // pg_rewind trusts timeline numbers: the histories must show the host behind on the primary's.
      const hostEnd = await op.endOfWal(host);
      const primaryEnd = await op.endOfWal(primary);
      verdict = judgeRejoin(
        { name: host.name, timeline: data.timeline ?? 1, history: data.history ?? [], wasWritable: formerPrimary, ...(hostEnd ? { endLsn: hostEnd.lsn, endAtLeast: hostEnd.atLeast } : {}) },
        { name: primary.name, timeline: primaryData.timeline ?? 1, history: primaryData.history ?? [], ...(primaryEnd ? { endLsn: primaryEnd.lsn } : {}) },
      );
      op.step(verdict.ok ? verdict.detail : `${host.name} is not behind on ${primary.name}'s history: ${verdict.reason}`);
    }
    if (data.systemIdentifier !== p.sysid) {
      if (!options.reclone) throw new PgprovError(`${host.name} does not hold this cluster's data (system identifier ${data.systemIdentifier ?? "none"}, ${primary.name}'s is ${String(p.sysid)}); pg_rewind cannot help. Rerun with --reclone to replace it with a clone`);
    } else if (verdict && !verdict.ok && !(verdict.discardAllowed && options.discardDiverged && !options.reclone)) {
      if (!verdict.recloneAllowed) throw new PgprovError(verdict.reason);
      if (!options.reclone) {
        throw new PgprovError(
          `${verdict.reason}. pgprov will not rewind ${host.name} onto ${primary.name}; its data is as it was. ` +
            (verdict.discardAllowed
              ? `Save what only ${host.name} holds first (start it on its own, read-only, and dump what it wrote after the fork), then rerun with --discard-diverged to rewind it, undoing that WAL, or with --reclone to replace its data with a clone of ${primary.name}`
              : `Save what only ${host.name} holds, then rerun with --reclone to replace its data with a clone of ${primary.name}`),
        );
      }
      op.step(`replacing ${host.name}'s data with a clone of ${primary.name}, as --reclone asked`);
    } else if (mustRewind && options.reclone) {
      // The clone (pg_standby, in the cluster playbook) replaces the data, the fence with it.
      op.step(`replacing ${host.name}'s data with a clone of ${primary.name} instead of rewinding it, as --reclone asked`);
    } else if (mustRewind || (verdict && !verdict.ok)) {
      if (verdict && !verdict.ok) op.step(`rewinding ${host.name} although it undoes what it wrote after the fork, as --discard-diverged asked`);
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
      const security = conninfoSecurity(paths.version, inventory.tls.enabled ? tlsFiles(paths).ca_file : undefined);
      const source = [`host=${primary.address} port=${inventory.postgresql.port} user=${inventory.replication.user} dbname=postgres`, security].filter(Boolean).join(" ");
      // standby.signal in the same script as pg_rewind, not a round trip later: rewound data that
      // started without it would end recovery writable, on the primary's own timeline. Rewound
      // (or found with nothing to rewind), its data is on the primary's history: the fence goes.
      const rewind = await op.connection(host).run(
        [
          `runuser -u postgres -- env PGPASSFILE=/var/lib/postgresql/.pgprov.pgpass ${shellQuote(paths.bin_directory)}/pg_rewind`,
          `--target-pgdata=${shellQuote(paths.data_directory)} --config-file=${shellQuote(`${paths.config_directory}/postgresql.conf`)}`,
          `--source-server=${shellQuote(source)}`,
          `&& runuser -u postgres -- touch ${shellQuote(`${paths.data_directory}/standby.signal`)}`,
          `&& rm -f ${shellQuote(`${paths.data_directory}/${FENCE_MARKER}`)}`,
        ].join(" "),
        { timeoutMs: 3_600_000, purpose: `pg_rewind of ${host.name}` },
      );
      if (rewind.code !== 0) {
        const why = rewind.stderr.trim().split("\n").slice(-3).join(" / ");
        throw new PgprovError(`pg_rewind of ${host.name} failed (exit ${rewind.code}): ${why}. Its data is as it was; rerun with --reclone to replace it with a clone`);
      }
      rewound = true;
      op.step(`rewound ${host.name} onto ${primary.name}: ${rewind.stdout.trim().split("\n").at(-1) ?? "done"}`);
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
