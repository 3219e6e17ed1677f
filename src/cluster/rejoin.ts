/**
 * `pgprov rejoin HOST`: a former primary (after a failover, say) back as a standby of the
 * current primary. Its data must be this cluster's (same system identifier), and its position
 * provably behind on the primary's timeline history (timeline.ts); pg_rewind then undoes what it
 * wrote after the timelines parted, which needs data checksums or wal_log_hints (pgprov sets
 * both). What it wrote there are committed transactions the primary never received: rejoin undoes
 * them only with --discard-diverged. If the histories parted elsewhere, or the rewind cannot
 * work, rejoin stops, and --reclone replaces the data with a fresh clone instead.
 */
import { hostname } from "node:os";
import { lastLines } from "../common/text.js";
import { PgprovError } from "../common/errors.js";
import { conninfoSecurity, tlsFiles } from "../postgres/debian.js";
import type { Host, Inventory } from "../inventory/inventory.js";
import { sqlLiteral } from "../common/sql.js";
import { shellQuote } from "../common/shell.js";
import type { ClusterPlaybook as Playbook } from "./playbook.js";
import { applyCluster } from "./apply.js";
import { FENCE_MARKER, HOST_STATE_DIRECTORY, rewindMark, unfinishedRewind, wasWritable } from "../postgres/data-directory.js";
import { ClusterOperation, type OperationOptions } from "./operations.js";
import { judgeRejoin, type RejoinVerdict } from "./timeline.js";

export interface RejoinOptions extends OperationOptions {
  reclone: boolean;
  /** Consent to a rewind that undoes WAL the host wrote after the primary's history left its timeline. */
  discardDiverged?: boolean;
}

/** How rejoin brings the host back: its data rewound, replaced by a clone, or kept (a standby already). */
export type RejoinMethod = "rewind" | "clone" | "configure";

/** Read on the primary through SSH, not over the network: whether it serves pgprov's certificate. */
async function primaryServesCa(op: ClusterOperation, primary: Host): Promise<boolean> {
  const certFile = tlsFiles(await op.pathsOf(primary)).cert_file;
  const [row] = await op.sql(primary, `select current_setting('ssl') = 'on' and current_setting('ssl_cert_file') = ${sqlLiteral(certFile)} as served`);
  return row?.served === true;
}

/** The cluster's CA certificate (public) on the host, where conninfoSecurity's sslrootcert names it. */
async function putCaCertificate(op: ClusterOperation, host: Host, caFile: string, pem: string): Promise<void> {
  const file = shellQuote(caFile);
  await op.shell(
    host,
    [`t=$(mktemp ${file}.XXXXXX)`, `cat > "$t" <<'PGPROV_CA_PEM'`, pem.trim(), "PGPROV_CA_PEM", `chmod 0644 "$t" && mv -f "$t" ${file}`].join("\n"),
    "writing the cluster's CA certificate, for pg_rewind to verify the primary",
  );
}

/** The boot check the cluster playbook installs (templates/boot-fence.sh.hbs), and the drop-in that runs it. */
const BOOT_CHECK = "/usr/local/lib/pgprov/boot-fence";
const BOOT_CHECK_DROP_IN = "/etc/systemd/system/postgresql@.service.d/pgprov-boot-fence.conf";
/** The rewind script's exit code when the host's boot check does not know the rewind mark. */
const NO_BOOT_CHECK = 97;

