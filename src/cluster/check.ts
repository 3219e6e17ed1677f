/**
 * `pgprov check`: is the cluster healthy, in a form monitoring understands. It reads each host
 * (SQL through SSH, `df` for free space), without taking the hosts' lock, then judges what it
 * read against the inventory's thresholds: each rule turns the reads into findings, one per host
 * and thing checked, each OK, WARNING, CRITICAL or UNKNOWN (Nagios's states and exit codes).
 * Reading and judging are apart so the judging is pure; a new check (a backup's age, say) is a
 * field of HostHealth read in readHost and one more rule in RULES, as the TLS certificates' expiry is.
 */
import { type Host, type Inventory, ownCaFiles, RENEW_CA_WITHIN_DAYS, type Role } from "../inventory/inventory.js";
import { delayMilliseconds, upstreamOf } from "../inventory/topology.js";
import type { CheckThresholds } from "../inventory/schema.js";
import { PgprovError, withoutHostPrefix } from "../common/errors.js";
import { shellQuote } from "../common/shell.js";
import { REPLICATION_QUERY, type StandbyReplication, standbyReplication } from "../postgres/read.js";
import { tlsFiles } from "../postgres/debian.js";
import { recoverySettingsSql, recoveryLeftovers } from "../postgres/overrides.js";
import { X509Certificate } from "node:crypto";
import { daysLeft, endText } from "../common/days.js";
import { ClusterOperation } from "./operations.js";
import { type ArchiverHealth, archiverHealth, archiverQuery, NO_BACKUPS } from "./backup-config.js";
import type { BackupStatus } from "./backup.js";

export type { ArchiverHealth };

export type CheckStatus = "ok" | "warning" | "critical" | "unknown";

/** Nagios's plugin exit codes. */
export const CHECK_EXIT: Record<CheckStatus, number> = { ok: 0, warning: 1, critical: 2, unknown: 3 };

/** Which status wins when findings are summed up: CRITICAL, then WARNING, then UNKNOWN, then OK. */
const PRECEDENCE: CheckStatus[] = ["critical", "warning", "unknown", "ok"];

export interface Finding {
  status: CheckStatus;
  /** What was checked: reachable, server, role, streaming, replay_lag, slot, archiving, disk_space, pending_restart, recovery_settings, versions, tls_certificate, tls_ca, backup_age, archive_gap, pgbackrest_check. */
  check: string;
  /** Undefined for a finding about the whole cluster. */
  host?: string;
  message: string;
  /** The measured number the thresholds were applied to (bytes, seconds, percent). */
  value?: number;
}

export interface SlotHealth {
  name: string;
  active: boolean;
  /** WAL the slot keeps (from its restart_lsn to the current position); undefined when it reserves none. */
  retainedBytes?: number;
}

export interface ServerHealth {
  inRecovery: boolean;
  /** "15.8". */
  version: string;
  /** A standby's WAL receiver status; undefined when none runs. */
  receiver?: string;
  pendingRestart: string[];
  /** recovery_target* and restore_command left in postgresql.auto.conf outside a restore (issue 11). */
  recoveryLeftovers?: string[];
  slots: SlotHealth[];
  /** On a writable server: its standbys as it sees them, and its archiver. */
  replication?: { rows: StandbyReplication[]; archiver: ArchiverHealth };
  /** On a standby: the cascading standbys that stream from it, as it sees them (issue 12). */
  downstreams?: StandbyReplication[];
}

export interface DiskSpace {
  /** The paths checked on this file system (the data directory, pg_wal). */
  paths: string[];
  mount: string;
  availableBytes: number;
  usedBytes: number;
}

/** What check read on one host. */
export interface HostHealth {
  host: string;
  /** What the inventory says. */
  role: Role;
  /** Why the host could not be reached over SSH: none of its own checks ran. */
  unreachable?: string;
  /** The standby it streams from, when not the primary (a cascading standby, issue 12). */
  upstream?: string;
  /** A delayed standby's apply_delay: its replay lag is that much on purpose. */
  applyDelaySeconds?: number;
  server?: ServerHealth | { error: string };
  disks?: DiskSpace[] | { error: string };
  /** With TLS on: the server's certificate (issue 10), read from its file, and the host's copy of the CA beside it. */
  tls?: { file: string; notAfter: string; ca?: { file: string; notAfter: string; fingerprint: string } | { file: string; error: string } } | { error: string };
}

