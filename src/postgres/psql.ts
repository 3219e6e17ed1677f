/**
 * SQL inside the shell batch: psql as `postgres` (peer authentication on the Unix socket, which
 * works before pgprov's pg_hba is in place), statements on its stdin (never in arguments), each
 * result as one JSON array of rows. A host's SQL probes of a batch share one psql, so reading
 * PostgreSQL costs no round trip of its own; a probe that reads other databases (their extensions,
 * what a role owns there) is read in the same psql, which connects to each database in turn.
 */
import { shellQuote } from "../common/shell.js";
import { sqlLiteral } from "../common/sql.js";
import type { Command } from "../engine/change.js";
import type { ProbeOutput, ProbeReader, SharedProbe } from "../engine/module.js";

export type Row = Record<string, unknown>;

/** Bounds every wait: connecting, and each statement. */
const CONNECT_TIMEOUT_S = 10;
const STATEMENT_TIMEOUT = "15s";
/**
 * pgprov's own writes (the replication role) never wait for synchronous standbys: on a bootstrap
 * none exists yet (it needs that role to clone), and with them down, apply is how they come back.
 * statement_timeout does not bound that wait. A rerun puts back a change a failover lost.
 */
const SESSION_OPTIONS = `-c statement_timeout=${STATEMENT_TIMEOUT} -c synchronous_commit=local`;

/** The database psql connects to first, where plain probes and commands run. */
const DEFAULT_DATABASE = "postgres";

/** A query run in a database of its own (see Sql.probeIn). */
export interface DatabaseQuery {
  database: string;
  query: string;
}

/** A shared item: a query in the default database, or queries in named ones (one result each). */
type Item = string | { parts: DatabaseQuery[] };

export interface Sql {
  /** A query whose rows are the probe's state (read them with `rowsOf`). */
  probe(query: string): SharedProbe<Item>;
  /** Queries in the databases they name, as one probe (read its results with `partsOf`). */
  probeIn(parts: DatabaseQuery[]): SharedProbe<Item>;
  /** Statements run in order, stopping at the first error; `display` is what a failure shows. */
  command(statements: string[], display: string, database?: string): Command;
}

/**
 * A database name psql's `\connect` takes as it is: the inventory only allows such names. The
 * check is here too, since nothing else stands between a name and psql's meta-command parser.
 */
function connectable(database: string): string {
  if (!/^[a-z_][a-z0-9_$]*$/.test(database)) throw new Error(`not a database name psql can connect to as it is: ${JSON.stringify(database)}`);
  return database;
}

