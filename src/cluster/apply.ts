/**
 * `pgprov apply` for a cluster: the playbook run by the engine, with the safety checks and the
 * streaming verification around it. The checks find what they need by module, typed (see
 * engine/results.ts), whatever the playbook registers:
 * - before anything connects, a playbook that clones (pg_standby) must read every member's data
 *   directory (pg_data_directory) in plays of read-only tasks before any play that may change a host;
 * - after each play that reads data directories, the rules of safety.ts decide whether the run
 *   may go on (never two writable servers), before the next play changes anything;
 * - after the run, the primary's pg_replication read says which standbys do not stream yet: they
 *   are waited for, with a bound.
 */
import { PgprovError } from "../common/errors.js";
import { Redactor } from "../common/redact.js";
import type { RunResults } from "../engine/results.js";
import type { Facts } from "../engine/facts.js";
import { runPlaybook, type RunOptions, type RunSummary } from "../engine/run.js";
import { SshHostIO } from "../engine/host-io.js";
import { hostsUsed, isReadOnly, selectTargets } from "../engine/targets.js";
import {
  type BackupHost,
  ensureCertificateAuthority,
  ensurePoolerPassword,
  ensureReplicationPassword,
  type Host,
  type Inventory,
  renewCertificateAuthority,
  stateFile,
} from "../inventory/inventory.js";
import { pgDataDirectory, REPLICATION_QUERY, standbyReplication } from "../postgres/read.js";
import { clonedWithoutAsking, pgStandby } from "../postgres/standby.js";
import { closeAll, connectAll, describeJumpFailure, jumpFailures, type Reached } from "../transport/fleet.js";
import { HostPostgres, type Row } from "../transport/postgres.js";
import { RemoteError } from "../transport/ssh.js";
import { shellQuote } from "../common/shell.js";
import { topologyWarnings, upstreamOf } from "../inventory/topology.js";
import type { ClusterEmit } from "./events.js";
import { type ClusterPlaybook, targetOf } from "./playbook.js";
import { assessCluster } from "./safety.js";
import { hostVariables, topologyOf } from "./variables.js";
import { askStandby } from "./standby-report.js";
import { NO_BACKUPS } from "./backup-config.js";

export interface ApplyOptions extends Pick<RunOptions, "check" | "limit" | "exclude" | "tags" | "forks" | "progress"> {
  /** Connections a cluster operation already holds (with their locks); otherwise apply opens its own. */
  reached?: Reached<Host>[];
  acceptNewHostKeys?: boolean;
  /** Hosts whose data may be replaced by a clone (--reclone). */
  reclone?: string[];
  /** Standbys cloned again whatever they hold (pgprov restore, which asked first). */
  cloneAlways?: string[];
  /** Bound on waiting for standbys to stream. */
  streamingTimeoutMs?: number;
  emit: ClusterEmit;
}

