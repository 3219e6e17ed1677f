/**
 * Why a standby does not stream, in its own words: when the primary does not see a standby
 * stream, apply asks the standby itself (its WAL receiver, the primary_conninfo it uses and which
 * file that comes from, the last error of its log), so the failure shows the cause. A
 * primary_conninfo set by hand may carry a password: it is masked in everything shown.
 */
import { maskConninfoPassword } from "../postgres/overrides.js";
import { HostPostgres, type Row } from "../transport/postgres.js";
import type { HostConnection } from "../transport/ssh.js";

export const STANDBY_QUERY = `select pg_is_in_recovery() as in_recovery,
  (select status from pg_stat_wal_receiver) as status,
  (select sender_host from pg_stat_wal_receiver) as sender_host,
  s.setting as primary_conninfo, s.sourcefile, s.sourceline
  from pg_settings s where s.name = 'primary_conninfo'`;

/** The last error in the newest PostgreSQL log of Debian's layout (the server may be down). */
export const LAST_LOG_ERROR = `f=$(ls -t /var/log/postgresql/postgresql-*.log 2>/dev/null | head -n 1)
[ -n "$f" ] && tail -n 1000 "$f" | grep -E '(FATAL|PANIC|ERROR): ' | tail -n 1 | cut -c 1-400
true`;

/** What the standby said, as one sentence; `sql` is its row or why it could not be read. */
export function describeStandby(sql: Row | string, logError: string): string {
  const parts: string[] = [];
  if (typeof sql === "string") {
    parts.push(`its server cannot be queried (${sql})`);
  } else if (sql.in_recovery !== true) {
    parts.push("it is not in recovery: it runs as a primary, not as a standby");
  } else {
    parts.push(sql.status ? `its WAL receiver is ${String(sql.status)}${sql.sender_host ? ` (connected to ${String(sql.sender_host)})` : ""}` : "it has no WAL receiver (it cannot connect to its primary, or is not configured to)");
    const conninfo = String(sql.primary_conninfo ?? "");
    const source = sql.sourcefile ? ` from ${String(sql.sourcefile)}:${String(sql.sourceline)}` : "";
    parts.push(conninfo ? `its primary_conninfo '${maskConninfoPassword(conninfo)}'${source}` : "its primary_conninfo is empty");
  }
  const error = logError.trim();
  if (error) parts.push(`the last error in its log: ${maskConninfoPassword(error)}`);
  return parts.join("; ");
}

/** Asks the standby (bounded: every query and the log read have one). */
export async function askStandby(connection: HostConnection, port: number): Promise<string> {
  let row: Row | string;
  try {
    const postgres = await HostPostgres.connect(connection, { port, timeoutMs: 10_000 });
    try {
      row = (await postgres.query(STANDBY_QUERY))[0] ?? "no row for primary_conninfo";
    } finally {
      await postgres.close();
    }
  } catch (e) {
    row = (e as Error).message;
  }
  const log = await connection.run(LAST_LOG_ERROR, { timeoutMs: 10_000, purpose: "the last error of the PostgreSQL log" }).catch(() => ({ stdout: "" }));
  return describeStandby(row, log.stdout);
}