const SERVER_QUERY = `select pg_is_in_recovery() as in_recovery, current_setting('server_version') as version,
  (select status from pg_stat_wal_receiver) as receiver,
  (select string_agg(name, ',' order by name) from pg_settings where pending_restart) as pending_restart,
  ${recoverySettingsSql()}`;

/** On a standby too: a slot there (a former primary's) holds WAL on it. */
const SLOTS_QUERY = `select slot_name, active,
  pg_wal_lsn_diff(case when pg_is_in_recovery() then pg_last_wal_replay_lsn() else pg_current_wal_lsn() end, restart_lsn)::bigint as retained_bytes
  from pg_replication_slots order by slot_name`;

/** Reads every host in parallel; what cannot be read is a value, not an error. */
export async function readHealth(inventory: Inventory, options: { acceptNewHostKeys?: boolean } = {}): Promise<HostHealth[]> {
  const op = await ClusterOperation.open(inventory, undefined, { ...options, emit: () => {} });
  try {
    return await Promise.all(inventory.hosts.map((h) => readHost(op, h)));
  } finally {
    await op.close();
  }
}

async function readHost(op: ClusterOperation, host: Host): Promise<HostHealth> {
  const upstream = upstreamOf(op.inventory.hosts, host);
  const delay = host.applyDelay ? delayMilliseconds(host.applyDelay) : undefined;
  const base = {
    host: host.name,
    role: host.role,
    ...(upstream && upstream.role !== "primary" ? { upstream: upstream.name } : {}),
    ...(delay ? { applyDelaySeconds: delay / 1000 } : {}),
  };
  if (!op.reachable(host)) return { ...base, unreachable: op.unreachableReason(host) };
  const [server, disks, tls] = await Promise.all([readServer(op, host), readDisks(op, host), op.inventory.tls.enabled ? readCertificate(op, host) : undefined]);
  return { ...base, server, disks, ...(tls ? { tls } : {}) };
}

/**
 * The server's certificate's end, from its file (public: mode 0644), and the host's copy of the CA
 * (ssl_ca_file, primary_conninfo's sslrootcert), in the same command: checked here with Node's X509Certificate.
 */
async function readCertificate(op: ClusterOperation, host: Host): Promise<HostHealth["tls"]> {
  let file = "the server's certificate";
  try {
    const files = tlsFiles(await op.pathsOf(host));
    file = files.cert_file;
    const out = await op.shell(
      host,
      `cat -- ${shellQuote(file)} && echo ${CA_MARK} && { cat -- ${shellQuote(files.ca_file)} 2>/dev/null || echo ${CA_MISSING}; }`,
      "reading the server's TLS certificate and the CA's copy",
      30_000,
    );
    const [pem = "", caPem = ""] = out.split(`${CA_MARK}\n`);
    const first = firstCertificate(pem);
    if (!first) return { error: `${file} holds no certificate Node can read` };
    const ca = caPem.trim() === CA_MISSING ? { file: files.ca_file, error: "it is missing (or unreadable)" } : caCopy(files.ca_file, caPem);
    return { file, notAfter: new Date(first.validTo).toISOString(), ca };
  } catch (e) {
    if (!(e instanceof PgprovError)) throw e;
    return { error: `${file} could not be read: ${withoutHostPrefix(e.message)}` };
  }
}

const CA_MARK = "--pgprov-ca--";
const CA_MISSING = "--pgprov-ca-missing--";

function firstCertificate(pem: string): X509Certificate | undefined {
  const first = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/)?.[0];
  try {
    return first ? new X509Certificate(first) : undefined;
  } catch {
    return undefined;
  }
}

function caCopy(file: string, pem: string): NonNullable<Extract<HostHealth["tls"], { file: string }>["ca"]> {
  const cert = firstCertificate(pem);
  return cert ? { file, notAfter: new Date(cert.validTo).toISOString(), fingerprint: cert.fingerprint256 } : { file, error: "it holds no certificate Node can read" };
}