/** Undefined after a dry run: every check passed, and nothing was changed. */
export async function rejoin(inventory: Inventory, playbook: Playbook, hostName: string, options: RejoinOptions): Promise<{ host: string; primary: string; method: RejoinMethod; failed: boolean } | undefined> {
  const host = inventory.hosts.find((h) => h.name === hostName);
  if (!host) throw new PgprovError(`no host named "${hostName}" in ${inventory.file}`);
  if (host.role !== "standby") throw new PgprovError(`${host.name} is the inventory's primary; rejoin brings a former primary back as a standby`);
  const primary = inventory.primary;
  const op = await ClusterOperation.open(inventory, "rejoin", options);
  try {
    const [p] = (await op.trySql(primary, "select pg_is_in_recovery() as in_recovery, system_identifier::text as sysid from pg_control_system()")) ?? [];
    if (p?.in_recovery !== false) throw new PgprovError(`${primary.name}, the inventory's primary, is not a running primary; see \`pgprov status\``);
    const primaryData = await op.dataDirectory(primary);
    const data = await op.dataDirectory(host);
    op.step(`${host.name}: system identifier ${data.systemIdentifier ?? "none"}, timeline ${data.timeline ?? "?"}; ${primary.name}: timeline ${primaryData.timeline ?? "?"}`);

    // A host that ran as a primary (or runs now) is rewound; a stopped standby only reconfigured.
    // A fenced one ran as a primary, though it may have run read-only since (a reboot).
    const formerPrimary = wasWritable(data) || data.fenced !== undefined;
    const mustRewind = data.running || !data.standbySignal || formerPrimary;
    if (data.fenced) op.step(`${host.name}: ${data.fenced}`);
    let verdict: RejoinVerdict | undefined;
    if (data.rewindUnfinished !== undefined) op.step(`${host.name}: a pg_rewind did not finish (${data.rewindUnfinished})`);
    else if (data.systemIdentifier === p.sysid) {
      // pg_rewind trusts timeline numbers: the histories must show the host behind on the primary's.
      const hostEnd = await op.endOfWal(host);
      const primaryEnd = await op.endOfWal(primary);
      verdict = judgeRejoin(
        { name: host.name, timeline: data.timeline ?? 1, history: data.history ?? [], wasWritable: formerPrimary, ...(hostEnd ? { endLsn: hostEnd.lsn, endAtLeast: hostEnd.atLeast } : {}) },
        { name: primary.name, timeline: primaryData.timeline ?? 1, history: primaryData.history ?? [], ...(primaryEnd ? { endLsn: primaryEnd.lsn } : {}) },
      );
      op.step(verdict.ok ? verdict.detail : `${host.name} is not behind on ${primary.name}'s history: ${verdict.reason}`);
    }
    let method: RejoinMethod;
    let why: string;
    if (data.rewindUnfinished !== undefined) {
      // Neither its pg_control nor its timelines can be trusted on a mix of two servers' files.
      if (!options.reclone) {
        throw new PgprovError(
          `${host.name} ${unfinishedRewind(data.rewindUnfinished)}, which no second rewind can be trusted on. ` +
            `Rerun with --reclone to replace it with a clone of ${primary.name}`,
        );
      }
      [method, why] = ["clone", `replace the data an unfinished pg_rewind left on ${host.name} with a clone of ${primary.name}, as --reclone asked`];
    } else if (data.systemIdentifier !== p.sysid) {
      if (!options.reclone) throw new PgprovError(`${host.name} does not hold this cluster's data (system identifier ${data.systemIdentifier ?? "none"}, ${primary.name}'s is ${String(p.sysid)}); pg_rewind cannot help. Rerun with --reclone to replace it with a clone`);
      [method, why] = ["clone", `replace ${host.name}'s data (another cluster's) with a clone of ${primary.name}, as --reclone asked`];
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
      [method, why] = ["clone", `replace ${host.name}'s data with a clone of ${primary.name}, as --reclone asked`];
    } else if (mustRewind && options.reclone) {
      // The clone (pg_standby, in the cluster playbook) replaces the data, the fence with it.
      [method, why] = ["clone", `replace ${host.name}'s data with a clone of ${primary.name} instead of rewinding it, as --reclone asked`];
    } else if (mustRewind || (verdict && !verdict.ok)) {
      const discarding = verdict && !verdict.ok ? `, although it undoes what ${host.name} wrote after the fork, as --discard-diverged asked` : "";
      [method, why] = ["rewind", `${data.running ? `stop ${host.name}, then ` : ""}rewind it onto ${primary.name} with pg_rewind${discarding}`];
    } else {
      [method, why] = ["configure", `keep ${host.name}'s data: it is already a standby of this cluster`];
    }
    const proceed = await op.proceed(
      { host: host.name, primary: primary.name, method, running: data.running, fenced: data.fenced !== undefined, ...(data.timeline !== undefined ? { timeline: data.timeline } : {}) },
      [why, `run the cluster playbook: ${host.name} configured as a standby of ${primary.name}${method === "clone" ? " (its data replaced by a clone)" : ""}, started, and checked to stream`],
    );
    if (!proceed) return undefined;

    if (method === "clone") {
      op.step(`replacing ${host.name}'s data with a clone of ${primary.name}, as --reclone asked`);
    } else if (method === "rewind") {
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
      const caFile = inventory.tls.enabled ? tlsFiles(paths).ca_file : undefined;
      const servesCa = caFile ? await primaryServesCa(op, primary) : false;
      if (caFile && servesCa) {
        // Never without verification once the primary serves pgprov's certificate: a host that
        // lacks the CA (a failover's old primary, left out of the run that brought TLS) gets it.
        if (!inventory.tls.authority) {
          throw new PgprovError(
            `${primary.name} serves the cluster's certificate, but this machine has no copy of the cluster's CA (${inventory.tls.caFiles.cert}): ` +
              `pg_rewind will not connect to it unverified. Run rejoin where the inventory's .pgprov/ directory is`,
          );
        }
        await putCaCertificate(op, host, caFile, inventory.tls.authority.certPem);
      } else if (caFile) {
        op.step(`${primary.name} does not serve the cluster's certificate yet (a cluster made before TLS): pg_rewind connects as its replication does today, without TLS; the cluster playbook that follows turns TLS on`);
      }
      // pg_rewind verifies the primary against the cluster's CA once the primary serves pgprov's
      // certificate (the CA was put on the host above); before that (a cluster made before TLS,
      // whose rejoin comes before the apply that turns TLS on) it connects as replication does.
      const security = conninfoSecurity(paths.version, servesCa ? caFile : undefined);
      const source = [`host=${primary.address} port=${inventory.postgresql.port} user=${inventory.replication.user} dbname=postgres`, security].filter(Boolean).join(" ");
      const data_ = shellQuote(paths.data_directory);
      const markPath = rewindMark(paths.data_directory);
      const mark = shellQuote(markPath);
      const note = `pg_rewind onto ${primary.name} by pgprov rejoin from ${hostname()}, started ${new Date().toISOString()}`;
      // The mark goes where pg_rewind cannot reach (rewindMark) first: pg_rewind deletes what the
      // source lacks in the data directory (standby.signal and FENCE_MARKER too), and however it
      // stops part-way (a failure, the bound below, a lost connection) the mark stays, so the mix
      // it leaves never starts. That needs a boot check that knows the mark (an older pgprov's
      // does not): without one, no rewind. standby.signal in the same script as pg_rewind, not a
      // round trip later: rewound data that started without it would end recovery writable.
      // Rewound (or found with nothing to rewind), its data is on the primary's history: fence
      // and mark go. LC_ALL=C: rewindBegan reads pg_rewind's messages, which are translated.
      const script = [
        `{ grep -qF -- ${mark} ${BOOT_CHECK} && [ -f ${BOOT_CHECK_DROP_IN} ]; } || { echo "no boot check that knows ${markPath}" >&2; exit ${NO_BOOT_CHECK}; }`,
        `&& install -d -m 0700 ${HOST_STATE_DIRECTORY} && printf '%s\\n' ${shellQuote(note)} > ${mark} && sync ${mark} &&`,
        `runuser -u postgres -- env LC_ALL=C PGPASSFILE=/var/lib/postgresql/.pgprov.pgpass ${shellQuote(paths.bin_directory)}/pg_rewind`,
        `--target-pgdata=${data_} --config-file=${shellQuote(`${paths.config_directory}/postgresql.conf`)}`,
        `--source-server=${shellQuote(source)}`,
        `&& runuser -u postgres -- touch ${shellQuote(`${paths.data_directory}/standby.signal`)}`,
        `&& rm -f ${shellQuote(`${paths.data_directory}/${FENCE_MARKER}`)}`,
        `&& sync ${data_} && rm -f ${mark}`,
      ].join(" ");
      let rewind;
      try {
        rewind = await op.connection(host).run(script, { timeoutMs: 3_600_000, purpose: `pg_rewind of ${host.name}` });
      } catch (e) {
        throw new PgprovError(
          `pg_rewind of ${host.name} did not finish: ${(e as Error).message}. ${host.name}'s data may be a mix of two servers' files: ` +
            `it is marked (${markPath}), will not start, and apply refuses it; rerun with --reclone to replace it with a clone of ${primary.name}`,
        );
      }
      if (rewind.code === NO_BOOT_CHECK) {
        throw new PgprovError(
          `${host.name}'s boot check (${BOOT_CHECK}) is an older pgprov's, which would let the data of a rewind that stopped part-way start: no rewind without it. ` +
            `Rerun with --reclone to replace ${host.name}'s data with a clone of ${primary.name} (its data is as it was)`,
        );
      }
      if (rewind.code !== 0) {
        const why = lastLines(rewind.stderr.trim(), 3).join(" / ");
        if (!rewindBegan(rewind.stderr)) {
          // It stopped at its own checks, before writing anything: the mark has nothing to guard.
          await op.shell(host, `rm -f ${mark}`, "removing the rewind mark");
          throw new PgprovError(`pg_rewind of ${host.name} failed (exit ${rewind.code}) before it changed anything: ${why}. Its data is as it was, the server stopped; rerun with --reclone to replace it with a clone`);
        }
        throw new PgprovError(
          `pg_rewind of ${host.name} failed (exit ${rewind.code}) after it had begun rewriting the data directory: ${why}. Its data may be a mix of two servers' files and cannot be trusted: ` +
            `it is marked (${markPath}), will not start, and apply refuses it. Rerun with --reclone to replace it with a clone of ${primary.name}`,
        );
      }
      op.step(`rewound ${host.name} onto ${primary.name}: ${rewind.stdout.trim().split("\n").at(-1) ?? "done"}`);
    } else {
      op.step(`${host.name} is already a standby of this cluster`);
    }

    // The cluster playbook configures it as a standby, starts (and enables) it, and checks it streams.
    const summary = await applyCluster(inventory, playbook, {
      reached: op.connections,
      ...(method === "clone" || (options.reclone && method === "configure") ? { reclone: [host.name] } : {}),
      emit: options.emit,
    });
    op.step(summary.failed ? "the cluster playbook failed: see above" : `${host.name} streams from ${primary.name}`);
    return { host: host.name, primary: primary.name, method, failed: summary.failed };
  } finally {
    await op.close();
  }
}

/**
 * Whether pg_rewind's output shows it got past its checks to the rewind itself, after which it
 * writes into the target's data directory. Its log line before the first write (PostgreSQL 13
 * to 17): "rewinding from last common checkpoint at ...".
 */
export function rewindBegan(output: string): boolean {
  return /rewinding from last common checkpoint/.test(output);
}