export async function applyCluster(inventory: Inventory, playbook: ClusterPlaybook, options: ApplyOptions): Promise<RunSummary> {
  ensureReplicationPassword(inventory);
  ensurePoolerPassword(inventory);
  const reclone = options.reclone ?? [];
  const secrets = inventory.secrets.map((s) => s.reveal());
  const redactor = new Redactor(secrets);
  const emit: ClusterEmit = (e) => options.emit(redactor.value(e));
  // Before anything connects: the CA is made once (plan makes one in memory only, and saves nothing).
  await ensureCertificateAuthority(inventory, { save: !options.check });
  // A renewed CA is in memory for the playbook; its file is written only once this run may change
  // hosts (locks held, safety checks passed: see safetyGate), never by plan.
  const renewal = await renewCertificateAuthority(inventory);
  if (renewal && (options.check || !renewal.save)) emit({ type: "warning", message: renewal.warning });
  const saveCa = !options.check && renewal?.save ? once(() => emit({ type: "warning", message: renewal.save!() })) : undefined;
  if (!inventory.tls.enabled) {
    emit({
      type: "warning",
      message: `TLS is off (tls.enabled: false in ${inventory.file}): the replication password's SCRAM exchange and every row cross the network in clear, and a standby trusts whatever answers at the primary's address`,
    });
  }
  if (!inventory.backup) emit({ type: "warning", message: NO_BACKUPS });
  // The cluster's members: every host but those a cluster operation excluded (a failed primary
  // it fenced or could not reach). The safety reads cover all of them, whatever --limit says.
  const members = inventory.hosts.filter((h) => !options.exclude?.includes(h.name));
  // The backup host (no PostgreSQL server) is a target of the plays that name the group backup.
  const targets = [...inventory.hosts, ...(inventory.backup?.host ? [inventory.backup.host] : [])].map(targetOf);
  requireSafetyReads(playbook, targets, members);
  const { pg_control: pgControl, pg_replication: pgReplication } = playbook.modules;
  for (const message of topologyWarnings(inventory.hosts, inventory.replication.synchronous)) emit({ type: "warning", message });
  if (inventory.backup && !inventory.backup.host) {
    emit({
      type: "warning",
      message: `the backup repository is on ${inventory.primary.name}'s own path (${inventory.backup.repositoryPath}, no host with role: backup): it does not survive the loss of that host; give the repository a host of its own`,
    });
  }

  // Connections a cluster operation already holds (with their locks) are used, and left open;
  // otherwise exactly the hosts the run touches are connected.
  const used = hostsUsed(targets, playbook, options).map((t) => t.host);
  const connect = (hosts: (Host | BackupHost)[]) =>
    hosts.length ? connectAll(hosts, inventory.ssh, { acceptNewHostKeys: options.acceptNewHostKeys ?? false, exclusive: !options.check }) : Promise.resolve([]);
  // A cluster operation holds the database hosts; the backup host, when the run uses it, is connected here.
  const held: Reached<Host | BackupHost>[] | undefined = options.reached?.filter((r) => used.includes(r.host));
  const own = held ? await connect(used.filter((h) => h.role === "backup")) : await connect(used);
  const reached = [...(held ?? []), ...own];
  // Every host reached runs the playbook's first batch: its shell (and lock) starts while the run
  // renders it, on every host at once, whatever --forks says of the work on them.
  for (const r of own) if ("connection" in r) r.connection.startShellEarly();

  /** The primary's identity: from pg_control once read, else from its data directory. */
  const primarySystemIdentifier = (results: RunResults) =>
    results.of(pgControl).get(inventory.primary.name)?.system_identifier ?? results.of(pgDataDirectory).get(inventory.primary.name)?.systemIdentifier;

  if (inventory.postgresql.clients.length) {
    emit({
      type: "warning",
      message:
        `postgresql.clients lets every role connect to every database from ${inventory.postgresql.clients.join(", ")}; ` +
        `access rules (access:) say which role may reach which database from where`,
    });
  }
  const jumps = jumpFailures(reached);
  const variablesOf = new Map<string, { facts: unknown; id: string | undefined; replacedByClone: boolean; others: number; vars: Record<string, unknown> }>();
  const factsByHost = new Map<string, Facts>();
  try {
    // A playbook that may change a host in its first play has no reads to wait for.
    if (playbook.plays[0] && !isReadOnly(playbook.plays[0])) saveCa?.();
    const summary = await runPlaybook(playbook, {
      ...options,
      inventoryFile: inventory.file,
      targets,
      reached: reached.map((r) => ("connection" in r ? { name: r.host.name, io: new SshHostIO(r.connection) } : { name: r.host.name, error: r.error.message })),
      sharedFailures: jumps.map((f) => ({ host: `jump host ${f.jumpHost}`, message: describeJumpFailure(f), hosts: f.hosts })),
      statePath: stateFile(inventory, "state.json"),
      secrets,
      variables: (target, facts, results) => {
        if (facts) factsByHost.set(target.name, facts);
        const id = primarySystemIdentifier(results);
        const host = targets.find((t) => t.name === target.name)!.host;
        const read = results.of(pgDataDirectory).get(host.name);
        const replacedByClone = host.role === "standby" && read !== undefined && clonedWithoutAsking(read, id);
        // Asked for every task a host renders (each task of every play, read ahead and again):
        // computed again only when what they depend on changed.
        const known = variablesOf.get(target.name);
        if (known && known.facts === facts && known.id === id && known.replacedByClone === replacedByClone && known.others === factsByHost.size) return known.vars;
        const vars = hostVariables(inventory, host, facts, {
          reclone,
          excluded: options.exclude ?? [],
          cloneAlways: options.cloneAlways ?? [],
          replacedByClone,
          factsOf: (name) => factsByHost.get(name),
          ...(id ? { primarySystemIdentifier: id } : {}),
        });
        variablesOf.set(target.name, { facts, id, replacedByClone, others: factsByHost.size, vars });
        return vars;
      },
      emit,
      afterPlay: safetyGate(playbook, inventory, members, reclone, saveCa),
    });
    const replication = summary.results.of(pgReplication);
    if (replication.has(inventory.primary.name) && !summary.failed) {
      // Each standby as its upstream sees it: a cascading standby streams from a standby.
      const topology = topologyOf(inventory, options.exclude);
      const standbys = inventory.standbys.filter((h) => members.includes(h));
      const upstream = new Map(standbys.map((h) => [h.name, upstreamOf(topology, h)!.name]));
      const first = new Map([...replication.entries()]);
      const rows = options.check ? first : await waitForStreaming(reached, inventory, upstream, first, options.streamingTimeoutMs ?? 120_000, emit);
      const report = standbys.map((h) => {
        const from = upstream.get(h.name)!;
        return { ...standbyReplication(h.name, rows.get(from) ?? []), ...(from !== inventory.primary.name ? { upstream: from } : {}) };
      });
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
            message: `${s.host} does not stream from ${upstream.get(s.host)} (${s.state}) after waiting ${(options.streamingTimeoutMs ?? 120_000) / 1000} s: ${says}`,
          });
        }
      }
    }
    await reportOldArchive(inventory, reached, emit);
    emit({ type: "recap", hosts: summary.hosts });
    return summary;
  } finally {
    closeAll(own);
  }
}

