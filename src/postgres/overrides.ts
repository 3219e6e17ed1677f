/**
 * pg_setting_overrides: every setting pgprov's own configuration file sets takes effect. A file
 * PostgreSQL reads later wins over it: postgresql.auto.conf (ALTER SYSTEM) above all, then a later
 * file of conf.d or an `include` after it. Which names pgprov manages is read from the file itself
 * (pg_file_settings), so no list of names has to be kept in sync with its template.
 *
 * An ALTER SYSTEM override is reset (ALTER SYSTEM RESET, then a reload; a setting that needs a
 * restart is then restarted by pg_restart_pending, which must come later in the playbook). An
 * override in a file pgprov does not own, or on the server's command line, is not edited: the
 * task fails and names where it is, for a person to decide.
 *
 * Also: no recovery_target* or restore_command in postgresql.auto.conf outside a restore.
 * pgBackRest's restore writes them there; left behind (a restore that failed before resetting
 * them), a later recovery of this server (a restart as a standby, a crash) would stop at that old
 * target and promote itself: a second writable server. A server mid-restore (recovery.signal,
 * not a standby) keeps them: its recovery needs them.
 */
import { z } from "zod";
import { MASK } from "../common/redact.js";
import { sqlLiteral } from "../common/sql.js";
import { type Change, noChange } from "../engine/change.js";
import { type Module, TaskFailure } from "../engine/module.js";
import { rowsOf, type Sql } from "./psql.js";

export const overridesArgs = z.strictObject({
  /** pgprov's configuration file, as PostgreSQL names it (an absolute path). */
  file: z.string().regex(/^\/.+/, "an absolute path"),
  /** Where the server's data must be: one elsewhere (data_directory set by hand) is refused. */
  data_directory: z.string().regex(/^\/.+/, "an absolute path"),
});
export type OverridesArgs = z.output<typeof overridesArgs>;

/**
 * A later setting of a name pgprov's file sets, from pg_file_settings (or the command line). A
 * name set twice in pgprov's own file (the inventory's postgresql.settings after the template's
 * defaults) is not one: that is the inventory's choice.
 */
export interface Override {
  name: string;
  /** null: the server's command line (pg_ctl.conf's options, or the service unit). */
  sourcefile: string | null;
  sourceline: number | null;
  setting: string | null;
  /** The line of pgprov's file it overrides. */
  line: number;
  /** pg_settings.context: "postmaster" needs a restart. */
  context: string | null;
}

export interface OverridesState {
  autoFile: string;
  dataDirectory: string;
  /** Where data_directory is set, "file:line", or null (on the command line). */
  dataDirectorySource: string | null;
  fileExists: boolean;
  fileRead: boolean;
  overrides: Override[];
  /** recovery_target* and restore_command in postgresql.auto.conf, outside a restore. */
  recoveryLeftovers: RecoverySetting[];
}

const NAME = /^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$/;

/**
 * The recovery settings in postgresql.auto.conf (pgBackRest's restore writes them there), and
 * whether the server is mid-restore (recovery.signal without standby.signal): what apply removes
 * and check reports outside a restore. `fileSettings`: pg_file_settings, or the probe's one read of it.
 */
export function recoverySettingsSql(fileSettings = "pg_file_settings"): string {
  return `coalesce((select jsonb_agg(jsonb_build_object('name', name, 'sourceline', sourceline, 'setting', setting) order by seqno)
    from ${fileSettings} where sourcefile = current_setting('data_directory') || '/postgresql.auto.conf'
    and (name like 'recovery\\_target%' or name = 'restore_command')), '[]'::jsonb) as recovery_settings,
  (pg_stat_file('recovery.signal', true)).size is not null and (pg_stat_file('standby.signal', true)).size is null as mid_restore`;
}

export interface RecoverySetting {
  name: string;
  sourceline: number;
  setting: string | null;
}

/**
 * The recovery settings left in postgresql.auto.conf outside a restore (none while one runs). A
 * restore_command alone sets no target (a DBA's own archive, say): only with a recovery_target*.
 */