async function readServer(op: ClusterOperation, host: Host): Promise<ServerHealth | { error: string }> {
  const read = await op.trySqlResult(host, SERVER_QUERY);
  if ("error" in read) return read;
  const r = read.rows[0]!;
  const slots = await op.trySqlResult(host, SLOTS_QUERY);
  if ("error" in slots) return slots;
  const server: ServerHealth = {
    inRecovery: r.in_recovery === true,
    version: String(r.version).split(" ")[0]!,
    ...(r.receiver ? { receiver: String(r.receiver) } : {}),
    pendingRestart: r.pending_restart ? String(r.pending_restart).split(",") : [],
    recoveryLeftovers: [...new Set(recoveryLeftovers(r).map((x) => x.name))].sort(),
    slots: slots.rows.map((s) => ({
      name: String(s.slot_name),
      active: s.active === true,
      ...(s.retained_bytes === null || s.retained_bytes === undefined ? {} : { retainedBytes: Number(s.retained_bytes) }),
    })),
  };
  if (server.inRecovery) {
    const downstreams = await op.trySqlResult(host, REPLICATION_QUERY);
    if ("error" in downstreams) return downstreams;
    if (downstreams.rows.length) server.downstreams = downstreams.rows.map((row) => standbyReplication(String(row.application_name), downstreams.rows));
    return server;
  }
  const [replication, archiver] = await Promise.all([op.trySqlResult(host, REPLICATION_QUERY), op.trySqlResult(host, archiverQuery(op.inventory.backup?.archiveTimeout ?? 0))]);
  for (const q of [replication, archiver]) if ("error" in q) return q;
  const rows = "rows" in replication ? replication.rows : [];
  const a = "rows" in archiver ? archiver.rows[0]! : {};
  server.replication = {
    rows: rows.map((row) => standbyReplication(String(row.application_name), rows)),
    archiver: archiverHealth(a),
  };
  return server;
}

/** Free space under the data directory and pg_wal (a link to another file system, maybe): from files, so read when the server is down too. */
async function readDisks(op: ClusterOperation, host: Host): Promise<DiskSpace[] | { error: string }> {
  try {
    const data = (await op.pathsOf(host)).data_directory;
    const paths = [data, `${data}/pg_wal/`];
    const out = await op.shell(host, `LC_ALL=C df -P -B1 -- ${paths.map(shellQuote).join(" ")} | tail -n +2`, "reading free space (df)", 30_000);
    return parseDf(out, [data, `${data}/pg_wal`]);
  } catch (e) {
    if (!(e instanceof PgprovError)) throw e;
    return { error: withoutHostPrefix(e.message) };
  }
}

/** `df -P -B1` lines, one per path in order; paths on one file system are reported together. */
export function parseDf(out: string, paths: string[]): DiskSpace[] {
  const byMount = new Map<string, DiskSpace>();
  out
    .trim()
    .split("\n")
    .forEach((line, i) => {
      const f = line.trim().split(/\s+/);
      if (f.length < 6 || paths[i] === undefined) return;
      const mount = f.slice(5).join(" ");
      const seen = byMount.get(mount);
      if (seen) seen.paths.push(paths[i]!);
      else byMount.set(mount, { paths: [paths[i]!], mount, usedBytes: Number(f[2]), availableBytes: Number(f[3]) });
    });
  return [...byMount.values()];
}

interface Judged {
  hosts: HostHealth[];
  thresholds: CheckThresholds;
  /** The cluster's CA, with TLS on (caOf). */
  ca?: {
    label: string;
    notAfter: Date;
    /** Its certificate's SHA-256 fingerprint, to compare the hosts' copies with. */
    fingerprint: string;
    /** pgprov's own (in .pgprov/), which apply renews within RENEW_CA_WITHIN_DAYS of its end; not one tls.ca gives. */
    own: boolean;
    /** pgprov has its key, so apply issues the servers' certificates. */
    canSign: boolean;
    /** Hosts whose certificate the inventory gives (tls.certificates): pgprov never issues those. */
    given: string[];
  };
  now: Date;
  /** The writable server the standbys should stream from: the inventory's primary when it is one. */
  primary?: HostHealth & { server: ServerHealth };
  /** The inventory has backups (false: archive_command archives nowhere); undefined: not said. */
  backups?: boolean;
}