/**
 * After a play that reads data directories (pg_data_directory, whatever it registers), the rules
 * of safety.ts on what every member's read: a refusal stops the run before the next play. Reads
 * split over several read-only plays (the primary's, then the standbys') are judged together,
 * after the last of them: the next play changes nothing, so judging can wait for it.
 */
export function safetyGate(
  playbook: ClusterPlaybook,
  inventory: Inventory,
  members: Host[],
  reclone: string[],
  /** Called when the gate lets the run on to a play that may change a host (apply saves a renewed CA then). */
  beforeChange?: () => void,
): NonNullable<RunOptions["afterPlay"]> {
  const readsDataDirectory = (p: ClusterPlaybook["plays"][number]) => p.tasks.some((t) => t.module === pgDataDirectory);
  const judge = (play: ClusterPlaybook["plays"][number], results: RunResults) => {
    const at = playbook.plays.indexOf(play);
    // This play, and the read-only plays just before it (whose judging waited for it).
    let from = at;
    while (from > 0 && isReadOnly(playbook.plays[from - 1]!) && isReadOnly(playbook.plays[from]!)) from--;
    if (!playbook.plays.slice(from, at + 1).some(readsDataDirectory)) return;
    // Fail closed: a host whose data directory was not read could be a second primary.
    const read = results.of(pgDataDirectory);
    const unread = members.filter((h) => !read.has(h.name));
    if (unread.length) throw new PgprovError(`refusing to change anything: the data directory of ${unread.map((h) => h.name).join(", ")} could not be read`);
    const assessment = assessCluster(inventory, new Map(members.map((h) => [h.name, read.get(h.name)])), reclone);
    if (assessment.problems.length) throw new PgprovError(`refusing to change anything: ${assessment.problems.join("\n")}`);
  };
  return (play, results) => {
    const next = playbook.plays[playbook.plays.indexOf(play) + 1];
    if (next && isReadOnly(next)) return;
    judge(play, results);
    if (next) beforeChange?.();
  };
}

/** `f` on its first call only. */
function once(f: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    f();
  };
}

/**
 * The rules that keep two primaries from existing rest on reading every member's data directory
 * before anything changes: a playbook that clones (pg_standby) without such reads in plays of
 * read-only tasks (which run on all their hosts, whatever --limit and --tags say) before its first
 * play that may change a host is refused before anything connects. Reads after a change would
 * come too late: that change (a restart, a reload) could already have touched a second primary.
 */
export function requireSafetyReads(playbook: ClusterPlaybook, targets: ReturnType<typeof targetOf>[], members: Host[]): void {
  const cloneAt = playbook.plays.findIndex((p) => [...p.tasks, ...p.handlers].some((t) => t.module === pgStandby));
  if (cloneAt < 0) return;
  const firstChange = playbook.plays.findIndex((p) => !isReadOnly(p));
  const reads = playbook.plays.slice(0, firstChange).filter((p) => p.tasks.some((t) => t.module === pgDataDirectory));
  const unread = members.filter((h) => !reads.some((p) => selectTargets(p, targets).some((t) => t.host === h)));
  if (unread.length === 0) return;
  const clone = playbook.plays[cloneAt]!;
  const where = [...clone.tasks, ...clone.handlers].find((t) => t.module === pgStandby)!.where;
  throw new PgprovError(
    `${where}: refusing a playbook that clones (pg_standby) without first reading the data directory of ${unread.map((h) => h.name).join(", ")}: ` +
      `add, before play "${playbook.plays[firstChange]!.name}" (the first that may change a host), a play of read-only tasks on all hosts with a pg_data_directory task ` +
      `(as the bundled playbooks/cluster.yml does); the checks that keep two servers from accepting writes rest on those reads`,
  );
}