export function recoveryLeftovers(row: Record<string, unknown>): RecoverySetting[] {
  if (row.mid_restore === true) return [];
  const settings = (row.recovery_settings as RecoverySetting[] | null) ?? [];
  return settings.some((r) => r.name.startsWith("recovery_target")) ? settings : [];
}

/** ALTER SYSTEM RESET of each named setting (ALTER SYSTEM cannot run in a transaction block: one statement each); names that are not a setting's refused. */
export function resetStatements(names: string[]): string[] {
  const bad = names.find((n) => !NAME.test(n));
  if (bad !== undefined) throw new TaskFailure(`cannot reset a setting named ${JSON.stringify(bad)}`);
  return [...new Set(names)].map((n) => `ALTER SYSTEM RESET ${n}`);
}

export function overridesQuery(file: string): string {
  const f = sqlLiteral(file);
  // pg_file_settings reads and parses every configuration file each time it is scanned, and
  // pg_settings builds every setting's row: each is read once here (the probe runs on every host
  // at every run).
  return `with fs as materialized (select name, setting, sourcefile, sourceline, seqno from pg_file_settings),
  ps as materialized (select name, context, source from pg_settings where name in (select name from fs where sourcefile = ${f}))
select current_setting('data_directory') || '/postgresql.auto.conf' as auto_file,
  current_setting('data_directory') as data_directory,
  (select sourcefile || ':' || sourceline from fs where name = 'data_directory' order by seqno desc limit 1) as data_directory_source,
  (pg_stat_file(${f}, true)).size is not null as file_exists,
  exists (select from fs where sourcefile = ${f}) as file_read,
  coalesce((select jsonb_agg(jsonb_build_object('name', o.name, 'sourcefile', o.sourcefile, 'sourceline', o.sourceline,
      'setting', o.setting, 'line', p.sourceline, 'context', s.context) order by o.seqno)
    from fs p join fs o on o.name = p.name and o.seqno > p.seqno
    left join ps s on s.name = p.name
    where p.sourcefile = ${f} and o.sourcefile <> ${f}), '[]'::jsonb) ||
  coalesce((select jsonb_agg(jsonb_build_object('name', s.name, 'sourcefile', null, 'sourceline', null,
      'setting', current_setting(s.name), 'line', p.sourceline, 'context', s.context) order by s.name)
    from fs p join ps s on s.name = p.name
    where p.sourcefile = ${f} and s.source = 'command line'), '[]'::jsonb) as overrides,
  ${recoverySettingsSql("fs")}`;
}

/** The probe's row as a state; undefined when there is none (the query did not run). */
export function parseOverrides(row: Record<string, unknown> | undefined): OverridesState | undefined {
  if (!row) return undefined;
  return {
    autoFile: String(row.auto_file),
    dataDirectory: String(row.data_directory),
    dataDirectorySource: row.data_directory_source == null ? null : String(row.data_directory_source),
    fileExists: row.file_exists === true,
    fileRead: row.file_read === true,
    overrides: (row.overrides as Override[] | null) ?? [],
    recoveryLeftovers: recoveryLeftovers(row),
  };
}

/**
 * A value as it may be shown: a password in a connection string (a primary_conninfo set by
 * hand may carry one) is masked, and a command (archive_command, restore_command...) is not
 * shown at all, since it may carry any credential.
 */
export function showSetting(name: string, value: string): string {
  if (name.endsWith("_command")) return "(a command, not shown)";
  return `'${maskConninfoPassword(value)}'`;
}

