import { describe, expect, it } from "vitest";
import { type DataDirectory, parseDataDirectory } from "../../src/postgres/data-directory.js";
import type { ModuleContext, ProbeOutput } from "../../src/engine/module.js";
import { TaskFailure } from "../../src/engine/module.js";
import { pgPoolerRoleRetired, poolerRoleRetiredArgs } from "../../src/postgres/pooler.js";
import { psql } from "../../src/postgres/psql.js";
import { pgRole as pgRoleOf, roleArgs } from "../../src/postgres/role.js";
import { scramVerifier, verifierMatches } from "../../src/postgres/scram.js";
import { pgSlots as pgSlotsOf, slotsArgs } from "../../src/postgres/slots.js";
import { pgStandby, standbyArgs } from "../../src/postgres/standby.js";

const context: ModuleContext = { playbookDir: "/", render: (t) => t };
const sql = psql(5432);
const pgRole = pgRoleOf(sql);
const pgSlots = pgSlotsOf(sql);
/** What psql prints for a query's rows (see postgres/psql.ts). */
const rows = (r: Record<string, unknown>[]): ProbeOutput => ({ stdout: JSON.stringify(r), stderr: "", code: 0 });
const shell = (stdout: string): ProbeOutput => ({ stdout, stderr: "", code: 0 });

describe("SCRAM verifiers", () => {
  it("matches the password it was made from, and no other", () => {
    const v = scramVerifier("correct horse");
    expect(v).toMatch(/^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/);
    expect(verifierMatches(v, "correct horse")).toBe(true);
    expect(verifierMatches(v, "correct horse ")).toBe(false);
    expect(verifierMatches("md5abc", "x")).toBe(false);
  });

  it("is deterministic for a given salt, as PostgreSQL's are", () => {
    const salt = Buffer.from("0123456789abcdef");
    expect(scramVerifier("pw", salt)).toBe(scramVerifier("pw", salt));
    expect(scramVerifier("pw", salt)).not.toBe(scramVerifier("pw2", salt));
  });
});

describe("pg_pooler_role_retired", () => {
  it("issue 15: pgbouncer's role is made NOLOGIN without a pooler, and nothing is made where it never was", () => {
    const retired = pgPoolerRoleRetired(sql);
    const args = poolerRoleRetiredArgs.parse({ role: "pgprov_pgbouncer" });
    const d = retired.decide(args, rows([{ rolcanlogin: true }]), context);
    expect(d.changes.map((c) => c.summary)).toEqual(["role pgprov_pgbouncer: NOLOGIN (no pooler in the inventory)"]);
    expect(d.changes[0]!.commands[0]!.display).toBe('ALTER ROLE "pgprov_pgbouncer" NOLOGIN');
    expect(retired.decide(args, rows([{ rolcanlogin: false }]), context).changes).toEqual([]);
    expect(retired.decide(args, rows([]), context).changes).toEqual([]);
  });
});

