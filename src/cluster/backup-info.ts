/**
 * What the repository holds, read from `pgbackrest info --output=json`, and which restore
 * targets it covers. Pure: `pgprov backups`, `status`, `check` and `restore` read the same.
 */
import { PgprovError } from "../common/errors.js";
import { lsnValue } from "../common/lsn.js";
import { type HistoryEntry, parseTimelineHistory } from "../postgres/timeline-history.js";

export interface BackupEntry {
  label: string;
  type: "full" | "diff" | "incr";
  start: Date;
  stop: Date;
  /** The database's size, and what the backup holds in the repository (compressed, deduplicated). */
  size_bytes: number;
  repository_bytes: number;
  wal_start: string;
  wal_stop: string;
  /** The timeline it was taken on (its WAL's), and where it became consistent (pgBackRest's lsn.stop, when it says). */
  timeline: number;
  lsn_stop?: string;
}

export interface Restorable {
  /**
   * One second after the end of the oldest backup that reaches the newest timeline: pgBackRest
   * keeps a backup's stop time in whole seconds, cut down, and a target before the backup's
   * consistency point cannot be recovered to.
   */
  earliest: Date;
  /** The newest commit in the archived WAL of the newest timeline (the newest backup's consistency point when none was read). */
  latest: Date;
  /** The timeline a restore follows (recovery_target_timeline = latest): the newest in the archive. */
  timeline: number;
}

export interface RepositoryInfo {
  stanza: string;
  /** pgBackRest's status: "ok", or why not ("no valid backups", "missing stanza path"). */
  status: string;
  backups: BackupEntry[];
  wal_min?: string;
  wal_max?: string;
  /** The newest timeline's ancestors, from its history file in the archive: where each was left. */
  history?: HistoryEntry[];
  /** The timeline of that history file. */
  history_timeline?: number;
  restorable?: Restorable;
}

interface RawInfo {
  name?: string;
  status?: { code?: number; message?: string };
  archive?: { min?: string | null; max?: string | null }[];
  backup?: {
    label: string;
    type: BackupEntry["type"];
    error?: boolean;
    timestamp: { start: number; stop: number };
    info?: { size?: number; repository?: { delta?: number; size?: number } };
    archive?: { start?: string | null; stop?: string | null };
    lsn?: { start?: string | null; stop?: string | null };
  }[];
}

/** What the repository's files say beyond `pgbackrest info`: the newest timeline's history file, and the newest commit archived on it. */
export interface ArchiveReads {
  history?: { timeline: number; text: string };
  newestCommit?: Date;
}

/** A WAL segment's name's timeline (its first 8 hex digits). */
export function segmentTimeline(segment: string): number {
  return Number.parseInt(segment.slice(0, 8), 16);
}

/** The names of `segment` and up to `count - 1` segments before it on its timeline (16 MB segments: 256 to a log file). */
export function segmentsBefore(segment: string, count: number): string[] {
  const out: string[] = [];
  let number = BigInt(`0x${segment.slice(8, 16)}`) * 256n + BigInt(`0x${segment.slice(16, 24)}`);
  for (let i = 0; i < count && number >= 0n; i++, number--) {
    out.push(`${segment.slice(0, 8)}${(number / 256n).toString(16).toUpperCase().padStart(8, "0")}${(number % 256n).toString(16).toUpperCase().padStart(8, "0")}`);
  }
  return out;
}

/** The newest timeline the repository knows, from its WAL and its backups. */
function newestTimeline(info: Pick<RepositoryInfo, "backups" | "wal_max" | "history_timeline">): number {
  return Math.max(info.wal_max ? segmentTimeline(info.wal_max) : 1, info.history_timeline ?? 1, ...info.backups.map((b) => b.timeline));
}

/**
 * Whether recovery from `b`, following the newest timeline, can get there: a backup of an
 * ancestor timeline only when it became consistent before that timeline was left (a backup of
 * the branch a restore abandoned is not on the way).
 */
export function reachesTimeline(b: BackupEntry, timeline: number, history: HistoryEntry[]): boolean {
  if (b.timeline === timeline) return true;
  const left = history.find((e) => e.timeline === b.timeline);
  if (!left) return false;
  if (b.lsn_stop) return lsnValue(b.lsn_stop) <= lsnValue(left.switchLsn);
  // No LSN from pgBackRest: its last WAL segment must end before the switch.
  const switchSegment = lsnValue(left.switchLsn) / (16n << 20n);
  return BigInt(`0x${b.wal_stop.slice(8, 16)}`) * 256n + BigInt(`0x${b.wal_stop.slice(16, 24)}`) < switchSegment;
}

/** One second past a backup's recorded stop: the first time a restore from it can target for sure. */
function consistentBy(b: BackupEntry): Date {
  return new Date((Math.floor(b.stop.getTime() / 1000) + 1) * 1000);
}

