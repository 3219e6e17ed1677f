import { describe, expect, it } from "vitest";
import { describeStandby } from "../../src/cluster/standby-report.js";
import type { ModuleContext, ProbeOutput } from "../../src/engine/module.js";
import { TaskFailure } from "../../src/engine/module.js";
import { maskConninfoPassword, overridesArgs, pgSettingOverrides as pgSettingOverridesOf } from "../../src/postgres/overrides.js";
import { psql } from "../../src/postgres/psql.js";

const pgSettingOverrides = pgSettingOverridesOf(psql(5432));

const context: ModuleContext = { playbookDir: "/", render: (t) => t };
const FILE = "/etc/postgresql/15/main/conf.d/pgprov.conf";
const DATA = "/var/lib/postgresql/15/main";
const AUTO = `${DATA}/postgresql.auto.conf`;
const args = overridesArgs.parse({ file: FILE, data_directory: DATA });

function probe(overrides: unknown[], extra: Record<string, unknown> = {}): ProbeOutput {
  const row = { auto_file: AUTO, data_directory: DATA, data_directory_source: "/etc/postgresql/15/main/postgresql.conf:42", file_exists: true, file_read: true, overrides, ...extra };
  return { stdout: JSON.stringify([row]), stderr: "", code: 0 };
}
const override = (name: string, setting: string, more: Record<string, unknown> = {}) => ({ name, setting, sourcefile: AUTO, sourceline: 3, line: 22, context: "sighup", ...more });
const failure = (p: ProbeOutput) => {
  try {
    pgSettingOverrides.decide(args, p, context);
  } catch (e) {
    if (e instanceof TaskFailure) return e.message;
    throw e;
  }
  throw new Error("decide did not fail");
};

describe("pg_setting_overrides: settings of pgprov's file overridden elsewhere (issue 8 item 15)", () => {
  it("issue 8 item 15: nothing to do when no later file sets a name of pgprov's", () => {
    const d = pgSettingOverrides.decide(args, probe([]), context);
    expect(d.changes).toEqual([]);
    expect(d.reason).toBe(`every setting of ${FILE} takes effect`);
  });

  it("issue 8 item 15: one reset per ALTER SYSTEM override, with where it is, what it overrides, and whether it needs a restart", () => {
    const d = pgSettingOverrides.decide(
      args,
      probe([override("hot_standby_feedback", "off", { line: 13, sourceline: 4 }), override("max_wal_senders", "5", { context: "postmaster", line: 10, sourceline: 5 })]),
      context,
    );
    expect(d.changes.map((c) => `${c.action} ${c.summary}`)).toEqual([
      `delete reset hot_standby_feedback = 'off' set by ALTER SYSTEM in ${AUTO}:4 (it overrides ${FILE}:13)`,
      `delete reset max_wal_senders = '5' set by ALTER SYSTEM in ${AUTO}:5 (it overrides ${FILE}:10); takes effect on the restart for pending settings`,
    ]);
    // Each statement on its own (ALTER SYSTEM cannot run in a transaction block), the reload last.
    const scripts = d.changes.flatMap((c) => c.commands).map((c) => c.script);
    expect(scripts).toHaveLength(2);
    expect(scripts[0]).toMatch(/"\$psql" -XAtq -p 5432 -d postgres -v ON_ERROR_STOP=1 <<'PGPROV_SQL'\nALTER SYSTEM RESET hot_standby_feedback;\nPGPROV_SQL$/);
    expect(scripts[1]).toMatch(/<<'PGPROV_SQL'\nALTER SYSTEM RESET max_wal_senders;\nSELECT pg_reload_conf\(\);\nPGPROV_SQL$/);
  });

  it("issue 11: recovery_target* and restore_command left in postgresql.auto.conf outside a restore are reset; mid-restore they stay", () => {
    const left = [
      { name: "restore_command", sourceline: 3, setting: "pgbackrest --stanza=main archive-get %f \"%p\"" },
      { name: "recovery_target_time", sourceline: 4, setting: "2026-11-27 14:05:00+00" },
      { name: "recovery_target_action", sourceline: 5, setting: "promote" },
    ];
    const d = pgSettingOverrides.decide(args, probe([], { recovery_settings: left, mid_restore: false }), context);
    expect(d.changes.map((c) => c.summary)).toEqual([
      `reset restore_command = (a command, not shown) in ${AUTO}:3, left by a restore: a later recovery of this server would stop there and promote itself`,
      `reset recovery_target_time = '2026-11-27 14:05:00+00' in ${AUTO}:4, left by a restore: a later recovery of this server would stop there and promote itself`,
      `reset recovery_target_action = 'promote' in ${AUTO}:5, left by a restore: a later recovery of this server would stop there and promote itself`,
    ]);
    expect(d.changes.at(-1)!.commands[0]!.script).toMatch(/ALTER SYSTEM RESET recovery_target_action;\nSELECT pg_reload_conf\(\);/);
    // restore_command set by pgprov.conf too: reset once, as the override it is.
    const both = pgSettingOverrides.decide(args, probe([override("restore_command", "x")], { recovery_settings: left.slice(0, 1), mid_restore: false }), context);
    expect(both.changes).toHaveLength(1);
    expect(pgSettingOverrides.decide(args, probe([], { recovery_settings: left, mid_restore: true }), context).changes).toEqual([]);
    // restore_command alone sets no target (a DBA's archive for a cluster without backups): left alone.
    expect(pgSettingOverrides.decide(args, probe([], { recovery_settings: left.slice(0, 1), mid_restore: false }), context).changes).toEqual([]);
  });

  it("issue 8 item 15: a hand-set primary_conninfo is shown with its password masked, and a command not at all", () => {
    const d = pgSettingOverrides.decide(
      args,
      probe([override("primary_conninfo", "host=10.0.0.99 user=r password='s3 cret' port=5432"), override("archive_command", "aws s3 cp %p s3://b --secret KEY")]),
      context,
    );
    const shown = d.changes.map((c) => c.summary).join("\n");
    expect(shown).toContain("reset primary_conninfo = 'host=10.0.0.99 user=r password=******** port=5432' set by ALTER SYSTEM");
    expect(shown).toContain("reset archive_command = (a command, not shown)");
    expect(shown).not.toMatch(/s3 cret|KEY/);
  });

  it("issue 8 item 15: an override in a file pgprov does not own, or on the command line, fails naming where it is", () => {
    const message = failure(
      probe([
        override("work_mem", "2MB", { sourcefile: "/etc/postgresql/15/main/conf.d/zz-local.conf", sourceline: 2 }),
        override("port", "5433", { sourcefile: null, sourceline: null, line: 5 }),
        override("hot_standby_feedback", "off"),
      ]),
    );
    expect(message).toContain("work_mem = '2MB' in /etc/postgresql/15/main/conf.d/zz-local.conf:2 (over line 22)");
    expect(message).toContain("port = '5433' on the server's command line");
    expect(message).not.toContain("hot_standby_feedback");
  });

  it("issue 8 item 15: pgprov's file not read at all, or a server running from another data directory, fails", () => {
    expect(failure(probe([], { file_read: false }))).toContain(`PostgreSQL does not read ${FILE}`);
    expect(failure(probe([], { data_directory: "/srv/pg" }))).toContain(
      `the server runs from /srv/pg (data_directory set in /etc/postgresql/15/main/postgresql.conf:42), not from ${DATA}`,
    );
    expect(pgSettingOverrides.decide(args, probe([], { file_exists: false, file_read: false }), context).changes).toEqual([]);
  });

  it("issue 8 item 15: a server that cannot be queried is no change (the next run checks again)", () => {
    const d = pgSettingOverrides.decide(args, { stdout: "", stderr: "psql: error: connection refused", code: 2 }, context);
    expect(d.changes).toEqual([]);
  });

  it("issue 8 item 15: refuses to put a name that is not a setting's into ALTER SYSTEM", () => {
    expect(failure(probe([override("x; drop table t", "1")]))).toContain("cannot reset a setting named");
  });
});

