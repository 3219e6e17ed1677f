/**
 * The cluster, end to end on bare bookworm hosts (PostgreSQL 15): bootstrap, a rerun that
 * changes nothing, drift repaired without losing data, the refusals that keep data safe, and a
 * standby added later.
 */
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterEvent } from "../../src/cluster/events.js";
import { type LabHost, labDown, labExec } from "../lab/lab.js";
import { type CliResult, eventually, events, labWithSpareHost, pgprov, psql, recapOf } from "./helpers.js";

let inventory: string;
let pg1: LabHost, pg2: LabHost, pg3: LabHost, pg4: LabHost;
const DATA = "/var/lib/postgresql/15/main";
const CONF = "/etc/postgresql/15/main";

async function apply(...args: string[]) {
  return pgprov(["apply", inventory, "--json", ...args]);
}

function replication(r: CliResult): Extract<ClusterEvent, { type: "replication" }> | undefined {
  return events(r).find((e): e is Extract<ClusterEvent, { type: "replication" }> => e.type === "replication");
}

/** Every standby of the inventory streams, seen from the primary. */
async function expectStreaming(standbys: string[]): Promise<void> {
  await eventually(`${standbys.join(", ")} to stream`, async () => {
    const r = await psql(pg1, "select string_agg(application_name || ':' || state, ',' order by application_name) from pg_stat_replication");
    return r.out === standbys.map((s) => `${s}:streaming`).join(",");
  });
}

async function rowsOn(host: LabHost): Promise<string> {
  return (await psql(host, "select string_agg(id::text, ',' order by id) from pgprov_test")).out;
}

async function systemIdentifier(host: LabHost): Promise<string> {
  const r = await labExec(host, `LC_ALL=C /usr/lib/postgresql/15/bin/pg_controldata ${DATA} | sed -n 's/^Database system identifier: *//p'`);
  return r.stdout.trim();
}

beforeAll(async () => {
  // pg4 waits outside the inventory until a standby is added.
  ({ hosts: [pg1, pg2, pg3, pg4], inventory } = await labWithSpareHost());
});
afterAll(async () => {
  await labDown();
});