export function parseRepositoryInfo(json: string, stanza: string, reads: ArchiveReads = {}): RepositoryInfo {
  let parsed: RawInfo[];
  try {
    parsed = JSON.parse(json) as RawInfo[];
  } catch {
    throw new PgprovError(`pgbackrest info --output=json printed something that is not JSON: ${json.slice(0, 200)}`);
  }
  const raw = parsed.find((s) => s.name === stanza);
  if (!raw) return { stanza, status: "the repository holds no stanza of that name", backups: [] };
  const backups = (raw.backup ?? [])
    .filter((b) => !b.error)
    .map((b): BackupEntry => ({
      label: b.label,
      type: b.type,
      start: new Date(b.timestamp.start * 1000),
      stop: new Date(b.timestamp.stop * 1000),
      size_bytes: b.info?.size ?? 0,
      repository_bytes: b.info?.repository?.size ?? 0,
      wal_start: b.archive?.start ?? "",
      wal_stop: b.archive?.stop ?? "",
      timeline: b.archive?.stop ? segmentTimeline(b.archive.stop) : 1,
      ...(b.lsn?.stop ? { lsn_stop: b.lsn.stop } : {}),
    }));
  const archives = (raw.archive ?? []).filter((a) => a.min && a.max);
  const info: RepositoryInfo = { stanza, status: raw.status?.message ?? "unknown", backups };
  if (archives.length) {
    info.wal_min = archives.map((a) => a.min!).sort()[0]!;
    info.wal_max = archives.map((a) => a.max!).sort().at(-1)!;
  }
  if (reads.history) info.history_timeline = reads.history.timeline;
  const timeline = newestTimeline(info);
  const history = reads.history?.timeline === timeline ? parseTimelineHistory(reads.history.text) : [];
  if (timeline > 1) info.history = history;
  const reaching = backups.filter((b) => reachesTimeline(b, timeline, history));
  if (reaching.length) {
    const earliest = consistentBy(reaching[0]!);
    const newest = consistentBy(reaching.at(-1)!);
    const commit = reads.newestCommit;
    // Recovery to a time no commit follows ends FATAL (PostgreSQL 13+): the newest commit is the end, when read.
    info.restorable = { earliest, latest: commit ?? newest, timeline };
  }
  return info;
}

export type RestoreTarget = { kind: "time"; time: Date } | { kind: "latest" } | { kind: "backup"; label: string };

/**
 * The backup set a restore to `target` starts from, chosen here and passed as --set (pgBackRest's
 * own choice for --type=time goes by stop time alone, blind to timelines, and falls back to the
 * newest set when none fits); or why the repository cannot reach the target. Nothing is stopped
 * before this says yes.
 */
export function chooseBackupSet(target: RestoreTarget, info: RepositoryInfo, now: Date): { set: BackupEntry } | { problem: string } {
  const range = info.restorable;
  const timeline = newestTimeline(info);
  const history = info.history ?? [];
  const off = info.backups.filter((b) => !reachesTimeline(b, timeline, history));
  const offText = off.length ? ` (not through ${off.map((b) => `${b.label}, of timeline ${b.timeline}`).join(", ")}: ${off.length === 1 ? "it was" : "they were"} taken on a timeline a restore left before timeline ${timeline} began)` : "";
  if (!range) {
    return { problem: `the repository holds no backup of stanza ${info.stanza} that reaches timeline ${timeline} (${info.status})${offText}: nothing to restore from; take one with \`pgprov backup\`` };
  }
  const reaching = info.backups.filter((b) => !off.includes(b));
  const span = `the repository can restore from ${iso(range.earliest)} (just after the end of backup ${reaching[0]!.label}) to ${iso(range.latest)} (the newest archived commit), on timeline ${timeline}${offText}`;
  switch (target.kind) {
    case "latest":
      return { set: reaching.at(-1)! };
    case "backup": {
      // --type=immediate stops where the set becomes consistent, on its own timeline: any set does.
      const set = info.backups.find((b) => b.label === target.label);
      return set ? { set } : { problem: `no backup labelled ${target.label}; the repository holds ${info.backups.map((b) => b.label).join(", ")}` };
    }
    case "time": {
      if (Number.isNaN(target.time.getTime())) return { problem: `not a time; expected ISO 8601 with a zone, like 2026-11-27T14:05:00Z; ${span}` };
      if (target.time > now) return { problem: `${iso(target.time)} is in the future; ${span}` };
      if (target.time > range.latest) return { problem: `${iso(target.time)} is after the newest commit in the archive, so the repository cannot reach it (\`--latest\` restores all it holds); ${span}` };
      const set = reaching.filter((b) => consistentBy(b) <= target.time).at(-1);
      if (!set) {
        const before = target.time < consistentBy(info.backups[0]!) ? "before the end of the oldest backup, which no backup covers" : `before the end of the oldest backup that reaches timeline ${timeline}`;
        return { problem: `${iso(target.time)} is ${before}; ${span}` };
      }
      return { set };
    }
  }
}

/** A --to argument: ISO 8601, a zone required (a restore to the wrong hour loses or keeps an hour of writes), and a date and time that exist. */
export function parseRestoreTime(text: string): Date {
  const m = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/.exec(text.trim());
  if (!m) throw new PgprovError(`--to ${text}: expected a time in ISO 8601 with its zone, like 2026-11-27T14:05:00Z or 2026-11-27 15:05:00+01:00`);
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map((x) => Number(x ?? 0)) as [number, number, number, number, number, number];
  // Date rolls what does not exist over (February 30 becomes March 2): refuse it instead.
  const calendar = new Date(Date.UTC(year, month - 1, day));
  if (month < 1 || month > 12 || calendar.getUTCMonth() !== month - 1 || calendar.getUTCDate() !== day) {
    throw new PgprovError(`--to ${text}: ${m[1]}-${m[2]}-${m[3]} is not a date (no day ${day} in month ${month} of ${year})`);
  }
  if (hour > 23 || minute > 59 || second > 59) throw new PgprovError(`--to ${text}: ${m[4]}:${m[5]}${m[6] ? `:${m[6]}` : ""} is not a time of day`);
  const zone = m[8]!;
  if (zone !== "Z" && (Number(zone.slice(1, 3)) > 14 || Number(zone.slice(-2)) > 59)) throw new PgprovError(`--to ${text}: ${zone} is not a time zone offset`);
  return new Date(text.trim().replace(" ", "T"));
}

function iso(d: Date): string {
  return d.toISOString();
}