type Rule = (c: Judged) => Finding[];

const server = (h: HostHealth): ServerHealth | undefined => (h.server && !("error" in h.server) ? h.server : undefined);

/** Above `warning`, above `critical`: the status of a measure that should stay low. */
function rising(value: number, t: { warning: number; critical: number }): CheckStatus {
  return value > t.critical ? "critical" : value > t.warning ? "warning" : "ok";
}

const reachable: Rule = ({ hosts }) =>
  hosts.filter((h) => h.unreachable).map((h) => ({ status: "unknown", check: "reachable", host: h.host, message: `cannot be reached over SSH (${h.unreachable}): its own checks did not run` }));

const serverAnswers: Rule = ({ hosts }) =>
  hosts
    .filter((h) => h.server)
    .map((h) =>
      h.server && "error" in h.server
        ? { status: "critical", check: "server", host: h.host, message: `PostgreSQL does not answer: ${h.server.error}` }
        : { status: "ok", check: "server", host: h.host, message: `PostgreSQL ${server(h)!.version} answers, ${server(h)!.inRecovery ? "in recovery" : "writable"}` },
    );

const roles: Rule = ({ hosts }) => {
  const out: Finding[] = [];
  const writable = hosts.filter((h) => server(h) && !server(h)!.inRecovery);
  if (writable.length > 1) out.push({ status: "critical", check: "role", message: `more than one server accepts writes: ${writable.map((h) => h.host).join(", ")}` });
  for (const h of hosts) {
    const s = server(h);
    if (!s) continue;
    const actual: Role = s.inRecovery ? "standby" : "primary";
    out.push(
      actual === h.role
        ? { status: "ok", check: "role", host: h.host, message: `${actual}, as the inventory says` }
        : { status: "critical", check: "role", host: h.host, message: `runs as a ${actual}, but the inventory says ${h.role}` },
    );
  }
  return out;
};

/** Each standby of the inventory streams: as its primary sees it, or, the primary unread, as it says itself. */
const streaming: Rule = ({ hosts, primary }) => {
  const out: Finding[] = [];
  for (const h of hosts.filter((x) => x.role === "standby")) {
    // A cascading standby as its upstream standby sees it, the others as the primary does; when
    // that server could not be read, as the standby says itself (below).
    const upstream = h.upstream ? hosts.find((x) => x.host === h.upstream) : undefined;
    const rows = upstream ? server(upstream)?.downstreams : primary?.server.replication!.rows;
    const from = upstream ?? primary;
    if (from && rows) {
      const seen = (rows ?? []).find((r) => r.host === h.host) ?? { host: h.host, state: "absent" };
      const status: CheckStatus = seen.state === "streaming" ? "ok" : seen.state === "catchup" || seen.state === "startup" ? "warning" : "critical";
      out.push({ status, check: "streaming", host: h.host, message: seen.state === "absent" ? `not connected to ${from.host}: does not stream` : `${seen.state} from ${from.host}` });
      continue;
    }
    const s = server(h);
    if (!s || !s.inRecovery) continue; // said already: unreachable, down, or writable
    out.push({
      status: s.receiver === "streaming" ? "ok" : "critical",
      check: "streaming",
      host: h.host,
      message: `its WAL receiver says ${s.receiver ?? "nothing (none runs)"} (the primary could not be read)`,
    });
  }
  return out;
};

/**
 * Each standby's replay lag, as the server it streams from sees it (a cascading standby's on its
 * upstream). A delayed standby is late on purpose: only its lag past the delay counts, in seconds
 * (its bytes behind are the WAL of the delay).
 */