/** SQL on the server listening on `port` (its Unix socket in /var/run/postgresql). */
export function psql(port: number): Sql {
  const run = (stopOnError: boolean, database = DEFAULT_DATABASE) =>
    // The newest installed psql itself: Debian's /usr/bin/psql is a Perl wrapper that costs
    // three times as much as the query. Any version's psql talks to any server.
    // setpriv, not runuser: the same user and groups, without a PAM session and the child runuser
    // forks to close it (a quarter of this section's cost on a busy host).
    `for psql in /usr/lib/postgresql/*/bin/psql; do :; done; [ -x "$psql" ] || psql=psql\n` +
    `PGCONNECT_TIMEOUT=${CONNECT_TIMEOUT_S} PGOPTIONS=${shellQuote(SESSION_OPTIONS)} setpriv --reuid=postgres --regid=postgres --init-groups -- ` +
    `"$psql" -XAtq -p ${port} -d ${shellQuote(connectable(database))} -v ON_ERROR_STOP=${stopOnError ? 1 : 0}`;
  const select = (query: string) => `select coalesce(json_agg(t), '[]') from (${query}) t;`;
  const reader: ProbeReader<Item> = {
    name: `psql:${port}`,
    script(items) {
      // The default database's queries first, then each other database's, connected to once.
      const lines: string[] = [];
      const elsewhere = new Map<string, { marker: string; query: string }[]>();
      items.forEach((item, k) => {
        if (typeof item === "string") return lines.push(`\\echo @@${k}`, select(item));
        item.parts.forEach((p, n) => {
          const marker = `${k}.${n}`;
          if (p.database === DEFAULT_DATABASE) return lines.push(`\\echo @@${marker}`, select(p.query));
          elsewhere.set(p.database, [...(elsewhere.get(p.database) ?? []), { marker, query: p.query }]);
        });
      });
      for (const [database, parts] of elsewhere) {
        // A database that does not exist (yet) is not connected to: psql would lose its connection.
        lines.push(
          `select exists (select from pg_database where datname = ${sqlLiteral(connectable(database))} and datallowconn) as pgprov_exists \\gset`,
          `\\if :pgprov_exists`,
          `\\connect ${database}`,
          ...parts.flatMap((p) => [`\\echo @@${p.marker}`, select(p.query)]),
          `\\else`,
          ...parts.flatMap((p) => [`\\echo @@${p.marker}`, `\\echo '!database ${database} does not exist'`]),
          `\\endif`,
        );
      }
      return [`${run(false)} <<'PGPROV_SQL'`, ...lines, `\\echo @@end`, `PGPROV_SQL`].join("\n");
    },
    split(output, items) {
      // Each result runs from its marker line to the next one (JSON strings hold no raw line break).
      const found = new Map<string, string>();
      const markers = [...output.stdout.matchAll(/^@@(\S+)$/gm)];
      markers.forEach((m, i) => {
        const start = m.index + m[0].length + 1;
        found.set(m[1]!, output.stdout.slice(start, markers[i + 1]?.index ?? start).trim());
      });
      const failed = (why: string): ProbeOutput => ({ stdout: "", stderr: why, code: output.code || 1 });
      // No rows at all: psql could not connect, or this statement failed (its error is on stderr).
      const why = output.stderr.trim() || "psql printed nothing";
      return items.map((item, k) => {
        if (typeof item === "string") {
          const json = found.get(String(k));
          return json ? { stdout: json, stderr: "", code: 0 } : failed(why);
        }
        if (!found.has(`${k}.0`) && item.parts.length) return failed(why);
        const parts = item.parts.map((_p, n) => {
          const json = found.get(`${k}.${n}`);
          if (!json) return { error: lastLine(why) };
          if (json.startsWith("!")) return { error: json.slice(1) };
          const read = rowsOf({ stdout: json, stderr: "", code: 0 });
          return read;
        });
        return { stdout: JSON.stringify(parts), stderr: "", code: 0 };
      });
    },
  };
  return {
    probe: (query) => ({ reader, item: query }),
    probeIn: (parts) => ({ reader, item: { parts } }),
    command: (statements, display, database) => ({
      script: [`${run(true, database)} <<'PGPROV_SQL'`, ...statements.map((s) => `${s};`), `PGPROV_SQL`].join("\n"),
      display: database && database !== DEFAULT_DATABASE ? `in database ${database}: ${display}` : display,
    }),
  };
}

export type Rows = { rows: Row[] } | { error: string };

/** The rows a SQL probe read, or why it could not (server down, not installed yet, ...). */
export function rowsOf(state: ProbeOutput): Rows {
  if (state.code !== 0) return { error: lastLine(state.stderr) };
  try {
    return { rows: JSON.parse(state.stdout) as Row[] };
  } catch {
    return { error: `unreadable psql output: ${state.stdout.slice(0, 200)}` };
  }
}

/** The results of a `probeIn`, one per part in order, or why none could be read. */
export function partsOf(state: ProbeOutput): { parts: Rows[] } | { error: string } {
  const read = rowsOf(state);
  return "error" in read ? read : { parts: read.rows as unknown as Rows[] };
}

function lastLine(text: string): string {
  return text.trim().split("\n").at(-1) ?? "";
}