describe("a standby that does not stream, in its own words (issue 8 item 15)", () => {
  it("issue 8 item 15: says it has no WAL receiver, where its primary_conninfo comes from, and its log's last error, with no password", () => {
    const text = describeStandby(
      { in_recovery: true, status: null, sender_host: null, primary_conninfo: "host=10.0.0.99 password=hunter22 user=r", sourcefile: "/var/lib/postgresql/15/main/postgresql.auto.conf", sourceline: 3 },
      '2026-11-27 09:12:49.237 UTC [2620] FATAL:  could not connect to the primary server: connection to server at "10.0.0.99", port 5432 failed: No route to host\n',
    );
    expect(text).toBe(
      "it has no WAL receiver (it cannot connect to its primary, or is not configured to); " +
        "its primary_conninfo 'host=10.0.0.99 password=******** user=r' from /var/lib/postgresql/15/main/postgresql.auto.conf:3; " +
        'the last error in its log: 2026-11-27 09:12:49.237 UTC [2620] FATAL:  could not connect to the primary server: connection to server at "10.0.0.99", port 5432 failed: No route to host',
    );
    expect(describeStandby({ in_recovery: false }, "")).toBe("it is not in recovery: it runs as a primary, not as a standby");
    expect(describeStandby("connection refused", "")).toBe("its server cannot be queried (connection refused)");
  });

  it("masks a password in a connection string however it is quoted", () => {
    expect(maskConninfoPassword("password=a user=b")).toBe("password=******** user=b");
    expect(maskConninfoPassword("user=b password = 'x y\\' z' host=h")).toBe("user=b password = ******** host=h");
    expect(maskConninfoPassword("PASSWORD=abc")).toBe("PASSWORD=********");
  });
});