/** Polls each upstream until every standby streams from it, or the bound is reached. */
async function waitForStreaming(
  reached: Reached<Host | BackupHost>[],
  inventory: Inventory,
  upstream: Map<string, string>,
  first: Map<string, Row[]>,
  timeoutMs: number,
  emit: ClusterEmit,
): Promise<Map<string, Row[]>> {
  const rows = new Map(first);
  const pending = () => [...upstream].filter(([name, from]) => !(rows.get(from) ?? []).some((r) => r.application_name === name && r.state === "streaming"));
  if (pending().length === 0) return rows;
  const clients = new Map<string, Promise<HostPostgres>>();
  try {
    const started = Date.now();
    const deadline = started + timeoutMs;
    while (Date.now() < deadline && pending().length) {
      await new Promise((r) => setTimeout(r, 500));
      const seconds = Math.round((Date.now() - started) / 1000);
      // For a terminal (one line for them all): how long the wait has lasted, of its bound.
      emit({ type: "progress", host: pending().map(([name]) => name).join(", "), task: "wait for streaming", seconds, detail: `at most ${timeoutMs / 1000} s` });
      for (const from of new Set(pending().map(([, f]) => f))) {
        const host = reached.find((r) => r.host.name === from);
        if (!host || !("connection" in host)) continue;
        if (!clients.has(from)) clients.set(from, HostPostgres.connect(host.connection, { port: inventory.postgresql.port }));
        try {
          rows.set(from, await (await clients.get(from)!).query(REPLICATION_QUERY));
        } catch (e) {
          // An upstream that is still starting (just cloned): asked again on the next round.
          if (!(e instanceof RemoteError)) throw e;
          clients.delete(from);
        }
      }
    }
    return rows;
  } finally {
    await Promise.all([...clients.values()].map((c) => c.then((p) => p.close()).catch(() => {})));
  }
}

/**
 * WAL goes to pgBackRest's repository, or nowhere without backups (see pgprov.conf.hbs): the
 * local archive directory of before (archive_command's copy on a primary's own disk, on every
 * host that was once primary) is left in place, never deleted, and named here on every run while
 * it exists, with its size, for the user to remove. `du` is bounded: a huge directory on a slow
 * disk must not hold the run.
 */
async function reportOldArchive(inventory: Inventory, reached: Reached<Host | BackupHost>[], emit: ClusterEmit): Promise<void> {
  const dirs = inventory.postgresql.archiveDirectory ? shellQuote(inventory.postgresql.archiveDirectory) : "/var/lib/postgresql/*/wal-archive";
  const script = `for d in ${dirs}; do [ -d "$d" ] && echo "$(timeout 10 du -sh "$d" 2>/dev/null | cut -f1 | grep . || echo 'size not read within 10 s') $d"; done; true`;
  const hosts = reached.filter((r): r is Extract<Reached<Host | BackupHost>, { connection: unknown }> => "connection" in r && r.host.role !== "backup");
  const found = await Promise.all(hosts.map(async (r) => ({ host: r.host.name, out: (await r.connection.run(script, { timeoutMs: 30_000, purpose: "looking for the WAL archive directory of before" })).stdout })));
  for (const { host, out } of found) {
    for (const line of out.split("\n").filter(Boolean)) {
      const m = /^(.*) (\/\S*)$/.exec(line);
      if (!m) continue;
      emit({ type: "warning", message: oldArchiveWarning(host, m[2]!, m[1]!, inventory.backup !== undefined) });
    }
  }
}

export function oldArchiveWarning(host: string, dir: string, size: string, backups: boolean): string {
  const now = backups ? "WAL now goes to the backup repository" : "WAL is no longer archived there (no backups configured: see README, Backups)";
  const when = backups ? "once `pgprov backups` shows a full backup" : "once you no longer need it";
  return `${host}: ${dir} (${size}), the WAL archive of before pgBackRest, is left in place: ${now}; pgprov never deletes it, remove it yourself ${when}`;
}