const replayLag: Rule = ({ hosts, primary, thresholds }) => {
  const sources = [...(primary ? [{ from: primary.host, rows: primary.server.replication!.rows }] : [])];
  for (const h of hosts) if (server(h)?.downstreams) sources.push({ from: h.host, rows: server(h)!.downstreams! });
  return sources.flatMap(({ from, rows }) =>
    rows
      .filter((r) => r.lagBytes !== undefined)
      .map((r): Finding => {
        const delay = hosts.find((x) => x.host === r.host)?.applyDelaySeconds;
        const seconds = r.lagSeconds ?? 0;
        const bySeconds = rising(delay ? Math.max(0, seconds - delay) : seconds, thresholds.replay_lag_seconds);
        const byBytes = delay ? "ok" : rising(r.lagBytes!, thresholds.replay_lag);
        const status = PRECEDENCE.find((s) => s === byBytes || s === bySeconds)!;
        const message = `replays ${r.lagBytes} bytes, ${seconds.toFixed(1)} s behind ${from}${delay ? ` (delayed by ${delay} s on purpose)` : ""}`;
        return { status, check: "replay_lag", host: r.host, value: r.lagBytes!, message };
      }),
  );
};

const slots: Rule = ({ hosts, thresholds }) =>
  hosts.flatMap((h) => (server(h)?.slots ?? []).map((s): Finding => {
    const retained = s.retainedBytes ?? 0;
    const byWal = rising(retained, thresholds.slot_retained_wal);
    const status = s.active || byWal === "critical" ? byWal : "warning";
    return {
      status,
      check: "slot",
      host: h.host,
      value: retained,
      message: `slot ${s.name} (${s.active ? "active" : "inactive"}) retains ${retained} bytes of WAL${s.active ? "" : ": nothing consumes it, and the WAL it keeps grows"}`,
    };
  }));

const archiving: Rule = ({ primary, backups }) => {
  const a = primary?.server.replication!.archiver;
  if (!a?.enabled) return [];
  if (a.failing) {
    return [{
      status: "critical",
      check: "archiving",
      host: primary!.host,
      message: `archiving fails: ${a.failedCount} failure(s), the last at ${a.lastFailedTime} (${a.lastFailedWal}), after the last success (${a.lastArchivedTime ?? "never"}); pg_wal grows until it succeeds`,
    }];
  }
  // Without a backup section, archive_command archives nowhere (see pgprov.conf.hbs): say so, not
  // "works"; after a failure, which comes first (an old archive_command failing, say).
  if (backups === false) return [{ status: "warning", check: "archiving", host: primary!.host, message: NO_BACKUPS }];
  if (a.stale) {
    return [{
      status: "critical",
      check: "archiving",
      host: primary!.host,
      message: `archiving is stale: WAL was written, but nothing archived for more than ${a.staleAfterSeconds} s (last archived ${a.lastArchivedTime ?? "never"}): points after it cannot be restored`,
    }];
  }
  return [{ status: "ok", check: "archiving", host: primary!.host, message: `archiving works (last archived ${a.lastArchivedTime ?? "nothing yet"})` }];
};

const diskSpace: Rule = ({ hosts, thresholds }) =>
  hosts.flatMap((h): Finding[] => {
    if (!h.disks) return [];
    if ("error" in h.disks) return [{ status: "unknown", check: "disk_space", host: h.host, message: `free space could not be read: ${h.disks.error}` }];
    return h.disks.map((d) => {
      const free = d.usedBytes + d.availableBytes > 0 ? (100 * d.availableBytes) / (d.usedBytes + d.availableBytes) : 0;
      const t = thresholds.disk_free_percent;
      const status: CheckStatus = free < t.critical ? "critical" : free < t.warning ? "warning" : "ok";
      return { status, check: "disk_space", host: h.host, value: Math.floor(free * 10) / 10, message: `${free.toFixed(1)} % free (${d.availableBytes} bytes) on ${d.mount}, holding ${d.paths.join(" and ")}` };
    });
  });

const pendingRestart: Rule = ({ hosts }) =>
  hosts.flatMap((h): Finding[] => {
    const s = server(h);
    if (!s?.pendingRestart.length) return [];
    return [{ status: "warning", check: "pending_restart", host: h.host, message: `settings changed that take effect only at a restart: ${s.pendingRestart.join(", ")} (\`pgprov apply\` restarts it)` }];
  });

/** A recovery target left in postgresql.auto.conf: the server's next recovery would stop there and promote itself. */
const recoverySettings: Rule = ({ hosts }) =>
  hosts.flatMap((h): Finding[] => {
    const s = server(h);
    if (!s?.recoveryLeftovers?.length) return [];
    return [{
      status: "critical",
      check: "recovery_settings",
      host: h.host,
      message: `${s.recoveryLeftovers.join(", ")} in postgresql.auto.conf, outside a restore (left by one that did not finish?): its next recovery (a restart as a standby, a crash) would stop at that target and promote itself; \`pgprov apply\` removes them`,
    }];
  });

