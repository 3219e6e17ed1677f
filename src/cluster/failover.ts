/**
 * `pgprov failover [--to HOST]`: the primary is gone; the standby with the most WAL received
 * takes over. Only when the old primary is proven down (whyNotProvenDown): a primary that still
 * runs, or that standbys still hear, is a switchover's business, so failover refuses unless
 * --force. A reachable old primary is fenced (stopped, marked a standby) so it cannot come back
 * writable after a reboot; an unreachable one is left out until `pgprov rejoin`, and fenced by
 * its own boot check (templates/boot-fence.sh.hbs) if it comes back and reaches the new primary.
 */
import { hostname } from "node:os";
import { PgprovError } from "../common/errors.js";
import { rewriteRoles } from "../inventory/edit.js";
import type { Host, Inventory } from "../inventory/inventory.js";
import type { ClusterPlaybook as Playbook } from "./playbook.js";
import { FENCE_MARKER } from "../postgres/data-directory.js";
import { ClusterOperation, type OperationOptions } from "./operations.js";
import { reconfigure } from "./switchover.js";
import { lsnValue } from "../common/lsn.js";
import type { EndOfWal } from "./timeline.js";
import { type CommitVerdict, committedTransactionsSafe, parseSynchronousStandbyNames } from "./commit-rule.js";
import { topologyProblems, withPrimary } from "../inventory/topology.js";

export interface FailoverOptions extends OperationOptions {
  to?: string;
  force: boolean;
}

export interface FailoverResult {
  newPrimary: string;
  oldPrimary: string;
  /** WAL the old primary had beyond what the new one received (at least, after a crash); undefined when unknowable. */
  possibleLossBytes?: number;
  /** True when the synchronous standbys read prove that no acknowledged commit is lost (commit-rule.ts). */
  committedTransactionsSafe: boolean;
  /** possibleLossBytes is a lower bound (the old primary had crashed). */
  possibleLossAtLeast?: boolean;
  /** Hosts left out until `pgprov rejoin`: the old primary, and standbys an earlier failover fenced. */
  toRejoin: string[];
  inventoryChanges: string[];
  failed: boolean;
}

