/**
 * pg_databases: the inventory's databases, their owners, settings and extensions, on the primary.
 * A database is created when missing and never dropped; its encoding and locale are fixed when
 * it is created, so an existing database whose differ from the inventory's is reported, never
 * re-created. An extension dropped by hand is created again; one whose package is not installed
 * is a failure naming the package. Everything is read in one psql, which connects to each
 * database that has extensions.
 */
import { z } from "zod";
import { sqlIdentifier, sqlLiteral } from "../common/sql.js";
import { type Change, noChange } from "../engine/change.js";
import { type Module, TaskFailure } from "../engine/module.js";
import { extensionPackage, KNOWN_EXTENSIONS } from "./extensions.js";
import { databaseName, objectSettings, setClause, settingsToSet } from "./names.js";
import { partsOf, type Row, type Rows, type Sql } from "./psql.js";

export const databaseArgs = z.strictObject({
  name: databaseName,
  owner: z.string().min(1).default("postgres"),
  encoding: z.string().regex(/^[A-Za-z0-9_-]+$/, "an encoding name like UTF8").optional(),
  locale: z.string().regex(/^[A-Za-z0-9_.@-]+$/, "a locale name like en_US.UTF-8 or C").optional(),
  template: databaseName.optional(),
  extensions: z.array(z.string().refine((e) => e in KNOWN_EXTENSIONS, "an extension pgprov knows")).default([]),
  settings: objectSettings,
});
export type DatabaseArgs = z.output<typeof databaseArgs>;

export const databasesArgs = z.strictObject({
  databases: z.array(databaseArgs).default([]),
  /** The server's major version: names the package an extension needs. */
  version: z.union([z.number(), z.string()]),
});
export type DatabasesArgs = z.output<typeof databasesArgs>;

/** The extensions CREATE EXTENSION makes (not a library only, like auto_explain). */
const creatable = (db: DatabaseArgs) => db.extensions.filter((e) => !KNOWN_EXTENSIONS[e]!.libraryOnly);

export function pgDatabases(sql: Sql): Module<DatabasesArgs> {
  return {
    name: "pg_databases",
    args: databasesArgs,

    probe: (args) =>
      sql.probeIn([
        { database: "postgres", query: databasesQuery(args) },
        ...args.databases.filter((d) => creatable(d).length).map((d) => ({ database: d.name, query: `select extname from pg_extension` })),
      ]),

    decide(args, state) {
      const read = partsOf(state);
      const unreadable = "error" in read ? read.error : "error" in read.parts[0]! ? read.parts[0].error : undefined;
      const first = "error" in read ? undefined : read.parts[0]!;
      const rows = first && !("error" in first) ? first.rows : [];
      const byName = new Map(rows.filter((r) => r.datname).map((r) => [String(r.datname), r]));
      const available = new Set(rows.flatMap((r) => (r.available as string[] | null) ?? []));
      const extensionParts = "error" in read ? [] : read.parts.slice(1);
      const changes: Change[] = [];
      const warnings: string[] = [];
      let withExtensions = 0;
      for (const db of args.databases) {
        const row = byName.get(db.name);
        const name = sqlIdentifier(db.name);
        if (!row) {
          const create = `CREATE DATABASE ${name} ${createOptions(db)}`;
          const sets = Object.entries(db.settings).map(([k, v]) => `ALTER DATABASE ${name} SET ${setClause(k, v)}`);
          const summary = unreadable === undefined ? `create database ${db.name} (owner ${db.owner})` : `database ${db.name} (cannot read databases now: ${unreadable})`;
          changes.push({ action: "create", summary, commands: [sql.command([create, ...sets], [create, ...sets].join("; "))] });
        } else {
          if (row.owner !== db.owner) {
            const alter = `ALTER DATABASE ${name} OWNER TO ${sqlIdentifier(db.owner)}`;
            changes.push({ action: "update", summary: `database ${db.name}: owner ${db.owner} (was ${String(row.owner)})`, commands: [sql.command([alter], alter)] });
          }
          const settings = settingsToSet(db.settings, (row.settings as string[] | null) ?? []);
          if (settings.length) {
            const sets = settings.map(([k, v]) => `ALTER DATABASE ${name} SET ${setClause(k, v)}`);
            changes.push({ action: "update", summary: `database ${db.name}: set ${settings.map(([k]) => k).join(", ")}`, commands: [sql.command(sets, sets.join("; "))] });
          }
          warnings.push(...fixedAtCreation(db, row));
        }
        if (!creatable(db).length) continue;
        const part: Rows | undefined = extensionParts[withExtensions++];
        const installed = new Set(part && !("error" in part) ? part.rows.map((r) => String(r.extname)) : []);
        const missing = creatable(db).filter((e) => !installed.has(e));
        if (!missing.length) continue;
        // Without the package, CREATE EXTENSION would fail on the host: say which package it needs.
        const notAvailable = unreadable === undefined ? missing.filter((e) => !available.has(e)) : [];
        if (notAvailable.length) {
          throw new TaskFailure(
            `${notAvailable.map((e) => `extension ${e} (database ${db.name}) is not installed on this host: it comes with the Debian package ${extensionPackage(e, args.version)}`).join("; ")}; ` +
              `list the package in the inventory's postgresql.packages, or install it`,
          );
        }
        const creates = missing.map((e) => `CREATE EXTENSION IF NOT EXISTS ${sqlIdentifier(e)}`);
        changes.push({ action: "create", summary: `database ${db.name}: create extension ${missing.join(", ")}`, commands: [sql.command(creates, creates.join("; "), db.name)] });
      }
      const decision = changes.length ? { changes } : noChange(args.databases.length ? `databases ${args.databases.map((d) => d.name).join(", ")} as in the inventory` : "no databases declared");
      return warnings.length ? { ...decision, warnings } : decision;
    },
  };
}