const versions: Rule = ({ hosts }) => {
  const read = hosts.filter((h) => server(h));
  const distinct = new Set(read.map((h) => server(h)!.version));
  if (distinct.size <= 1) return read.length ? [{ status: "ok", check: "versions", message: `every server runs PostgreSQL ${[...distinct][0]}` }] : [];
  return [{ status: "warning", check: "versions", message: `servers run different PostgreSQL versions: ${read.map((h) => `${h.host} ${server(h)!.version}`).join(", ")}` }];
};

/**
 * Days left to each server's certificate, to the CA's, and to each host's copy of the CA: a
 * certificate that ends stops every TLS connection to it, a CA copy that ends stops every standby
 * that verifies with it (primary_conninfo's sslrootcert) and every client certificate (ssl_ca_file).
 */
const tlsExpiry: Rule = ({ hosts, ca, thresholds, now }) => {
  const judge = (what: string, end: Date, warningDays = thresholds.tls_expiry_days.warning): Pick<Finding, "status" | "value" | "message"> => {
    const days = daysLeft(end, now);
    const status: CheckStatus = days < thresholds.tls_expiry_days.critical ? "critical" : days < warningDays ? "warning" : "ok";
    return { status, value: days, message: `${what} ${endText(end, now)}` };
  };
  // pgprov's own CA is renewed by any apply within a year of its end: one that gets there has not seen an apply for months.
  const caWarningDays = ca?.own ? Math.max(RENEW_CA_WITHIN_DAYS, thresholds.tls_expiry_days.warning) : thresholds.tls_expiry_days.warning;
  const out: Finding[] = hosts.flatMap((h): Finding[] => {
    if (!h.tls) return [];
    if ("error" in h.tls) return [{ status: "unknown", check: "tls_certificate", host: h.host, message: h.tls.error }];
    const found = judge(h.tls.file, new Date(h.tls.notAfter));
    const renews = !ca || (ca.canSign && !ca.given.includes(h.host))
      ? "`pgprov apply` renews it"
      : `given in tls.certificates.${h.host}: pgprov does not renew it; have it issued again and give the new one there`;
    const findings: Finding[] = [{ check: "tls_certificate", host: h.host, ...found, message: `${found.message}${found.status === "ok" ? "" : ` (${renews})`}` }];
    const copy = h.tls.ca;
    if (copy && ca) {
      if ("error" in copy) findings.push({ status: "unknown", check: "tls_ca", host: h.host, message: `${copy.file}: ${copy.error}` });
      else if (copy.fingerprint !== ca.fingerprint) {
        // Not the local CA: a renewal whose apply did not reach this host (down, or --limit), or a file changed by hand.
        const end = new Date(copy.notAfter);
        const judged = judge(`${copy.file} is not the CA ${ca.label}: it`, end, caWarningDays);
        const before = end < ca.notAfter ? `, before the local one (${ca.notAfter.toISOString().slice(0, 10)})` : "";
        const status = judged.status === "ok" ? "warning" : judged.status;
        findings.push({ check: "tls_ca", host: h.host, ...judged, status, message: `${judged.message}${before}; \`pgprov apply\` puts the local one there` });
      }
    }
    return findings;
  });
  if (ca) {
    const found = judge(`the CA ${ca.label}`, ca.notAfter, caWarningDays);
    const renews = ca.own
      ? `\`pgprov apply\` renews pgprov's own CA within ${RENEW_CA_WITHIN_DAYS} days of its end: has it not run since?`
      : "tls.ca: pgprov never renews it; its owner must";
    out.push({ check: "tls_ca", ...found, message: `${found.message}${found.status === "ok" ? "" : ` (${renews})`}` });
  }
  return out;
};

/** Each rule in turn; the findings come out in this order, then by status. */
const RULES: Rule[] = [reachable, serverAnswers, roles, streaming, replayLag, slots, archiving, diskSpace, pendingRestart, recoverySettings, versions, tlsExpiry];

