/** PostgreSQL's timeline history files (NNNNNNNN.history in pg_wal): each ancestor timeline, and where it was left. */

/** One line of a history file: `timeline` was left, for the next one, at `switchLsn`. */
export interface HistoryEntry {
  timeline: number;
  switchLsn: string;
}

/** Parses PostgreSQL's NNNNNNNN.history ("1\t0/5000148\treason"); comments and blank lines skipped. */
export function parseTimelineHistory(text: string): HistoryEntry[] {
  const entries: HistoryEntry[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*(\d+)\s+([0-9A-Fa-f]+\/[0-9A-Fa-f]+)/.exec(line);
    if (m) entries.push({ timeline: Number(m[1]), switchLsn: m[2]!.toUpperCase() });
  }
  return entries;
}
