/**
 * What the repository holds, read from `pgbackrest info --output=json`, and which restore
 * targets it covers. Pure: `pgprov backups`, `status`, `check` and `restore` read the same.
 */
import { PgprovError } from "../common/errors.js";

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
}

export interface Restorable {
  /** The end of the oldest backup: the earliest consistent point. */
  earliest: Date;
  /** When the newest archived WAL segment reached the repository (or the newest backup's end). */
  latest: Date;
}

export interface RepositoryInfo {
  stanza: string;
  /** pgBackRest's status: "ok", or why not ("no valid backups", "missing stanza path"). */
  status: string;
  backups: BackupEntry[];
  wal_min?: string;
  wal_max?: string;
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
  }[];
}

/** `newestWal`: the modification time of the newest archived WAL file, in seconds (undefined: none). */
export function parseRepositoryInfo(json: string, stanza: string, newestWal?: number): RepositoryInfo {
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
    .map((b) => ({
      label: b.label,
      type: b.type,
      start: new Date(b.timestamp.start * 1000),
      stop: new Date(b.timestamp.stop * 1000),
      size_bytes: b.info?.size ?? 0,
      repository_bytes: b.info?.repository?.size ?? 0,
      wal_start: b.archive?.start ?? "",
      wal_stop: b.archive?.stop ?? "",
    }));
  const archives = (raw.archive ?? []).filter((a) => a.min && a.max);
  const info: RepositoryInfo = { stanza, status: raw.status?.message ?? "unknown", backups };
  if (archives.length) {
    info.wal_min = archives[0]!.min!;
    info.wal_max = archives.at(-1)!.max!;
  }
  if (backups.length) {
    const newestStop = backups.at(-1)!.stop;
    const wal = newestWal !== undefined ? new Date(newestWal * 1000) : undefined;
    info.restorable = { earliest: backups[0]!.stop, latest: wal && wal > newestStop ? wal : newestStop };
  }
  return info;
}

export type RestoreTarget = { kind: "time"; time: Date } | { kind: "latest" } | { kind: "backup"; label: string };

/** Why a restore target cannot be reached from this repository; undefined when it can. Nothing is stopped before this says yes. */
export function restoreTargetProblem(target: RestoreTarget, info: RepositoryInfo, now: Date): string | undefined {
  const range = info.restorable;
  if (!range) return `the repository holds no backup of stanza ${info.stanza} (${info.status}): nothing to restore from; take one with \`pgprov backup\``;
  const span = `the repository can restore from ${iso(range.earliest)} (the end of backup ${info.backups[0]!.label}) to ${iso(range.latest)} (the newest archived WAL)`;
  switch (target.kind) {
    case "latest":
      return undefined;
    case "backup":
      return info.backups.some((b) => b.label === target.label)
        ? undefined
        : `no backup labelled ${target.label}; the repository holds ${info.backups.map((b) => b.label).join(", ")}`;
    case "time":
      if (Number.isNaN(target.time.getTime())) return `not a time; expected ISO 8601 with a zone, like 2026-11-27T14:05:00Z; ${span}`;
      if (target.time > now) return `${iso(target.time)} is in the future; ${span}`;
      if (target.time < range.earliest) return `${iso(target.time)} is before the end of the oldest backup, which no backup covers; ${span}`;
      if (target.time > range.latest) return `${iso(target.time)} is after the newest WAL in the archive, so the repository cannot reach it; ${span}`;
      return undefined;
  }
}

/** A --to argument: ISO 8601, a zone required (a restore to the wrong hour loses or keeps an hour of writes). */
export function parseRestoreTime(text: string): Date {
  if (!/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/.test(text.trim())) {
    throw new PgprovError(`--to ${text}: expected a time in ISO 8601 with its zone, like 2026-11-27T14:05:00Z or 2026-11-27 15:05:00+01:00`);
  }
  return new Date(text.trim().replace(" ", "T"));
}

function iso(d: Date): string {
  return d.toISOString();
}