describe("cluster on bookworm", () => {
  it("bootstraps a primary and two streaming hot standbys from bare hosts, with no password in any process's arguments", async () => {
    // Watch every process's arguments on the primary and a standby for the whole bootstrap.
    for (const h of [pg1, pg2]) {
      await labExec(h, "nohup sh -c 'while :; do ps -eo args >> /root/ps.log; sleep 0.05; done' >/dev/null 2>&1 &");
    }
    const r = await apply();
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(replication(r)?.standbys.map((s) => [s.host, s.state, s.slot])).toEqual([
      ["pg2", "streaming", "pgprov_pg2"],
      ["pg3", "streaming", "pgprov_pg3"],
    ]);

    const password = readFileSync(join(dirname(inventory), ".pgprov", "inventory.replication.secret"), "utf8").trim();
    expect(password.length).toBeGreaterThanOrEqual(40);
    expect(statSync(join(dirname(inventory), ".pgprov", "inventory.replication.secret")).mode & 0o777).toBe(0o600);
    expect(r.stdout).not.toContain(password);
    for (const h of [pg1, pg2]) {
      await labExec(h, "pkill -f 'ps -eo args' ; pkill -f 'ps.log'; true");
      const ps = await labExec(h, "cat /root/ps.log");
      expect(ps.stdout).toContain(h === pg2 ? "pg_basebackup" : "postgres");
      expect(ps.stdout).not.toContain(password);
    }
  });

  it("replicates: a row written on the primary is read on both standbys, which refuse writes", async () => {
    expect((await psql(pg1, "create table pgprov_test (id int primary key); insert into pgprov_test values (1), (2);")).code).toBe(0);
    for (const standby of [pg2, pg3]) {
      await eventually(`the rows on ${standby.name}`, async () => (await rowsOn(standby)) === "1,2");
      const write = await psql(standby, "insert into pgprov_test values (3)");
      expect(write.code).not.toBe(0);
      expect(write.err).toContain("cannot execute INSERT in a read-only transaction");
    }
    const slots = await psql(
      pg1,
      "select string_agg(r.application_name || ':' || r.state || ':' || s.slot_name, ',' order by r.application_name) from pg_stat_replication r join pg_replication_slots s on s.active_pid = r.pid",
    );
    expect(slots.out).toBe("pg2:streaming:pgprov_pg2,pg3:streaming:pgprov_pg3");
  });

  it("configures what it promises: checksums, archiving, scram, and no trust for any address", async () => {
    expect((await psql(pg1, "show data_checksums")).out).toBe("on");
    // No backups in this inventory: WAL is archived nowhere (issue 11), not into a local directory that fills the disk.
    expect((await psql(pg1, "show archive_command")).out).toBe("/bin/true");
    expect((await labExec(pg1, "test -e /var/lib/postgresql/15/wal-archive")).code).toBe(1);
    for (const h of [pg1, pg2, pg3]) {
      // Every line that lets a connection in asks for scram; the others (TLS's hostnossl lines, issue 10) reject.
      const rules = await psql(h, "select string_agg(distinct type || ' ' || auth_method, ',' order by type || ' ' || auth_method) from pg_hba_file_rules where type <> 'local'");
      expect(rules.out).toBe("hostnossl reject,hostssl scram-sha-256");
      expect((await psql(h, "select count(*) from pg_hba_file_rules where error is not null")).out).toBe("0");
    }
    expect((await psql(pg1, "select rolpassword like 'SCRAM-SHA-256$%' from pg_authid where rolname = 'replicator'")).out).toBe("t");
  });

  it("issue 9 item 1: reruns with nothing changed in one round trip per host, and plan exits 0", async () => {
    const r = await apply();
    expect(r.code).toBe(0);
    const recap = recapOf(r);
    for (const host of ["pg1", "pg2", "pg3"]) {
      expect(recap[host]).toMatchObject({ changed: 0, failed: 0 });
      expect(recap[host]!.commands).toBeLessThanOrEqual(1);
    }
    const plan = await pgprov(["plan", inventory]);
    expect(plan.code).toBe(0);
  });

  describe("drift is repaired by a rerun, and no data is lost", () => {
    it("a managed setting edited by hand on a standby", async () => {
      await labExec(pg2, `sed -i 's/^hot_standby_feedback = on/hot_standby_feedback = off/' ${CONF}/conf.d/pgprov.conf && systemctl reload postgresql@15-main`);
      await eventually("the edit to take effect", async () => (await psql(pg2, "show hot_standby_feedback")).out === "off");
      const plan = await pgprov(["plan", inventory]);
      expect(plan.code).toBe(2);
      expect(plan.stdout).toContain("-hot_standby_feedback = off");
      expect((await apply()).code).toBe(0);
      expect((await psql(pg2, "show hot_standby_feedback")).out).toBe("on");
    });

    it("a trust line added to pg_hba", async () => {
      await labExec(pg3, `echo 'host all all 0.0.0.0/0 trust' >> ${CONF}/pg_hba.conf && systemctl reload postgresql@15-main`);
      await eventually("the trust rule to load", async () => (await psql(pg3, "select count(*) from pg_hba_file_rules where auth_method = 'trust'")).out === "1");
      expect((await apply()).code).toBe(0);
      await eventually("the trust rule to go", async () => (await psql(pg3, "select count(*) from pg_hba_file_rules where auth_method = 'trust'")).out === "0");
    });

    it("the server stopped on a standby", async () => {
      await labExec(pg2, "systemctl stop postgresql@15-main");
      expect((await apply()).code).toBe(0);
      await expectStreaming(["pg2", "pg3"]);
    });

    it("the replication password changed on the primary", async () => {
      await psql(pg1, "alter role replicator password 'changed-by-hand'");
      const r = await apply();
      expect(r.code).toBe(0);
      expect(events(r).some((e) => e.type === "task" && e.task === "replication role" && e.status === "changed")).toBe(true);
      // A new replication connection with the passfile works again.
      const probe = await labExec(
        pg2,
        `runuser -u postgres -- env PGPASSFILE=/var/lib/postgresql/.pgprov.pgpass psql -XAt "host=${pg1.address} user=replicator dbname=replication replication=true" -c IDENTIFY_SYSTEM`,
      );
      expect(probe.code).toBe(0);
    });

    it("a slot dropped on the primary", async () => {
      await labExec(pg3, "systemctl stop postgresql@15-main");
      expect((await psql(pg1, "select pg_drop_replication_slot('pgprov_pg3')")).code).toBe(0);
      expect((await apply()).code).toBe(0);
      expect((await psql(pg1, "select active from pg_replication_slots where slot_name = 'pgprov_pg3'")).out).toBe("t");
      await expectStreaming(["pg2", "pg3"]);
    });

    it("a standby's data directory emptied: it is cloned again", async () => {
      await labExec(pg2, `systemctl stop postgresql@15-main && rm -rf ${DATA}/*`);
      expect((await apply()).code).toBe(0);
      await expectStreaming(["pg2", "pg3"]);
      expect(await rowsOn(pg2)).toBe("1,2");
    });
  });

  describe("refusals", () => {
    it("leaves a standby holding another cluster's data alone, unless --reclone names it", async () => {
      await labExec(
        pg3,
        [
          "systemctl stop postgresql@15-main",
          `mv ${DATA} /root/pg3-old-data`,
          `install -d -o postgres -g postgres -m 0700 ${DATA}`,
          `runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D ${DATA} >/dev/null`,
          "systemctl start postgresql@15-main",
        ].join(" && "),
      );
      await psql(pg3, "create table precious (x int); insert into precious values (42);");
      const other = await systemIdentifier(pg3);
      const untouched = async () => {
        expect(await systemIdentifier(pg3)).toBe(other);
        expect((await psql(pg3, "select x from precious")).out).toBe("42");
      };

      // Running, it is a second writable server: nothing is touched, and the way out is named.
      const running = await pgprov(["apply", inventory]);
      expect(running.code).toBe(1);
      expect(running.stdout).toContain("more than one server accepts writes: pg1 (timeline 1), pg3 (timeline 1)");
      expect(running.stdout).toContain("rerun with --reclone pg3");
      await untouched();

      // Stopped, it is another cluster's data in a standby's place: refused at the standby.
      await labExec(pg3, "systemctl stop postgresql@15-main");
      const stopped = await pgprov(["apply", inventory]);
      expect(stopped.code).toBe(1);
      expect(stopped.stdout).toContain(`holds another cluster's data (system identifier ${other}`);
      expect(stopped.stdout).toContain("rerun with --reclone pg3");
      const plan = await pgprov(["plan", inventory]);
      expect(plan.code).toBe(1);
      expect(plan.stdout).toContain("holds another cluster's data");
      await labExec(pg3, "systemctl start postgresql@15-main");
      await untouched();

      expect((await apply("--reclone", "pg3", "--yes")).code).toBe(0);
      expect(await systemIdentifier(pg3)).toBe(await systemIdentifier(pg1));
      await expectStreaming(["pg2", "pg3"]);
      expect(await rowsOn(pg3)).toBe("1,2");
    });

    it("refuses to touch anything while two servers accept writes, and names them", async () => {
      await labExec(pg2, "pg_ctlcluster 15 main promote");
      await eventually("pg2 to leave recovery", async () => (await psql(pg2, "select pg_is_in_recovery()")).out === "f");
      // Drift elsewhere that a normal run would repair: it must stay as it is.
      await labExec(pg3, `echo '# by hand' >> ${CONF}/pg_hba.conf`);
      const r = await pgprov(["apply", inventory]);
      expect(r.code).toBe(1);
      expect(r.stdout).toContain("refusing to change anything: more than one server accepts writes: pg1 (timeline 1), pg2 (timeline 2)");
      expect((await labExec(pg3, `tail -1 ${CONF}/pg_hba.conf`)).stdout).toBe("# by hand\n");
      const status = await pgprov(["status", inventory]);
      expect(status.code).toBe(1);
      expect(status.stdout).toContain("WARNING: more than one server accepts writes: pg1, pg2");

      // Stopped, pg2 is still ahead of the primary: it may hold the newest writes. Not even
      // --reclone makes pgprov throw them away; that is for a person to decide and do.
      await labExec(pg2, "systemctl stop postgresql@15-main");
      for (const args of [[], ["--reclone", "pg2", "--yes"]]) {
        const refused = await pgprov(["apply", inventory, ...args]);
        expect(refused.code).toBe(1);
        expect(refused.stdout).toContain("pg2 (timeline 2) is ahead of the inventory's primary pg1 (timeline 1)");
        expect(await systemIdentifier(pg2)).toBe(await systemIdentifier(pg1));
      }
      await labExec(pg2, `rm -rf ${DATA}/*`);
      expect((await apply()).code).toBe(0);
      await expectStreaming(["pg2", "pg3"]);
      expect((await labExec(pg3, `tail -1 ${CONF}/pg_hba.conf`)).stdout).not.toBe("# by hand\n");
    });
  });

  it("clones a standby added to the inventory, without restarting or re-cloning the others", async () => {
    const started = async (h: LabHost) => (await psql(h, "select pg_postmaster_start_time()")).out;
    const before = { pg2: await started(pg2), pg3: await started(pg3), pg1: await started(pg1) };
    writeFileSync(inventory, readFileSync(inventory, "utf8").replace(/(\n  pg3: .*\n)/, `$1  pg4: { address: ${pg4.address}, role: standby }\n`));
    const r = await apply();
    expect(r.code).toBe(0);
    expect(replication(r)?.standbys.map((s) => `${s.host}:${s.state}`)).toEqual(["pg2:streaming", "pg3:streaming", "pg4:streaming"]);
    expect(await rowsOn(pg4)).toBe("1,2");
    expect({ pg2: await started(pg2), pg3: await started(pg3), pg1: await started(pg1) }).toEqual(before);
    const clones = events(r).filter((e) => e.type === "task" && e.task.startsWith("clone") && e.status === "changed");
    expect(clones.map((e) => e.type === "task" && e.host)).toEqual(["pg4"]);
  });
});
