/**
 * Settings pgprov manages that are overridden where it does not write them (issue 8 item 15):
 * ALTER SYSTEM on the primary and on a standby (primary_conninfo), a later conf.d file, hba_file
 * pointed elsewhere in postgresql.conf, and a standby that does not stream, reported with what it
 * says itself. One bootstrapped primary and standby shared by every test.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Lab, type LabHost, labDown, labExec, labUp } from "../lab/lab.js";
import { eventually, events, inventoryCopy, pgprov, psql } from "./helpers.js";

let lab: Lab;
let inventory: string;
let pg1: LabHost, pg2: LabHost;
const CONF = "/etc/postgresql/15/main";
const AUTO_CONF = "/var/lib/postgresql/15/main/postgresql.auto.conf";
const HAND_SET_PASSWORD = "hand-set-secret-pw";

async function streams(): Promise<boolean> {
  return (await psql(pg1, "select count(*) from pg_stat_replication where application_name = 'pg2' and state = 'streaming'")).out === "1";
}

beforeAll(async () => {
  lab = await labUp({ hosts: 2 });
  [pg1, pg2] = lab.hosts as [LabHost, LabHost];
  inventory = inventoryCopy(lab, (doc) => {
    doc.set("apt", { proxy: lab.aptProxy });
    // password_encryption is also in pgprov.conf's defaults: set twice in pgprov's own file, it is no override.
    doc.set("postgresql", { settings: { work_mem: "8MB", password_encryption: "scram-sha-256" } });
  });
  const r = await pgprov(["apply", inventory]);
  expect(r.code, r.stdout + r.stderr).toBe(0);
});
afterAll(async () => {
  await labDown();
});

describe("settings overridden where pgprov does not write them", () => {
  it("issue 8 item 15: plan shows and apply resets settings set by ALTER SYSTEM on the primary, and primary_conninfo on a standby", async () => {
    // One the inventory sets, one of the template's, and one of them needing a restart.
    const primary = await psql(
      pg1,
      "alter system set work_mem = '1MB';\nalter system set hot_standby_feedback = off;\nalter system set max_wal_senders = 5;",
    );
    expect(primary.code, primary.err).toBe(0);
    await labExec(pg1, "systemctl restart postgresql@15-main");
    const elsewhere = lab.subnet.replace(/\.0\/24$/, ".99");
    const standby = await psql(
      pg2,
      `alter system set primary_conninfo = 'host=${elsewhere} port=5432 user=replicator password=${HAND_SET_PASSWORD} connect_timeout=2 application_name=pg2';\nselect pg_reload_conf();`,
    );
    expect(standby.code, standby.err).toBe(0);
    await eventually("pg2 to stop streaming", async () => !(await streams()), 60_000);
    expect((await psql(pg1, "show max_wal_senders")).out).toBe("5");

    const plan = await pgprov(["plan", inventory]);
    expect(plan.code, plan.stdout + plan.stderr).toBe(2);
    expect(plan.stdout).toMatch(/reset work_mem = '1MB' set by ALTER SYSTEM in \/var\/lib\/postgresql\/15\/main\/postgresql\.auto\.conf:\d+ \(it overrides \/etc\/postgresql\/15\/main\/conf\.d\/pgprov\.conf:\d+\)/);
    expect(plan.stdout).toContain("reset hot_standby_feedback = 'off'");
    expect(plan.stdout).toMatch(/reset max_wal_senders = '5' .*takes effect on the restart/);
    expect(plan.stdout).toContain(`reset primary_conninfo = 'host=${elsewhere} port=5432 user=replicator password=********`);
    expect(plan.stdout + plan.stderr).not.toContain(HAND_SET_PASSWORD);

    const apply = await pgprov(["apply", inventory, "--json"]);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(apply.stdout).not.toContain(HAND_SET_PASSWORD);
    await eventually("pg2 to stream again", streams, 60_000);
    for (const h of [pg1, pg2]) {
      const auto = await labExec(h, `cat ${AUTO_CONF}`);
      expect(auto.stdout).not.toMatch(/work_mem|hot_standby_feedback|max_wal_senders|primary_conninfo/);
    }
    expect((await psql(pg1, "select current_setting('work_mem') || ' ' || current_setting('hot_standby_feedback') || ' ' || current_setting('max_wal_senders')")).out).toBe("8MB on 16");
    expect((await psql(pg2, "select sender_host from pg_stat_wal_receiver")).out).toBe(pg1.address);

    const rerun = await pgprov(["apply", inventory, "--check"]);
    expect(rerun.code, rerun.stdout).toBe(0);
  });

  it("issue 8 item 15: an override in a conf.d file pgprov does not own fails the host, naming the file and line, and is left alone", async () => {
    await labExec(pg1, `printf '# tuning by hand\\nwork_mem = 2MB\\n' > ${CONF}/conf.d/zz-local.conf && chown postgres: ${CONF}/conf.d/zz-local.conf`);
    try {
      const plan = await pgprov(["plan", inventory]);
      expect(plan.code, plan.stdout + plan.stderr).toBe(1);
      expect(plan.stdout + plan.stderr).toContain(`work_mem = '2MB' in ${CONF}/conf.d/zz-local.conf:2`);
      const apply = await pgprov(["apply", inventory]);
      expect(apply.code).toBe(1);
      expect((await labExec(pg1, `cat ${CONF}/conf.d/zz-local.conf`)).stdout).toContain("work_mem = 2MB");
    } finally {
      await labExec(pg1, `rm -f ${CONF}/conf.d/zz-local.conf`);
    }
    expect((await pgprov(["apply", inventory, "--check"])).code).toBe(0);
  });

  it("issue 8 item 15: a setting of pgprov's overridden on the server's command line (pg_ctl.conf) fails, naming it", async () => {
    await labExec(pg1, `sed -i "s/^pg_ctl_options = .*/pg_ctl_options = '-o -cwork_mem=2MB'/" ${CONF}/pg_ctl.conf && systemctl restart postgresql@15-main`);
    try {
      expect((await psql(pg1, "show work_mem")).out).toBe("2MB");
      const plan = await pgprov(["plan", inventory]);
      expect(plan.code, plan.stdout + plan.stderr).toBe(1);
      expect(plan.stdout + plan.stderr).toContain("work_mem = '2MB' on the server's command line");
    } finally {
      await labExec(pg1, `sed -i "s/^pg_ctl_options = .*/pg_ctl_options = ''/" ${CONF}/pg_ctl.conf && systemctl restart postgresql@15-main`);
    }
  });

  it("issue 8 item 15: hba_file pointed elsewhere in postgresql.conf does not take pgprov's pg_hba.conf out of use", async () => {
    await labExec(
      pg1,
      `printf 'local all all trust\\n' > ${CONF}/other_hba.conf && chown postgres: ${CONF}/other_hba.conf && ` +
        `sed -i "s|^hba_file = .*|hba_file = '${CONF}/other_hba.conf'|" ${CONF}/postgresql.conf && systemctl restart postgresql@15-main`,
    );
    try {
      expect((await psql(pg1, "show hba_file")).out).toBe(`${CONF}/pg_hba.conf`);
      expect((await pgprov(["apply", inventory, "--check"])).code).toBe(0);
    } finally {
      await labExec(pg1, `sed -i "s|^hba_file = .*|hba_file = '${CONF}/pg_hba.conf'|" ${CONF}/postgresql.conf && rm -f ${CONF}/other_hba.conf`);
    }
  });

  it("issue 8 item 15: a standby that does not stream is reported with what it says itself", async () => {
    // pg2 cannot reach pg1 (pgprov reaches pg2 from the bridge): its WAL receiver cannot connect.
    // Stopped first, so that pg1's WAL sender sees the connection end rather than time out.
    await labExec(pg2, `systemctl stop postgresql@15-main && ip route add unreachable ${pg1.address}/32 && systemctl start postgresql@15-main`);
    await eventually("pg1 to see pg2 gone", async () => !(await streams()), 60_000);
    try {
      const apply = await pgprov(["apply", inventory, "--json", "--streaming-timeout", "5"]);
      expect(apply.code, apply.stdout + apply.stderr).toBe(1);
      const failure = events(apply).find((e) => e.type === "failure" && e.host === "pg2");
      expect(failure, apply.stdout).toBeDefined();
      const message = (failure as { message: string }).message;
      expect(message).toContain("pg2 does not stream from pg1");
      expect(message).toContain("no WAL receiver");
      expect(message).toContain(`primary_conninfo 'host=${pg1.address} port=5432`);
      expect(message).toContain(`from ${CONF}/conf.d/pgprov.conf:`);
      expect(message).toMatch(/could not connect to the primary server.*(No route to host|unreachable)/);
    } finally {
      await labExec(pg2, `ip route del unreachable ${pg1.address}/32`);
    }
    await eventually("pg2 to stream again", streams, 60_000);
  });
});
