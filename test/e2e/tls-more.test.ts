/**
 * Issue 10's remaining gaps, end to end on bookworm hosts (PostgreSQL 15), one bootstrap for all:
 * a DNS name of the inventory's in a server's certificate (a client verifies it by that name), a
 * client certificate from the cluster's CA accepted by an access rule with method cert (and one
 * from another CA refused), check's finding on a certificate near its end, the CA renewed by one
 * apply with a reload and no restart, and rejoin on a cluster not yet switched to TLS.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterEvent } from "../../src/cluster/events.js";
import { loadCa, renewCa, signCsr } from "../../src/tls/index.js";
import { type Lab, type LabHost, labDown, labExec, labUp } from "../lab/lab.js";
import { editInventoryFile, eventually, events, inventoryCopy, pgprov, psql, sh, startTimes } from "./helpers.js";

let lab: Lab;
let inventory: string;
let pg1: LabHost, pg2: LabHost, pg3: LabHost;
const CONF = "/etc/postgresql/15/main";
const CA_ON_HOST = `${CONF}/pgprov-ca.crt`;
const CERT = `${CONF}/pgprov-server.crt`;
const KEY = `${CONF}/pgprov-server.key`;
const APP_PASSWORD = "app-tls-more-test-only-pw";
const CERT_TASK = "this server's certificate from the cluster's CA (its key made here, never sent)";
const CA_TASK = "the cluster's CA certificate (what connection strings verify servers with)";

const pgprovDir = () => join(dirname(inventory), ".pgprov");
const caFiles = () => ({ cert: join(pgprovDir(), "inventory.ca.crt"), key: join(pgprovDir(), "inventory.ca.key") });
const changedTasks = (r: { stdout: string }) =>
  events(r as never)
    .flatMap((e: ClusterEvent) => (e.type === "task" && e.status === "changed" ? [`${e.host} ${e.task}`] : []))
    .sort();

async function expectStreaming(primary: LabHost, standbys: LabHost[]): Promise<void> {
  const want = standbys.map((s) => `${s.name}:streaming:true`).join(",");
  const query = "select string_agg(a.application_name || ':' || a.state || ':' || s.ssl, ',' order by a.application_name) from pg_stat_replication a join pg_stat_ssl s using (pid)";
  await eventually(`${want} from ${primary.name}`, async () => (await psql(primary, query)).out === want, 120_000);
}

/** psql from pg2 to pg1 with the given connection options; the query's output or the error. */
function client(conninfo: string, query = "select current_user") {
  return labExec(pg2, `PGPASSWORD='${APP_PASSWORD}' psql -XAtq "dbname=postgres connect_timeout=5 ${conninfo}" -c "${query}"`);
}