/** Undefined after a dry run: every check passed, and nothing was changed. */
export async function failover(inventory: Inventory, playbook: Playbook, options: FailoverOptions): Promise<FailoverResult | undefined> {
  const oldPrimary = inventory.primary;
  const op = await ClusterOperation.open(inventory, "failover", options);
  try {
    // 1. Is the primary really gone? Its own host, where it can be reached, and every standby's
    //    WAL receiver must agree; "cannot reach" alone is no proof.
    const oldEvidence = await primaryEvidence(op, oldPrimary);
    op.step(
      oldEvidence.reachable
        ? `${oldPrimary.name} is reachable; its postmaster ${oldEvidence.postmaster === "unknown" ? "could not be read" : oldEvidence.postmaster === "running" ? "runs" : "does not run"}; PostgreSQL ${oldEvidence.sql === "no answer" ? "does not answer SQL" : oldEvidence.sql === "writable" ? "accepts writes" : "is in recovery"}`
        : `${oldPrimary.name} cannot be reached: ${oldEvidence.reason}`,
    );

    // 2. What each standby's WAL receiver hears, and how much WAL it has.
    const receivers: ReceiverEvidence[] = [];
    const candidates: { host: Host; lsn: string; received: bigint }[] = [];
    // Every standby whose received WAL was read, candidate or not: the commit rule counts them all.
    const read: { name: string; received: bigint }[] = [];
    const settings: { synchronousStandbyNames: string; synchronousCommit: string }[] = [];
    // Fenced by an earlier failover and not rejoined: its WAL is of a timeline the cluster left,
    // so neither a candidate nor a standby the new primary can take as it is.
    const fenced: Host[] = [];
    const delayed: Host[] = [];
    for (const h of inventory.standbys) {
      if (!op.reachable(h)) {
        receivers.push({ standby: h.name, read: false, reason: op.unreachableReason(h) });
        continue;
      }
      // From files: a fenced host may not run at all.
      if (await isFenced(op, h)) {
        fenced.push(h);
        continue;
      }
      const result = await op.trySqlResult(h, STANDBY_QUERY);
      const r = "rows" in result ? result.rows[0] : undefined;
      if (!r) {
        receivers.push({ standby: h.name, read: false, reason: "error" in result ? result.error : "no row" });
        continue;
      }
      receivers.push({
        standby: h.name,
        read: true,
        ...(r.status ? { status: String(r.status) } : {}),
        ...(r.sender_host ? { senderHost: String(r.sender_host) } : {}),
        ...(r.age !== null && r.age !== undefined ? { lastMessageAgeSeconds: Number(r.age) } : {}),
        receiverTimeoutSeconds: Number(r.timeout_ms) / 1000,
      });
      if (r.in_recovery !== true || !r.lsn) continue;
      read.push({ name: h.name, received: lsnValue(String(r.lsn)) });
      settings.push({ synchronousStandbyNames: String(r.sync_names ?? ""), synchronousCommit: String(r.sync_commit ?? "") });
      // A delayed standby replays an hour (say) behind on purpose: promoted only when named.
      if (h.applyDelay !== undefined && options.to !== h.name) {
        delayed.push(h);
        continue;
      }
      candidates.push({ host: h, lsn: String(r.lsn), received: lsnValue(String(r.lsn)) });
    }
    const notDown = whyNotProvenDown(oldPrimary, oldEvidence, receivers, inventory.hosts);
    if (notDown.reasons.length) {
      const evidence = notDown.reasons.map((r) => `\n  - ${r}`).join("");
      if (!options.force) {
        throw new PgprovError(
          `refusing to fail over: ${oldPrimary.name} is not proven down, and promoting a standby now could make a second writable primary:${evidence}` +
            `${notDown.advice ? `\n${notDown.advice}` : ""}\nNothing was changed. --force fails over anyway (${oldPrimary.name} is stopped and marked a standby where it can be reached; where it cannot, make sure it is down yourself).`,
        );
      }
      op.step(`--force: failing over although ${oldPrimary.name} is not proven down:${evidence}`);
    }

    if (fenced.length) op.step(`not a candidate: ${fenced.map((h) => h.name).join(", ")}, fenced by an earlier failover or left by an unfinished rewind (\`pgprov rejoin\` brings it back)`);
    if (delayed.length) op.step(`not a candidate: ${delayed.map((h) => `${h.name} (apply_delay ${h.applyDelay})`).join(", ")}, a delayed standby (promoted only when named with --to)`);
    if (candidates.length === 0) throw new PgprovError("no standby can be promoted: none is reachable, in recovery, not fenced and not delayed");
    // What the standbys run with is what the old primary ran with (the same rendered file).
    const sync = agreedSettings(settings);
    const synchronous = sync && typeof sync.list === "object" ? sync.list.standbys : [];
    rankCandidates(candidates, synchronous);
    const chosen = options.to ? candidates.find((c) => c.host.name === options.to) : candidates[0];
    if (!chosen) throw new PgprovError(`--to ${options.to}: not a reachable standby in recovery (candidates: ${candidates.map((c) => c.host.name).join(", ")})`);
    op.step(
      `standbys by WAL received: ${candidates.map((c) => `${c.host.name} ${c.lsn}${synchronous.includes(c.host.name) ? " (synchronous)" : ""}`).join(", ")}; promoting ${chosen.host.name}`,
    );
    const commits = commitVerdict(sync, read, chosen.host.name, chosen.received);
    op.step(commits.line);
    const after = topologyProblems(withPrimary(inventory.hosts, chosen.host.name), inventory.replication.synchronous);
    if (after.length) op.step(`the inventory, with ${chosen.host.name} the primary, will need a change: ${after.map((p) => p.message).join("; ")}`);
    const others = inventory.standbys.filter((h) => h !== chosen.host && !fenced.includes(h)).map((h) => h.name);
    const toRejoin = [oldPrimary, ...fenced];
    const proceed = await op.proceed(
      {
        oldPrimary: oldPrimary.name,
        oldPrimaryReachable: oldEvidence.reachable,
        ...(notDown.reasons.length ? { forcedPast: notDown.reasons } : {}),
        candidates: candidates.map((c) => `${c.host.name} ${c.lsn}`),
        promote: chosen.host.name,
        promoteLsn: chosen.lsn,
        toRejoin: toRejoin.map((h) => h.name),
        committedTransactions: commits.line,
        committedTransactionsSafe: commits.safe,
      },
      [
        oldEvidence.reachable
          ? `fence ${oldPrimary.name}: stop PostgreSQL, mark it a standby (standby.signal) and fenced (${FENCE_MARKER}) until \`pgprov rejoin\``
          : `leave ${oldPrimary.name} as it is: it cannot be reached (its boot check fences it if it comes back and reaches ${chosen.host.name})`,
        `promote ${chosen.host.name}, which has received WAL up to ${chosen.lsn}`,
        `say how much of ${oldPrimary.name}'s WAL ${chosen.host.name} did not receive`,
        `rewrite the inventory's roles: ${oldPrimary.name} standby, ${chosen.host.name} primary`,
        `run the cluster playbook: ${others.length ? `${others.join(", ")} follow${others.length === 1 ? "s" : ""} ${chosen.host.name}` : `${chosen.host.name} alone`}; ${toRejoin.map((h) => h.name).join(", ")} left out until \`pgprov rejoin\``,
      ],
    );
    if (!proceed) return undefined;

    // 3. Fence the old primary where it can be reached: stopped, and marked a standby so that
    //    however it starts again (a reboot) it comes back read-only.
    let oldEnd: EndOfWal | undefined;
    if (oldEvidence.reachable) {
      await op.stopServer(oldPrimary);
      await op.writeStandbySignal(oldPrimary, `fenced by pgprov failover from ${hostname()} at ${new Date().toISOString()}: promoting ${chosen.host.name} in place of ${oldPrimary.name}`);
      oldEnd = await op.endOfWal(oldPrimary);
      op.step(
        `fenced ${oldPrimary.name}: PostgreSQL stopped and marked a standby (standby.signal), so it comes back read-only, and ${FENCE_MARKER}, so that apply refuses it until \`pgprov rejoin\`; its WAL ends at ${oldEnd?.atLeast ? "at least " : ""}${oldEnd?.lsn ?? "(unread)"}`,
      );
    }

    // 4. Promote.
    await op.promote(chosen.host);
    op.step(`promoted ${chosen.host.name}`);

    const loss = lossEstimate(oldPrimary.name, chosen.host.name, oldEnd, chosen.received);
    op.step(loss.line);

    // 5. The inventory follows; the others are pointed at the new primary. The old primary
    //    stays out of it until `pgprov rejoin` brings it back.
    const inventoryChanges = rewriteRoles(inventory, { [chosen.host.name]: "primary", [oldPrimary.name]: "standby" });
    op.step(`inventory ${inventory.file}: ${inventoryChanges.join(", ")}`);
    const summary = await reconfigure(inventory, playbook, op, options.emit, toRejoin);
    const rejoinCommands = toRejoin.map((h) => `\`pgprov rejoin ${inventory.file} ${h.name}\``).join(", ");
    op.step(summary.failed ? "the cluster playbook failed: see above" : `the other standbys stream from ${chosen.host.name}; bring back with ${rejoinCommands}`);
    return {
      newPrimary: chosen.host.name,
      oldPrimary: oldPrimary.name,
      ...(loss.bytes !== undefined ? { possibleLossBytes: loss.bytes, possibleLossAtLeast: loss.atLeast === true } : {}),
      toRejoin: toRejoin.map((h) => h.name),
      // Proven by the synchronous standbys, or by the old primary's WAL, read to its clean end.
      committedTransactionsSafe: commits.safe || (loss.atLeast === false && loss.bytes === 0),
      inventoryChanges,
      failed: summary.failed,
    };
  } finally {
    await op.close();
  }
}