/** The findings from what was read, worst first. */
export function judgeHealth(
  hosts: HostHealth[],
  thresholds: CheckThresholds,
  primaryName: string,
  { ca, now = new Date(), backups }: { ca?: Judged["ca"]; now?: Date; backups?: boolean } = {},
): Finding[] {
  const writable = hosts.filter((h) => server(h) && !server(h)!.inRecovery);
  const primary = (writable.find((h) => h.host === primaryName) ?? (writable.length === 1 ? writable[0] : undefined)) as Judged["primary"];
  const findings = RULES.flatMap((rule) => rule({ hosts, thresholds, now, ...(ca ? { ca } : {}), ...(primary ? { primary } : {}), ...(backups === undefined ? {} : { backups }) }));
  return findings.sort((a, b) => PRECEDENCE.indexOf(a.status) - PRECEDENCE.indexOf(b.status));
}

/** What check judges of the cluster's CA (see Judged). */
export function caOf(inventory: Inventory): Judged["ca"] {
  const ca = inventory.tls.enabled ? inventory.tls.authority : undefined;
  if (!ca) return undefined;
  return {
    label: ca.label,
    notAfter: ca.notAfter,
    fingerprint: ca.cert.fingerprint256,
    own: inventory.tls.caFiles.cert === ownCaFiles(inventory).cert,
    canSign: ca.canSign,
    given: Object.keys(inventory.tls.given),
  };
}

/** The status of the whole: the worst finding's, by PRECEDENCE. */
export function overallStatus(findings: Finding[]): CheckStatus {
  return PRECEDENCE.find((s) => findings.some((f) => f.status === s)) ?? "ok";
}

/** The newest backup's age against checks.backup_age_hours (issue 11); none at all is critical. */
export function backupAgeFinding(last: { label: string; type: string; ageSeconds: number } | undefined, error: string | undefined, thresholds: CheckThresholds): Finding {
  if (error) return { status: "unknown", check: "backup_age", message: `the backup repository could not be read: ${error}` };
  if (!last) return { status: "critical", check: "backup_age", message: "the repository holds no backup: nothing to restore from (`pgprov backup`)" };
  const hours = last.ageSeconds / 3600;
  return {
    status: rising(hours, thresholds.backup_age_hours),
    check: "backup_age",
    value: Math.round(hours * 10) / 10,
    message: `the last backup, ${last.label} (${last.type}), ended ${hours.toFixed(1)} h ago`,
  };
}

/**
 * What the backup repository says (issue 11): the last backup's age, WAL pgBackRest dropped from
 * the archive (archive-push-queue-max: a gap no point after which can be restored until a backup
 * is taken after it), and pgBackRest's own check.
 */
export function backupFindings(b: BackupStatus, thresholds: CheckThresholds, primary: string, repository = primary): Finding[] {
  const out = [backupAgeFinding(b.last, b.error, thresholds)];
  if (b.dropped && !(b.oldestStart && b.dropped.time < b.oldestStart)) {
    const after = !b.last || b.dropped.time > b.last.stop;
    out.push({
      status: after ? "critical" : "warning",
      check: "archive_gap",
      host: primary,
      message: after
        ? `pgBackRest dropped WAL ${b.dropped.wal} at ${b.dropped.time.toISOString()} (archive-push-queue-max: the repository could not take it): the archive has a gap, and nothing after it can be restored until a backup is taken (\`pgprov backup\`)`
        : `pgBackRest dropped WAL ${b.dropped.wal} at ${b.dropped.time.toISOString()} (archive-push-queue-max): no point between the backup before it and ${b.last!.label} can be restored`,
    });
  }
  if (b.check) {
    out.push(
      b.check.ok
        ? { status: "ok", check: "pgbackrest_check", host: repository, message: "pgbackrest check passes: WAL reaches the repository" }
        : { status: "critical", check: "pgbackrest_check", host: repository, message: `pgbackrest check fails (${b.check.command}): ${b.check.output}` },
    );
  }
  return out;
}

/** Findings of several sources in one list, worst first, as judgeHealth orders its own. */
export function worstFirst(findings: Finding[]): Finding[] {
  return [...findings].sort((a, b) => PRECEDENCE.indexOf(a.status) - PRECEDENCE.indexOf(b.status));
}
