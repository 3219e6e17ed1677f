/**
 * Timeline histories, and whether a host may follow the primary. Each promotion starts a new
 * timeline and writes NNNNNNNN.history in pg_wal: every ancestor timeline, with the WAL position
 * where it was left. pg_rewind trusts the numbers: two servers promoted on their own to the same
 * timeline number look alike to it ("no rewind required") while holding different transactions.
 * So before a rewind, rejoin checks that the host's history is the primary's and that the host
 * is behind on it. Pure: unit-tested on parsed histories.
 */
import { lsnValue } from "../common/lsn.js";
import type { HistoryEntry } from "../postgres/timeline-history.js";

export { type HistoryEntry, parseTimelineHistory } from "../postgres/timeline-history.js";

export interface TimelinePosition {
  name: string;
  timeline: number;
  /** The ancestors of `timeline`, from its history file (empty on timeline 1). */
  history: HistoryEntry[];
  /** Where its WAL ends (as far as can be read: at least there). */
  endLsn?: string;
  /**
   * endLsn is only a lower bound: pg_control's latest checkpoint of a server that did not shut
   * down cleanly (its WAL may go on past it), or a server that may still be writing.
   */
  endAtLeast?: boolean;
}

/** Where a server's WAL ends, and whether that is exact or only a lower bound. */
export interface EndOfWal {
  lsn: string;
  atLeast: boolean;
}

export type RejoinVerdict =
  | { ok: true; detail: string }
  /**
   * recloneAllowed: false when even --reclone must not replace the host (it may hold the newest
   * writes). discardAllowed: a rewind would work, but undoes WAL the host wrote after the primary's
   * history left its timeline (at least discardBytes, when its end could be read): committed
   * transactions only it holds, so only with the user's explicit consent.
   */
  | { ok: false; reason: string; recloneAllowed: boolean; discardAllowed?: boolean; discardBytes?: bigint };

/**
 * Whether `host` may be rewound onto (or simply follow) `primary`: only when its position is
 * provably on the primary's history, behind the primary. `wasWritable`: the host ran as a primary
 * (pg_control says so, or it accepts writes now).
 */
export function judgeRejoin(host: TimelinePosition & { wasWritable: boolean }, primary: TimelinePosition): RejoinVerdict {
  const refuse = (reason: string): RejoinVerdict => ({ ok: false, reason, recloneAllowed: true });
  if (host.timeline > primary.timeline) {
    return {
      ok: false,
      recloneAllowed: false,
      reason: `${host.name} is on timeline ${host.timeline}, ahead of ${primary.name} (timeline ${primary.timeline}): it may hold the newest writes; pgprov will not rewind or replace it`,
    };
  }
  // The ancestors both share must have been left at the same points, or these are two histories.
  const primaryLeft = new Map(primary.history.map((e) => [e.timeline, e.switchLsn]));
  for (const e of host.history) {
    const theirs = primaryLeft.get(e.timeline);
    if (theirs === undefined) return refuse(`${host.name}'s history passes through timeline ${e.timeline}, which is not on ${primary.name}'s history`);
    if (lsnValue(theirs) !== lsnValue(e.switchLsn)) {
      return refuse(`${host.name} left timeline ${e.timeline} at ${e.switchLsn}, ${primary.name}'s history at ${theirs}: their histories parted there, and pg_rewind would not see it`);
    }
  }
  if (host.timeline === primary.timeline) {
    if (primary.history.length !== host.history.length) return refuse(`${host.name}'s timeline ${host.timeline} has another history than ${primary.name}'s`);
    if (host.wasWritable) {
      return refuse(
        `${host.name} accepted writes on timeline ${host.timeline}, the timeline ${primary.name} is on: both were promoted to it on their own, ` +
          `so the same WAL positions may hold different transactions, which pg_rewind cannot see ("no rewind required")`,
      );
    }
    if (host.endLsn && primary.endLsn && lsnValue(host.endLsn) > lsnValue(primary.endLsn)) {
      return refuse(`${host.name} has WAL up to ${host.endLsn} on timeline ${host.timeline}, beyond ${primary.name}'s ${primary.endLsn}: it holds WAL the primary never had`);
    }
    return { ok: true, detail: `${host.name} is on ${primary.name}'s timeline ${host.timeline}, behind it` };
  }
  const left = primaryLeft.get(host.timeline);
  if (left === undefined) {
    const timelines = [...primary.history.map((e) => e.timeline), primary.timeline].join(", ");
    return refuse(`timeline ${host.timeline} of ${host.name} is not on ${primary.name}'s history (timelines ${timelines})`);
  }
  const forked = `${primary.name}'s history left timeline ${host.timeline} at ${left}`;
  if (host.endLsn === undefined) {
    return {
      ok: false,
      recloneAllowed: true,
      discardAllowed: true,
      reason: `${forked}, and where ${host.name}'s WAL ends could not be read: it may hold transactions written after ${left}, which a rewind undoes`,
    };
  }
  const past = lsnValue(host.endLsn) - lsnValue(left);
  if (past > 0n) {
    return {
      ok: false,
      recloneAllowed: true,
      discardAllowed: true,
      discardBytes: past,
      reason:
        `${host.name}'s WAL goes on to at least ${host.endLsn} on timeline ${host.timeline}, past ${left}, where ${primary.name}'s history left it: ` +
        `a rewind undoes at least ${past} bytes of WAL that ${primary.name} never received (transactions committed on ${host.name} after the fork)`,
    };
  }
  if (host.endAtLeast) {
    return {
      ok: false,
      recloneAllowed: true,
      discardAllowed: true,
      reason:
        `${forked}; ${host.name}'s WAL goes on to at least ${host.endLsn}, but it did not shut down cleanly, so pg_control's checkpoint is only a lower bound of where its WAL ends: ` +
        `it may hold transactions written after ${left}, which a rewind undoes`,
    };
  }
  return { ok: true, detail: `${forked}; ${host.name}'s WAL ends at ${host.endLsn}, at or before that point: nothing is undone` };
}