/**
 * What the old primary had that the promoted standby did not receive. `end`: where the old
 * primary's WAL ends; exact only after a clean shutdown, else (a crash) pg_control's checkpoint,
 * a lower bound. Undefined when the old primary could not be read.
 */
export function lossEstimate(oldName: string, chosenName: string, end: EndOfWal | undefined, received: bigint): { bytes?: number; atLeast?: boolean; line: string } {
  if (!end) return { line: `how much ${oldName} had that ${chosenName} did not receive cannot be known: ${oldName} could not be read` };
  const diff = lsnValue(end.lsn) - received;
  const bytes = Number(diff > 0n ? diff : 0n);
  if (end.atLeast) {
    return {
      bytes,
      atLeast: true,
      line:
        `${oldName} did not shut down cleanly (pg_control's latest checkpoint ${end.lsn} is only a lower bound of where its WAL ends): ` +
        `${chosenName} lacks at least ${bytes} bytes of its WAL, possibly more; transactions committed on ${oldName} may be lost`,
    };
  }
  return {
    bytes,
    atLeast: false,
    line: bytes > 0 ? `${oldName} had ${bytes} bytes of WAL that ${chosenName} did not receive: those transactions may be lost` : `${chosenName} had received all of ${oldName}'s WAL`,
  };
}

