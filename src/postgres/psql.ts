/**
 * SQL inside the shell batch: psql as `postgres` (peer authentication on the Unix socket, which
 * works before pgprov's pg_hba is in place), statements on its stdin (never in arguments), each
 * result as one JSON array of rows. A host's SQL probes of a batch share one psql, so reading
 * PostgreSQL costs no round trip of its own.
 */
import { shellQuote } from "../common/shell.js";
import type { Command } from "../engine/change.js";
import type { ProbeOutput, ProbeReader, SharedProbe } from "../engine/module.js";

export type Row = Record<string, unknown>;

/** Bounds every wait: connecting, and each statement. */
const CONNECT_TIMEOUT_S = 10;
const STATEMENT_TIMEOUT = "15s";

export interface Sql {
  /** A query whose rows are the probe's state (read them with `rowsOf`). */
  probe(query: string): SharedProbe<string>;
  /** Statements run in order, stopping at the first error; `display` is what a failure shows. */
  command(statements: string[], display: string): Command;
}

/** SQL on the server listening on `port` (its Unix socket in /var/run/postgresql). */
export function psql(port: number): Sql {
  const run = (stopOnError: boolean) =>
    // The newest installed psql itself: Debian's /usr/bin/psql is a Perl wrapper that costs
    // three times as much as the query. Any version's psql talks to any server.
    // setpriv, not runuser: the same user and groups, without a PAM session and the child runuser
    // forks to close it (a quarter of this section's cost on a busy host).
    `for psql in /usr/lib/postgresql/*/bin/psql; do :; done; [ -x "$psql" ] || psql=psql\n` +
    `PGCONNECT_TIMEOUT=${CONNECT_TIMEOUT_S} PGOPTIONS=${shellQuote(`-c statement_timeout=${STATEMENT_TIMEOUT}`)} setpriv --reuid=postgres --regid=postgres --init-groups -- ` +
    `"$psql" -XAtq -p ${port} -v ON_ERROR_STOP=${stopOnError ? 1 : 0}`;
  const reader: ProbeReader<string> = {
    name: `psql:${port}`,
    script: (queries) =>
      [
        `${run(false)} <<'PGPROV_SQL'`,
        ...queries.flatMap((q, k) => [`\\echo @@${k}`, `select coalesce(json_agg(t), '[]') from (${q}) t;`]),
        `\\echo @@end`,
        `PGPROV_SQL`,
      ].join("\n"),
    split(output, queries) {
      return queries.map((_q, k) => {
        const start = output.stdout.indexOf(`@@${k}\n`);
        const end = output.stdout.indexOf(`@@${k + 1 === queries.length ? "end" : k + 1}\n`, start);
        const json = start < 0 || end < 0 ? "" : output.stdout.slice(start + `@@${k}\n`.length, end).trim();
        // No rows at all: psql could not connect, or this statement failed (its error is on stderr).
        if (!json) return { stdout: "", stderr: output.stderr.trim() || "psql printed nothing", code: output.code || 1 };
        return { stdout: json, stderr: "", code: 0 };
      });
    },
  };
  return {
    probe: (query) => ({ reader, item: query }),
    command: (statements, display) => ({
      script: [`${run(true)} <<'PGPROV_SQL'`, ...statements.map((s) => `${s};`), `PGPROV_SQL`].join("\n"),
      display,
    }),
  };
}

/** The rows a SQL probe read, or why it could not (server down, not installed yet, ...). */
export function rowsOf(state: ProbeOutput): { rows: Row[] } | { error: string } {
  if (state.code !== 0) return { error: lastLine(state.stderr) };
  try {
    return { rows: JSON.parse(state.stdout) as Row[] };
  } catch {
    return { error: `unreadable psql output: ${state.stdout.slice(0, 200)}` };
  }
}

function lastLine(text: string): string {
  return text.trim().split("\n").at(-1) ?? "";
}