/** The password in a libpq connection string, keyword (`password=...`, any quoting) or URI (`postgresql://user:PW@host`) form. */
export function maskConninfoPassword(conninfo: string): string {
  return conninfo
    .replace(/(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'&]+)/gi, `$1${MASK}`)
    .replace(/(postgres(?:ql)?:\/\/[^:/@\s]*:)[^@\s]*@/gi, `$1${MASK}@`);
}

function where(o: Override): string {
  return o.sourcefile === null ? "on the server's command line (pg_ctl.conf's options, or the service unit)" : `in ${o.sourcefile}:${o.sourceline}`;
}

export function pgSettingOverrides(sql: Sql): Module<OverridesArgs> {
  return {
    name: "pg_setting_overrides",
    args: overridesArgs,

    probe: (args) => sql.probe(overridesQuery(args.file)),

    decide(args, probe) {
      const read = rowsOf(probe);
      if ("error" in read) return noChange(`cannot read the server's settings now (${read.error}); the next run checks again`);
      const state = parseOverrides(read.rows[0]);
      if (!state) return noChange("no settings read");
      if (state.dataDirectory !== args.data_directory) {
        throw new TaskFailure(
          `the server runs from ${state.dataDirectory} (data_directory set ${state.dataDirectorySource ? `in ${state.dataDirectorySource}` : "on its command line"}), ` +
            `not from ${args.data_directory}: pgprov's reads and clones would act on a directory the server does not use. Refusing; put data_directory back, or move the data, by hand`,
        );
      }
      if (!state.fileExists) return noChange(`${args.file} does not exist yet`);
      if (!state.fileRead) {
        throw new TaskFailure(
          `PostgreSQL does not read ${args.file}, so none of pgprov's settings take effect: ` +
            `postgresql.conf must include its directory (include_dir = 'conf.d', as Debian's does)`,
        );
      }
      const foreign = state.overrides.filter((o) => o.sourcefile !== state.autoFile);
      if (foreign.length) {
        throw new TaskFailure(
          `settings of ${args.file} are overridden where pgprov does not edit: ` +
            foreign.map((o) => `${o.name} = ${showSetting(o.name, o.setting ?? "")} ${where(o)} (over line ${o.line})`).join("; ") +
            `. Remove them there (pgprov's settings come from the inventory), then rerun`,
        );
      }
      const badName = state.overrides.find((o) => !NAME.test(o.name));
      if (badName !== undefined) throw new TaskFailure(`cannot reset a setting named ${JSON.stringify(badName.name)} set in ${state.autoFile}`);
      const leftovers = state.recoveryLeftovers.filter((r) => !state.overrides.some((o) => o.name === r.name));
      const badLeftover = leftovers.find((o) => !NAME.test(o.name));
      if (badLeftover !== undefined) throw new TaskFailure(`cannot reset a setting named ${JSON.stringify(badLeftover.name)} set in ${state.autoFile}`);
      if (!state.overrides.length && !leftovers.length) return noChange(`every setting of ${args.file} takes effect`);
      // ALTER SYSTEM cannot run inside a transaction block: psql runs each statement on its own.
      // A name set twice in postgresql.auto.conf is reset once; the reload follows the last reset.
      const reset = new Set<string>();
      const resets = [
        ...state.overrides.map((o) => ({
          name: o.name,
          summary:
            `reset ${o.name} = ${showSetting(o.name, o.setting ?? "")} set by ALTER SYSTEM in ${o.sourcefile}:${o.sourceline} ` +
            `(it overrides ${args.file}:${o.line})${o.context === "postmaster" ? "; takes effect on the restart for pending settings" : ""}`,
        })),
        ...leftovers.map((o) => ({
          name: o.name,
          summary: `reset ${o.name} = ${showSetting(o.name, o.setting ?? "")} in ${state.autoFile}:${o.sourceline}, left by a restore: a later recovery of this server would stop there and promote itself`,
        })),
      ];
      const changes = resets.map((o, k): Change => {
        const statements = reset.has(o.name) ? [] : [`ALTER SYSTEM RESET ${o.name}`];
        reset.add(o.name);
        if (k === resets.length - 1) statements.push("SELECT pg_reload_conf()");
        return { action: "delete", summary: o.summary, commands: statements.length ? [sql.command(statements, statements.join("; "))] : [] };
      });
      return { changes };
    },
  };
}