/** A standby's recovery state, WAL received, and what its WAL receiver hears: one row, receiver or not. */
const STANDBY_QUERY = `select pg_is_in_recovery() as in_recovery,
  coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text as lsn,
  r.status, r.sender_host, extract(epoch from now() - r.last_msg_receipt_time)::float8 as age,
  (select setting::bigint from pg_settings where name = 'wal_receiver_timeout') as timeout_ms,
  current_setting('synchronous_standby_names') as sync_names, current_setting('synchronous_commit') as sync_commit
from (select 1) as one left join pg_stat_wal_receiver as r on true`;

/**
 * The most advanced first: it holds every other candidate's WAL, so they can all follow it.
 * Among equally advanced ones, a synchronous standby first.
 */
export function rankCandidates(candidates: { host: { name: string }; received: bigint }[], synchronous: string[]): void {
  const sync = (c: { host: { name: string } }) => (synchronous.includes(c.host.name) ? 1 : 0);
  candidates.sort((a, b) => (b.received > a.received ? 1 : b.received < a.received ? -1 : sync(b) - sync(a)));
}

/** The synchronous settings every standby read runs with; undefined when they disagree (a change applied to some only). */
function agreedSettings(settings: { synchronousStandbyNames: string; synchronousCommit: string }[]) {
  const first = settings[0];
  if (!first || settings.some((s) => s.synchronousStandbyNames !== first.synchronousStandbyNames || s.synchronousCommit !== first.synchronousCommit)) return undefined;
  return { list: parseSynchronousStandbyNames(first.synchronousStandbyNames), synchronousCommit: first.synchronousCommit };
}

function commitVerdict(sync: ReturnType<typeof agreedSettings>, read: { name: string; received: bigint }[], chosen: string, received: bigint): CommitVerdict {
  if (!sync) return { safe: false, line: "the standbys read do not agree on synchronous_standby_names or synchronous_commit: whether committed transactions may be lost cannot be told" };
  if (sync.list === "asynchronous") return { safe: false, line: "replication is asynchronous (no replication.synchronous): transactions committed after what the promoted standby received are lost" };
  if (!sync.list) return { safe: false, line: "synchronous_standby_names is in a form pgprov cannot judge: committed transactions may be lost" };
  return committedTransactionsSafe(sync.list, sync.synchronousCommit, read, { name: chosen, received });
}

/**
 * Whether an earlier failover fenced the host (FENCE_MARKER), or a rewind left it unfinished
 * (rewindMark): either way it waits for `pgprov rejoin`; false when its files cannot be read.
 */
async function isFenced(op: ClusterOperation, host: Host): Promise<boolean> {
  try {
    const d = await op.dataDirectory(host);
    return d.fenced !== undefined || d.rewindUnfinished !== undefined;
  } catch (e) {
    if (!(e instanceof PgprovError)) throw e;
    return false;
  }
}

/** The old primary seen on its own host: its postmaster from files, its SQL if it answers. */
async function primaryEvidence(op: ClusterOperation, host: Host): Promise<OldPrimaryEvidence> {
  if (!op.reachable(host)) return { reachable: false, reason: op.unreachableReason(host) };
  let postmaster: "running" | "stopped" | "unknown" = "unknown";
  let detail: string | undefined;
  try {
    postmaster = (await op.dataDirectory(host)).running ? "running" : "stopped";
  } catch (e) {
    if (!(e instanceof PgprovError)) throw e;
    detail = e.message;
  }
  const sql = await op.trySqlResult(host, "select pg_is_in_recovery() as in_recovery");
  if ("error" in sql) return { reachable: true, postmaster, sql: "no answer", detail: detail ?? sql.error };
  return { reachable: true, postmaster, sql: sql.rows[0]?.in_recovery === false ? "writable" : "in recovery", ...(detail ? { detail } : {}) };
}

/** What could be learnt of the old primary on its own host. */
export type OldPrimaryEvidence =
  | { reachable: false; reason: string }
  | {
      reachable: true;
      /** From postmaster.pid and the process it names (files, not SQL: a server can run and refuse SQL). */
      postmaster: "running" | "stopped" | "unknown";
      sql: "writable" | "in recovery" | "no answer";
      /** Why SQL did not answer, or the data directory could not be read. */
      detail?: string;
    };

/** What a standby's WAL receiver (pg_stat_wal_receiver) says of its sender. */
export type ReceiverEvidence =
  | { standby: string; read: false; reason: string }
  | {
      standby: string;
      read: true;
      /** Undefined when no WAL receiver runs. */
      status?: string;
      senderHost?: string;
      /** Seconds since the receiver last got a message (WAL or keepalive), by the standby's clock. */
      lastMessageAgeSeconds?: number;
      /** wal_receiver_timeout: a receiver gives up after this long without a message; 0: never. */
      receiverTimeoutSeconds: number;
    };