beforeAll(async () => {
  lab = await labUp({ hosts: 3 });
  [pg1, pg2, pg3] = lab.hosts as [LabHost, LabHost, LabHost];
  inventory = inventoryCopy(lab, (doc) => {
    doc.set("apt", { proxy: lab.aptProxy });
    doc.setIn(["hosts", "pg1", "dns_names"], doc.createNode(["db1.pgprov.test"]));
    doc.set("roles", doc.createNode({ certuser: {}, app: { password: { file: "./app.secret" } } }));
    doc.set(
      "access",
      doc.createNode([
        { user: "certuser", from: lab.subnet, method: "cert" },
        { user: "app", from: lab.subnet, method: "scram-sha-256" },
      ]),
    );
  });
  writeFileSync(join(dirname(inventory), "app.secret"), `${APP_PASSWORD}\n`, { mode: 0o600 });
  const r = await pgprov(["apply", inventory]);
  if (r.code !== 0) throw new Error(`the bootstrap failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  await sh(pg2, `cp ${CA_ON_HOST} /root/cluster-ca.crt`);
});
afterAll(async () => {
  await labDown();
});

describe("issue 10: TLS, the remaining gaps", () => {
  it("issue 10: a host's dns_names are in its certificate: a client that knows pg1 by that name connects with verify-full; a new name is drift, renewed by a reload", async () => {
    await sh(pg2, `echo '${pg1.address} db1.pgprov.test db1-new.pgprov.test' >> /etc/hosts`);
    const byName = await client(`host=db1.pgprov.test user=app sslmode=verify-full sslrootcert=/root/cluster-ca.crt`);
    expect(byName.stderr).toBe("");
    expect(byName.stdout.trim()).toBe("app");
    // pgprov's own connection strings keep the address.
    expect((await psql(pg2, "show primary_conninfo")).out).toContain(`host=${pg1.address} `);
    const unnamed = await client(`host=db1-new.pgprov.test user=app sslmode=verify-full sslrootcert=/root/cluster-ca.crt`);
    expect(unnamed.stderr).toMatch(/does not match host name "db1-new\.pgprov\.test"/);

    editInventoryFile(inventory, (doc) => doc.setIn(["hosts", "pg1", "dns_names"], doc.createNode(["db1.pgprov.test", "db1-new.pgprov.test"])));
    const plan = await pgprov(["plan", inventory]);
    expect(plan.code).toBe(2);
    expect(plan.stdout).toMatch(/the certificate of pg1 \(.*\) does not name DNS name db1-new\.pgprov\.test in its subjectAltName/);
    const before = await startTimes([pg1, pg2, pg3]);
    const r = await pgprov(["apply", inventory, "--json"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(changedTasks(r)).toEqual([`pg1 ${CERT_TASK}`, "pg1 reload postgresql"].sort());
    expect(await startTimes([pg1, pg2, pg3])).toEqual(before);
    const renamed = await client(`host=db1-new.pgprov.test user=app sslmode=verify-full sslrootcert=/root/cluster-ca.crt`);
    expect(renamed.stderr).toBe("");
    expect(renamed.stdout.trim()).toBe("app");
  });

  it("issue 10: an access rule with method cert: a client certificate from the cluster's CA with CN = the role connects; one from another CA, or none, is refused", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pgprov-client-"));
    const run = (args: string[]) => execFileSync("openssl", args, { stdio: ["ignore", "pipe", "pipe"] });
    writeFileSync(join(dir, "ext"), "extendedKeyUsage=clientAuth\n");
    run(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${dir}/good.key`, "-out", `${dir}/good.csr`, "-subj", "/CN=certuser"]);
    run(["x509", "-req", "-in", `${dir}/good.csr`, "-CA", caFiles().cert, "-CAkey", caFiles().key, "-days", "30", "-extfile", `${dir}/ext`, "-out", `${dir}/good.crt`]);
    run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${dir}/other-ca.key`, "-out", `${dir}/other-ca.crt`, "-subj", "/CN=another CA", "-days", "30"]);
    run(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${dir}/bad.key`, "-out", `${dir}/bad.csr`, "-subj", "/CN=certuser"]);
    run(["x509", "-req", "-in", `${dir}/bad.csr`, "-CA", `${dir}/other-ca.crt`, "-CAkey", `${dir}/other-ca.key`, "-days", "30", "-extfile", `${dir}/ext`, "-out", `${dir}/bad.crt`]);
    for (const f of ["good.crt", "good.key", "bad.crt", "bad.key"]) {
      await sh(pg2, `umask 077; cat > /root/${f} <<'EOF'\n${readFileSync(join(dir, f), "utf8")}EOF`);
    }
    const as = (which: string) => `host=${pg1.address} user=certuser sslmode=verify-full sslrootcert=/root/cluster-ca.crt sslcert=/root/${which}.crt sslkey=/root/${which}.key`;

    const good = await client(as("good"), "select current_user || ':' || (select client_dn from pg_stat_ssl where pid = pg_backend_pid())");
    expect(good.stderr).toBe("");
    expect(good.stdout.trim()).toBe("certuser:/CN=certuser");
    const other = await client(as("bad"));
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/certificate|unknown ca/i);
    const none = await client(`host=${pg1.address} user=certuser sslmode=verify-full sslrootcert=/root/cluster-ca.crt sslcert=/nonexistent sslkey=/nonexistent`);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toMatch(/connection requires a valid client certificate|certificate authentication failed/);
  });

  it("issue 10: check warns about a server certificate within 30 days of its end, critically within 7; apply renews it", async () => {
    const ca = loadCa(caFiles());
    const csr = await sh(pg3, `openssl req -new -key ${KEY} -subj /CN=pg3`);
    const install = async (days: number) => sh(pg3, `cat > ${CERT} <<'EOF'\n${await signCsr(ca, `${csr}\n`, { dnsNames: ["pg3"], ipAddresses: [pg3.address], days })}EOF`);
    const finding = async () => {
      const r = await pgprov(["check", inventory, "--json"]);
      return { code: r.code, tls: r.stdout.split("\n").filter((l) => l.includes('"tls_')).map((l) => JSON.parse(l) as { status: string; check: string; host?: string; value: number; message: string }) };
    };
    await install(10);
    const warned = await finding();
    expect(warned.tls.map((f) => `${f.status} ${f.check} ${f.host ?? "-"}`).sort()).toEqual(["ok tls_ca -", "ok tls_certificate pg1", "ok tls_certificate pg2", "warning tls_certificate pg3"]);
    expect(warned.tls.find((f) => f.host === "pg3")).toMatchObject({ value: 9, message: expect.stringMatching(new RegExp(`^${CERT} expires on \\d{4}-\\d\\d-\\d\\d, in 9 days`)) });
    expect(warned.code).toBeGreaterThanOrEqual(1);
    await install(5);
    const critical = await finding();
    expect(critical.tls.find((f) => f.host === "pg3")).toMatchObject({ status: "critical", value: 4 });
    expect(critical.code).toBe(2);

    const r = await pgprov(["apply", inventory, "--json"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(changedTasks(r)).toEqual([`pg3 ${CERT_TASK}`, "pg3 reload postgresql"].sort());
    expect((await finding()).tls.every((f) => f.status === "ok")).toBe(true);
  });

  it("issue 10: pgprov's CA within a year of its end is renewed by one apply (same key and name): every host gets it by a reload, no restart, no certificate issued again, clients' old copies still verify", async () => {
    // The CA as if made 9.8 years ago: the same key, a certificate that ends in 70 days.
    const old = await renewCa(loadCa(caFiles()), { days: 70 });
    writeFileSync(caFiles().cert, old.certPem);
    const served = async () => Promise.all([pg1, pg2, pg3].map((h) => sh(h, `openssl x509 -in ${CERT} -noout -fingerprint`)));
    const certsBefore = await served();
    const before = await startTimes([pg1, pg2, pg3]);

    const plan = await pgprov(["plan", inventory]);
    expect(plan.code).toBe(2);
    expect(plan.stdout).toMatch(/expires on \d{4}-\d\d-\d\d, in 69 days: apply renews it/);
    expect(readFileSync(caFiles().cert, "utf8")).toBe(old.certPem);

    const r = await pgprov(["apply", inventory, "--json"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const warning = events(r).find((e) => e.type === "warning" && /renewed the CA/.test(e.message));
    expect(warning).toMatchObject({ message: expect.stringContaining(`refresh every client's copy: pgprov ca ${inventory}`) });
    expect(changedTasks(r)).toEqual(["pg1", "pg2", "pg3"].flatMap((h) => [`${h} ${CA_TASK}`, `${h} reload postgresql`]).sort());
    expect(await startTimes([pg1, pg2, pg3])).toEqual(before);
    expect(await served()).toEqual(certsBefore);

    const renewed = readFileSync(caFiles().cert, "utf8");
    expect(loadCa(caFiles()).notAfter.getTime() - Date.now()).toBeGreaterThan(3600 * 86_400_000);
    expect((await pgprov(["ca", inventory])).stdout).toBe(renewed);
    for (const h of [pg1, pg2, pg3]) expect(`${h.name} ${await sh(h, `cat ${CA_ON_HOST}`)}\n`).toBe(`${h.name} ${renewed}`);
    // The new CA verifies the servers; so does a client's copy of the one it replaced (the 70-day
    // certificate), and the client certificate it signed still logs in.
    await sh(pg2, `cp ${CA_ON_HOST} /root/renewed-ca.crt`);
    await sh(pg2, `cat > /root/replaced-ca.crt <<'EOF'\n${old.certPem}EOF`);
    for (const root of ["/root/renewed-ca.crt", "/root/replaced-ca.crt"]) {
      const c = await client(`host=${pg1.address} user=certuser sslmode=verify-full sslrootcert=${root} sslcert=/root/good.crt sslkey=/root/good.key`);
      expect(`${root} ${c.stdout.trim()} ${c.stderr}`).toBe(`${root} certuser `);
    }
    await expectStreaming(pg1, [pg2, pg3]);
    const again = await pgprov(["apply", inventory, "--json"]);
    expect(changedTasks(again)).toEqual([]);

    // A host the renewal's apply did not reach (down, or --limit) keeps the replaced CA: check says so.
    await sh(pg3, `cat > ${CA_ON_HOST} <<'EOF'\n${old.certPem}EOF`);
    const check = await pgprov(["check", inventory, "--json"]);
    const found = check.stdout.split("\n").filter((l) => l.includes('"tls_ca"')).map((l) => JSON.parse(l) as { status: string; host?: string; message: string });
    expect(found.map((f) => `${f.status} ${f.host ?? "-"}`).sort()).toEqual(["ok -", "warning pg3"]);
    expect(found.find((f) => f.host === "pg3")!.message).toMatch(new RegExp(`^${CA_ON_HOST} is not the CA .*inventory\\.ca\\.crt: it expires on \\d{4}-\\d\\d-\\d\\d, in 69 days, before the local one`));
    const fixed = await pgprov(["apply", inventory, "--json"]);
    expect(changedTasks(fixed)).toEqual([`pg3 ${CA_TASK}`, "pg3 reload postgresql"].sort());
    const after = await pgprov(["check", inventory, "--json"]);
    expect(after.stdout.split("\n").filter((l) => l.includes('"tls_')).map((l) => (JSON.parse(l) as { status: string }).status)).toEqual(["ok", "ok", "ok", "ok"]);
  });

  it("issue 10: rejoin on a cluster not yet switched to TLS: pg_rewind connects as the primary allows, and the playbook after it turns TLS on", async () => {
    // A cluster as it was before TLS: its servers on Debian's own (snakeoil) certificate, pg_hba without hostssl.
    // (Without TLS the cert rule is the user's business: its ssl_ca_file is theirs to set.)
    editInventoryFile(inventory, (doc) => {
      doc.set("tls", { enabled: false });
      doc.deleteIn(["access", 0]);
    });
    const off = await pgprov(["apply", inventory]);
    expect(off.code, off.stdout + off.stderr).toBe(0);
    expect((await psql(pg1, "show ssl_cert_file")).out).toBe("/etc/ssl/certs/ssl-cert-snakeoil.pem");
    const failover = await pgprov(["failover", inventory, "--to", "pg2", "--force", "--yes"]);
    expect(failover.code, failover.stdout + failover.stderr).toBe(0);
    await psql(pg2, "create table after_failover (n int); insert into after_failover values (1)");

    // The next pgprov turns TLS on; pg1 comes back first.
    editInventoryFile(inventory, (doc) => doc.delete("tls"));
    const back = await pgprov(["rejoin", inventory, "pg1", "--yes"]);
    expect(back.code, back.stdout + back.stderr).toBe(0);
    expect(back.stdout).toContain("pg2 does not serve the cluster's certificate yet (a cluster made before TLS): pg_rewind connects as its replication does today, without TLS");
    expect(back.stdout).toMatch(/rewound pg1 onto pg2/);
    await expectStreaming(pg2, [pg1, pg3]);
    expect((await psql(pg1, "select n from after_failover")).out).toBe("1");
    expect((await psql(pg1, "show primary_conninfo")).out).toContain(`sslmode=verify-full sslrootcert=${CA_ON_HOST}`);
  });
});