function createOptions(db: DatabaseArgs): string {
  return [
    `OWNER ${sqlIdentifier(db.owner)}`,
    db.template ? `TEMPLATE ${sqlIdentifier(db.template)}` : "",
    db.encoding ? `ENCODING ${sqlLiteral(db.encoding)}` : "",
    db.locale ? `LOCALE ${sqlLiteral(db.locale)}` : "",
  ]
    .filter(Boolean)
    .join(" ");
}

/** Encoding and locale are fixed when a database is created: a difference is reported, never "fixed". */
function fixedAtCreation(db: DatabaseArgs, row: Row): string[] {
  const warnings: string[] = [];
  const norm = (s: unknown) => String(s).toLowerCase().replace(/[-_]/g, "");
  if (db.encoding && norm(db.encoding) !== norm(row.encoding)) {
    warnings.push(`database ${db.name} has encoding ${String(row.encoding)}, the inventory says ${db.encoding}; pgprov never re-creates a database: change the inventory, or move the data yourself`);
  }
  if (db.locale && (norm(db.locale) !== norm(row.collate) || norm(db.locale) !== norm(row.ctype))) {
    warnings.push(
      `database ${db.name} has locale ${String(row.collate)} (LC_CTYPE ${String(row.ctype)}), the inventory says ${db.locale}; pgprov never re-creates a database: change the inventory, or move the data yourself`,
    );
  }
  return warnings;
}

/** The databases named, and which of their extensions this host's packages provide. */
function databasesQuery(args: DatabasesArgs): string {
  const names = args.databases.map((d) => sqlLiteral(d.name)).join(", ");
  const extensions = [...new Set(args.databases.flatMap(creatable))].map(sqlLiteral).join(", ");
  return (
    `select d.datname, pg_get_userbyid(d.datdba) as owner, pg_encoding_to_char(d.encoding) as encoding, d.datcollate as collate, d.datctype as ctype, ` +
    `(select s.setconfig from pg_db_role_setting s where s.setdatabase = d.oid and s.setrole = 0) as settings, null::text[] as available ` +
    `from pg_database d where d.datname in (${names || "null"}) ` +
    // pg_available_extensions reads every extension's control file: only when some are wanted.
    `union all select null, null, null, null, null, null, ${extensions ? `array(select name from pg_available_extensions where name in (${extensions}))` : "'{}'::text[]"}`
  );
}