export interface NotProvenDown {
  /** Each piece of evidence that the old primary may still serve; empty when it is proven down. */
  reasons: string[];
  /** When retrying is safe, or what else can be done. */
  advice: string;
}

/**
 * Whether the old primary is proven down: where its host can be reached, its postmaster does not
 * run and nothing answers SQL at its address (postmaster.pid may be stale, or another server may
 * listen there); and no standby's WAL receiver has heard from it within wal_receiver_timeout. After a power
 * loss a receiver keeps saying "streaming" until that timeout passes without a message, so a
 * failover right after one is refused for up to that long. Cannot reach is never taken for down.
 */
export function whyNotProvenDown(
  old: { name: string; address: string },
  evidence: OldPrimaryEvidence,
  receivers: ReceiverEvidence[],
  members: { name: string; address: string }[],
): NotProvenDown {
  const reasons: string[] = [];
  if (evidence.reachable) {
    if (evidence.sql !== "no answer" && evidence.postmaster !== "running") {
      // postmaster.pid may be stale or another server may listen there: an answer is what counts.
      reasons.push(
        `a server at ${old.name}'s address ${evidence.sql === "writable" ? "accepts writes" : "answers SQL, in recovery"}, though ` +
          (evidence.postmaster === "stopped" ? `${old.name}'s postmaster.pid names no live process` : `${old.name}'s data directory could not be read (${evidence.detail ?? "no detail"})`) +
          ": something still serves there",
      );
    } else if (evidence.postmaster === "unknown") {
      reasons.push(`${old.name}'s data directory could not be read (${evidence.detail ?? "no detail"}): whether its postmaster runs is unknown`);
    } else if (evidence.postmaster === "running") {
      reasons.push(
        evidence.sql === "writable"
          ? `${old.name} is reachable and accepts writes: that calls for \`pgprov switchover\`, which loses nothing`
          : evidence.sql === "in recovery"
            ? `${old.name}'s postmaster is running (as a standby)`
            : `${old.name}'s postmaster is running (postmaster.pid names a live process), though PostgreSQL does not answer SQL (${evidence.detail ?? "no detail"}): it may still serve clients and stream WAL`,
      );
    }
  }
  // A standby that streams from another member says nothing of the old primary: that member does.
  const otherMembers = new Set(members.filter((m) => m.name !== old.name).map((m) => m.address));
  const heard = receivers.filter(
    (r): r is Extract<ReceiverEvidence, { read: true }> =>
      r.read &&
      r.status === "streaming" &&
      !(r.senderHost !== undefined && otherMembers.has(r.senderHost)) &&
      (r.receiverTimeoutSeconds === 0 || r.lastMessageAgeSeconds === undefined || r.lastMessageAgeSeconds < r.receiverTimeoutSeconds),
  );
  for (const r of heard) {
    const sender = r.senderHost === undefined || r.senderHost === old.address ? old.name : r.senderHost;
    const when = r.lastMessageAgeSeconds === undefined ? "connected, no message yet" : `${Math.floor(r.lastMessageAgeSeconds)} s ago`;
    reasons.push(`${r.standby}'s WAL receiver heard from ${sender} ${when} (${r.status})`);
  }
  for (const r of receivers) {
    if (!r.read) reasons.push(`${r.standby} could not be read (${r.reason}): it may still hear ${old.name}, and may have received more of its WAL than the others`);
  }
  if (receivers.length === 0) reasons.push(`no standby could be read: nothing shows that ${old.name} is down`);

  const never = heard.filter((r) => r.receiverTimeoutSeconds === 0);
  const timed = heard.filter((r) => r.receiverTimeoutSeconds > 0);
  const advice: string[] = [];
  if (timed.length) {
    const wait = Math.max(...timed.map((r) => Math.ceil(r.receiverTimeoutSeconds - (r.lastMessageAgeSeconds ?? 0))));
    const timeouts = [...new Set(timed.map((r) => r.receiverTimeoutSeconds))].join(" s, ");
    advice.push(
      `After a power loss or a crash of ${old.name}'s host, a standby's receiver keeps saying "streaming" until wal_receiver_timeout (${timeouts} s) passes without a message: ` +
        `if ${old.name} is really gone, retry in about ${wait} s, when the standbys will have stopped hearing it.`,
    );
  }
  if (never.length) advice.push(`wal_receiver_timeout is 0 on ${never.map((r) => r.standby).join(", ")}: a receiver there never gives up on a silent sender.`);
  return { reasons, advice: advice.join(" ") };
}