describe("pg_role", () => {
  const args = roleArgs.parse({ name: "replicator", password: "s3cret-password", replication: true });
  it("creates a missing role with a verifier, never the plaintext", () => {
    const d = pgRole.decide(args, rows([]), context);
    expect(d.changes[0]).toMatchObject({ action: "create" });
    const [cmd] = d.changes[0]!.commands;
    // SQL travels on psql's stdin, in a heredoc of the script: never in a process's arguments.
    expect(cmd!.script).toMatch(/"\$psql" -XAtq -p 5432 -d postgres -v ON_ERROR_STOP=1 <<'PGPROV_SQL'\nCREATE ROLE "replicator" LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE CONNECTION LIMIT -1 PASSWORD 'SCRAM-SHA-256\$4096:/);
    expect(JSON.stringify(cmd)).not.toContain("s3cret-password");
  });
  it("is ok when attributes and password match, and puts back a changed password", () => {
    const row = {
      rolname: "replicator",
      rolcanlogin: true,
      rolreplication: true,
      rolsuper: false,
      rolcreatedb: false,
      rolcreaterole: false,
      rolconnlimit: -1,
      rolpassword: scramVerifier("s3cret-password"),
    };
    expect(pgRole.decide(args, rows([row]), context).changes).toEqual([]);
    const changed = pgRole.decide(args, rows([{ ...row, rolpassword: scramVerifier("by-hand") }]), context);
    expect(changed.changes.map((c) => c.summary)).toEqual(["role replicator: the password on the server differs from the inventory's; set it again"]);
    expect(changed.changes[0]!.commands[0]).toMatchObject({ display: `ALTER ROLE "replicator" LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE CONNECTION LIMIT -1 PASSWORD '<SCRAM-SHA-256 verifier>'` });
  });
});

describe("pg_slots", () => {
  it("creates the missing, drops only its own stale ones", () => {
    const d = pgSlots.decide(slotsArgs.parse({ names: ["pgprov_pg2", "pgprov_pg3"] }), rows([{ slot_name: "pgprov_pg2", active: true }, { slot_name: "pgprov_old", active: false }]), context);
    expect(d.changes.map((c) => `${c.action} ${c.summary}`)).toEqual([
      "create create physical replication slot pgprov_pg3",
      "delete drop slot pgprov_old: no standby of the inventory uses it",
    ]);
    expect(pgSlots.probe(slotsArgs.parse({}), context)).toMatchObject({ item: expect.stringContaining("starts_with(slot_name, 'pgprov_')") });
  });
});

describe("pg_standby: when a clone may replace what is there", () => {
  const base = {
    host: "pg2",
    primary: "10.0.0.11",
    port: 5432,
    user: "replicator",
    slot: "pgprov_pg2",
    passfile: "/var/lib/postgresql/.pgprov.pgpass",
    data_directory: "/var/lib/postgresql/15/main",
    bin_directory: "/usr/lib/postgresql/15/bin",
    service: "postgresql@15-main",
    primary_system_identifier: "7000000000000000001",
  };
  const decide = (state: string, extra: Record<string, unknown> = {}) => pgStandby.decide(standbyArgs.parse({ ...base, ...extra }), shell(state), context);
  const cluster = (sysid: string, more = "") =>
    `exists=yes\nentries=20\npg_version=15\nsystem_identifier=${sysid}\nstate=in production\ntimeline=1\nnext_oid=13572\ntablespaces=0\ndatabases=3\nuser_relations=0\n${more}`;

  it("does nothing on a standby of this cluster", () => {
    expect(decide(cluster("7000000000000000001", "standby_signal=yes\nrunning=yes")).changes).toEqual([]);
  });
  it("clones into a missing or empty directory, its own partial clone replaced", () => {
    expect(decide("").changes[0]!.summary).toMatch(/missing/);
    expect(decide("exists=yes\nentries=0\n").changes[0]!.summary).toMatch(/empty/);
    expect(decide("exists=yes\nentries=0\npartial_clone=yes\n").changes[0]!.action).toBe("create");
  });
  it("never replaces a non-empty directory without a cluster, even beside its own partial clone", () => {
    expect(() => decide("exists=yes\nentries=3\npartial_clone=yes\n")).toThrow(TaskFailure);
  });
  it("stops at data an interrupted swap moved aside", () => {
    expect(() => decide("replaced_left=yes\n")).toThrow(/interrupted clone left the previous data in \/var\/lib\/postgresql\/15\/main\.pgprov-replaced/);
  });
  it("replaces a freshly initialised cluster, and only one where every sign agrees", () => {
    const d = decide(cluster("7000000000000000999"));
    expect(d.changes[0]).toMatchObject({ action: "create" });
    expect(d.changes[0]!.destructive).toBeUndefined();
    // A large object, a tablespace, a later timeline: each is something someone may miss.
    for (const [from, to] of [["next_oid=13572", "next_oid=24576"], ["tablespaces=0", "tablespaces=1"], ["timeline=1", "timeline=2"]] as const) {
      expect(() => decide(cluster("7000000000000000999").replace(from, to)), to).toThrow(/another cluster's data/);
    }
  });
  it("refuses another cluster's data, and a promoted copy, unless --reclone", () => {
    const other = cluster("7000000000000000999").replace("user_relations=0", "user_relations=12").replace("databases=3", "databases=4");
    expect(() => decide(other)).toThrow(/another cluster's data \(system identifier 7000000000000000999, timeline 1, 1 user database, 12 user relation files.*--reclone pg2/);
    expect(decide(other, { reclone: "true" }).changes[0]).toMatchObject({ destructive: true });
    const promoted = cluster("7000000000000000001", "running=yes");
    expect(() => decide(promoted)).toThrow(TaskFailure);
    expect(decide(promoted, { reclone: true }).changes[0]).toMatchObject({ destructive: true });
  });
  it("issue 8 item 3, regression: --reclone clones a former primary though it is marked a standby; a fenced one is never taken for a standby", () => {
    const fenced = cluster("7000000000000000001", "standby_signal=yes\nfenced=fenced by pgprov failover at 2026-01-01T00:00:00Z").replace("state=in production", "state=in archive recovery");
    expect(() => decide(fenced)).toThrow(/fenced by a failover .*pgprov rejoin INVENTORY pg2/);
    expect(decide(fenced, { reclone: true }).changes[0]).toMatchObject({ action: "create", destructive: true });
    // Stopped as a primary (pg_control "shut down"), with standby.signal and no mark.
    const stoppedPrimary = cluster("7000000000000000001", "standby_signal=yes").replace("state=in production", "state=shut down");
    expect(decide(stoppedPrimary).changes).toEqual([]);
    expect(decide(stoppedPrimary, { reclone: true }).changes[0]).toMatchObject({ action: "create", destructive: true });
    // A standby is a standby, --reclone or not.
    const standby = cluster("7000000000000000001", "standby_signal=yes\nrunning=yes").replace("state=in production", "state=in archive recovery");
    expect(decide(standby, { reclone: true }).changes).toEqual([]);
  });
  it("refuses data it cannot compare with the primary's", () => {
    const data = cluster("7000000000000000999").replace("user_relations=0", "user_relations=3");
    expect(() => decide(data, { primary_system_identifier: "" })).toThrow(/cannot tell whether it is this cluster's/);
  });
  it("issue 8 item 4: removes the side directory an interrupted clone left beside a standby of this cluster", () => {
    const d = decide(cluster("7000000000000000001", "standby_signal=yes\nrunning=yes\npartial_clone=yes"));
    expect(d.changes).toMatchObject([{ action: "delete", summary: expect.stringMatching(/^remove \/var\/lib\/postgresql\/15\/main\.pgprov-clone, a clone an interrupted run left/) }]);
    const [cmd] = d.changes[0]!.commands;
    expect(cmd!.script).toBe("rm -rf /var/lib/postgresql/15/main.pgprov-clone");
  });
  it("issue 8 item 4: clones while the server runs on its data; stops it only for the swap, which signals cannot cut short", () => {
    const [cmd] = decide("").changes[0]!.commands;
    const script = cmd!.script;
    const at = (text: string) => script.indexOf(text);
    expect(at("systemctl stop")).toBeGreaterThan(at("pg_basebackup"));
    // Whatever ends the clone, its side directory goes.
    expect(at("trap 'rm -rf /var/lib/postgresql/15/main.pgprov-clone' EXIT")).toBeLessThan(at("pg_basebackup"));
    expect(at("trap 'exit 143' TERM INT HUP")).toBeLessThan(at("pg_basebackup"));
    expect(at("trap - EXIT")).toBeGreaterThan(at("pg_basebackup"));
    expect(at("trap '' TERM INT HUP")).toBeLessThan(at("systemctl stop"));
    expect(script).not.toMatch(/systemctl start[^\n]*\n[\s\S]*pg_basebackup/);
  });
  it("clones into a directory beside the data, reads the password from the passfile, and swaps last", () => {
    const [cmd] = decide("").changes[0]!.commands;
    const script = cmd!.script;
    expect(script).toContain("PGPASSFILE=/var/lib/postgresql/.pgprov.pgpass");
    expect(script).toContain("-D /var/lib/postgresql/15/main.pgprov-clone -X stream -c fast -S pgprov_pg2");
    expect(script.indexOf("mv -T /var/lib/postgresql/15/main.pgprov-clone /var/lib/postgresql/15/main")).toBeGreaterThan(script.indexOf("pg_basebackup"));
  });
  it("issue 14: pg_basebackup -P (the primary walks its data directory first for a total) only when a terminal shows the progress", () => {
    const args = standbyArgs.parse(base);
    const quiet = pgStandby.decide(args, shell(""), context).changes[0]!.commands[0]!;
    expect(quiet.script).not.toMatch(/pg_basebackup[^\n]* -P/);
    expect(quiet.progress).toBeUndefined();
    const shown = pgStandby.decide(args, shell(""), { ...context, progress: true }).changes[0]!.commands[0]!;
    expect(shown.script).toContain("-X stream -c fast -P -S pgprov_pg2");
    expect(shown.progress).toBeDefined();
  });
  it("issue 8 item 5, the same class: postgres makes the clone directory in its own directory, and the swap never moves into a link", () => {
    const [cmd] = decide("").changes[0]!.commands;
    const script = cmd!.script;
    expect(script).toContain("runuser -u postgres -- mkdir -m 0700 -- /var/lib/postgresql/15/main.pgprov-clone");
    expect(script).not.toMatch(/install -d|chown|chmod/);
    expect(script).toContain("mv -T /var/lib/postgresql/15/main /var/lib/postgresql/15/main.pgprov-replaced");
  });
  it("issue 8, the same class: refuses a primary address or a unit name that a command would read as an option", () => {
    expect(standbyArgs.safeParse({ ...base, primary: "-hevil" }).success).toBe(false);
    expect(standbyArgs.safeParse({ ...base, service: "--now" }).success).toBe(false);
  });
});

describe("data directory facts", () => {
  it("issue 8 item 3, regression: reads failover's fence, the latest checkpoint and the timeline history", () => {
    const d = parseDataDirectory("exists=yes\nstate=shut down\ntimeline=1\ncheckpoint_lsn=0/5000028\nhistory_timeline=2\nhistory=1 0/5000148;\nfenced=fenced by pgprov failover\n");
    expect(d).toMatchObject({ timeline: 2, checkpointLsn: "0/5000028", history: [{ timeline: 1, switchLsn: "0/5000148" }], fenced: "fenced by pgprov failover" });
    expect(parseDataDirectory("exists=yes\nfenced=\n").fenced).toBe("no details");
    expect(parseDataDirectory("exists=yes\n").fenced).toBeUndefined();
  });
  it("parses what the probe prints", () => {
    const d: DataDirectory = parseDataDirectory("exists=yes\nentries=21\npg_version=17\nsystem_identifier=74\nstate=in archive recovery\ntimeline=3\nstandby_signal=yes\nrunning=yes\ndatabases=5\nuser_relations=40\n");
    expect(d).toEqual({
      exists: true,
      entries: 21,
      majorVersion: 17,
      systemIdentifier: "74",
      state: "in archive recovery",
      timeline: 3,
      standbySignal: true,
      running: true,
      partialClone: false,
      replacedLeft: false,
      userDatabases: 2,
      userRelations: 40,
      tablespaces: 0,
    });
  });
});
