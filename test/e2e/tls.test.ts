/**
 * Issue 10, end to end on bookworm hosts (PostgreSQL 15): a cluster made without TLS turned to
 * TLS by one apply under a writing client, a standby added on a bare host with TLS from the start,
 * clients with and without the CA, a fake server at the primary's address that gets no password,
 * and certificates repaired as drift by a reload. One bootstrap for all of them.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parseDocument } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterEvent } from "../../src/cluster/events.js";
import { loadCa, signCsr } from "../../src/tls/index.js";
import { type LabHost, labDown, labExec } from "../lab/lab.js";
import { editInventoryFile, eventually, events, labWithSpareHost, pgprov, psql, recapOf, sh, startTimes } from "./helpers.js";

let inventory: string;
let pg1: LabHost, pg2: LabHost, pg3: LabHost, pg4: LabHost;
const CONF = "/etc/postgresql/15/main";
const CA_ON_HOST = `${CONF}/pgprov-ca.crt`;
const CERT = `${CONF}/pgprov-server.crt`;
const KEY = `${CONF}/pgprov-server.key`;
const APP_PASSWORD = "app-tls-test-only-pw";

function editInventory(edit: (doc: ReturnType<typeof parseDocument>) => void): void {
  editInventoryFile(inventory, edit);
}

async function expectStreaming(standbys: LabHost[]): Promise<void> {
  const want = standbys.map((s) => `${s.name}:streaming`).join(",");
  await eventually(`${want} from pg1`, async () => (await psql(pg1, "select string_agg(application_name || ':' || state, ',' order by application_name) from pg_stat_replication")).out === want, 120_000);
}

const caFile = () => join(dirname(inventory), ".pgprov", "inventory.ca.crt");

beforeAll(async () => {
  // A cluster made before TLS: the shared bootstrap has it off; the first test turns it on. pg4
  // waits outside the inventory, for a standby added with TLS from the start.
  ({ hosts: [pg1, pg2, pg3, pg4], inventory } = await labWithSpareHost((doc, lab) => {
    doc.set("postgresql", { clients: [lab.subnet] });
    doc.set("tls", { enabled: false });
  }));
  const r = await pgprov(["apply", inventory]);
  if (r.code !== 0) throw new Error(`the bootstrap failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  // Every run with TLS off says so.
  expect(r.stdout).toContain("WARNING: TLS is off (tls.enabled: false in");
  await psql(pg1, `create table tls_rows (n int primary key); create role app login password '${APP_PASSWORD}'`);
});
afterAll(async () => {
  await labDown();
});

describe("issue 10: TLS everywhere with the cluster's own CA", () => {
  it("issue 10: turning TLS on in a cluster made without it: rows written by a client during the apply all arrive on every standby, and no server restarts", async () => {
    const before = await startTimes([pg1, pg2, pg3]);
    // A client on the primary's host commits numbered rows, one at a time, for the whole apply.
    await sh(pg1, `rm -f /root/stop /root/written; nohup sh -c 'i=0; while [ ! -f /root/stop ]; do i=$((i+1)); runuser -u postgres -- psql -XAtq -c "insert into tls_rows values ($i)" >/dev/null 2>&1 || i=$((i-1)); sleep 0.05; done; echo $i > /root/written' >/dev/null 2>&1 &`);
    editInventory((doc) => doc.deleteIn(["tls"]));
    const r = await pgprov(["apply", inventory, "--json"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    // No warning that TLS is off (the lab's postgresql.clients has a warning of its own, issue 15's).
    expect(events(r).some((e) => e.type === "warning" && /TLS/.test(e.message))).toBe(false);
    await sh(pg1, "touch /root/stop");
    await eventually("the writing client to stop", async () => (await labExec(pg1, "test -s /root/written")).code === 0);
    const written = Number(await sh(pg1, "cat /root/written"));
    expect(written).toBeGreaterThan(10);
    const want = (await psql(pg1, "select count(*) || ':' || max(n) from tls_rows")).out;
    expect(want).toBe(`${written}:${written}`);
    for (const h of [pg2, pg3]) {
      await eventually(`every row on ${h.name}`, async () => (await psql(h, "select count(*) || ':' || max(n) from tls_rows")).out === want, 60_000);
    }
    // ssl, its files and pg_hba take effect by reload.
    expect(await startTimes([pg1, pg2, pg3])).toEqual(before);
    await expectStreaming([pg2, pg3]);
  });

  it("issue 10: bootstrap with TLS: a standby added on a bare host clones over verify-full; every WAL receiver connects over TLSv1.3; no host rule on a network address; its key never left it", async () => {
    editInventory((doc) => doc.setIn(["hosts", "pg4"], doc.createNode({ address: pg4.address, role: "standby" })));
    const r = await pgprov(["apply", inventory, "--json"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    await expectStreaming([pg2, pg3, pg4]);
    const ssl = await psql(pg1, "select string_agg(a.application_name || ':' || s.ssl || ':' || s.version, ',' order by a.application_name) from pg_stat_activity a join pg_stat_ssl s using (pid) where a.backend_type = 'walsender'");
    expect(ssl.out).toBe("pg2:true:TLSv1.3,pg3:true:TLSv1.3,pg4:true:TLSv1.3");
    for (const h of [pg1, pg2, pg3, pg4]) {
      const rules = await psql(h, "select string_agg(distinct type, ',' order by type) from pg_hba_file_rules where type <> 'local'");
      expect(`${h.name} ${rules.out}`).toBe(`${h.name} hostnossl,hostssl`);
      expect((await psql(h, "select count(*) from pg_hba_file_rules where error is not null")).out).toBe("0");
      const conninfo = await psql(h, "show primary_conninfo");
      if (h !== pg1) expect(conninfo.out).toContain(`sslmode=verify-full sslrootcert=${CA_ON_HOST} channel_binding=require`);
    }
    // The key was made on pg4 and is nowhere on the control machine: not in the output, not in pgprov's state.
    const key = await sh(pg4, `cat ${KEY}`);
    const lines = key.split("\n").filter((l) => !l.startsWith("-----"));
    const state = execFileSync("sh", ["-c", `cat ${join(dirname(inventory), ".pgprov")}/*`], { encoding: "utf8" });
    for (const line of lines) {
      expect(r.stdout).not.toContain(line);
      expect(state).not.toContain(line);
    }
    expect(await sh(pg4, `stat -c '%a %U' ${KEY}`)).toBe("600 postgres");
  });

  it("issue 10: a converged run with TLS is one round trip per host and changes nothing", async () => {
    const r = await pgprov(["apply", inventory, "--json"]);
    expect(r.code).toBe(0);
    const recap = recapOf(r);
    expect(Object.entries(recap).map(([h, x]) => `${h} ${x.commands} ${x.changed}`)).toEqual(["pg1 1 0", "pg2 1 0", "pg3 1 0", "pg4 1 0"]);
  });

  it("issue 10: a client on a lab host: sslmode=disable is refused; with the CA (pgprov ca) and verify-full it connects; a name not in the SAN fails verify-full; status prints verify-full", async () => {
    const ca = await pgprov(["ca", inventory]);
    expect(ca.code).toBe(0);
    expect(ca.stdout).toBe(readFileSync(caFile(), "utf8"));
    await sh(pg2, `cat > /root/cluster-ca.crt <<'EOF'\n${ca.stdout}EOF`);
    const client = (conninfo: string) =>
      labExec(pg2, `PGPASSWORD='${APP_PASSWORD}' psql -XAtq "host=${pg1.address} user=app dbname=postgres connect_timeout=5 ${conninfo}" -c "select ssl || ':' || version from pg_stat_ssl where pid = pg_backend_pid()"`);
    const clear = await client("sslmode=disable");
    expect(clear.code).not.toBe(0);
    expect(clear.stderr).toMatch(/pg_hba\.conf rejects connection for host "10\.[0-9.]+", user "app", database "postgres", no encryption/);
    const verified = await client("sslmode=verify-full sslrootcert=/root/cluster-ca.crt");
    expect(verified.stderr).toBe("");
    expect(verified.stdout.trim()).toBe("true:TLSv1.3");
    const byName = await labExec(pg2, `PGPASSWORD='${APP_PASSWORD}' psql -XAtq "host=pg1 hostaddr=${pg1.address} user=app dbname=postgres sslmode=verify-full sslrootcert=/root/cluster-ca.crt" -c "select 1"`);
    expect(byName.stdout.trim()).toBe("1");
    const wrongName = await labExec(pg2, `PGPASSWORD='${APP_PASSWORD}' psql -XAtq "host=not-in-san.example hostaddr=${pg1.address} user=app dbname=postgres sslmode=verify-full sslrootcert=/root/cluster-ca.crt" -c "select 1"`);
    expect(wrongName.code).not.toBe(0);
    expect(wrongName.stderr).toMatch(/server certificate for "pg1"( \(and \d+ other names?\))? does not match host name "not-in-san\.example"/);

    const status = await pgprov(["status", inventory, "--json"]);
    const cluster = events(status).find((e) => (e as { type: string }).type === "cluster") as unknown as { connection_strings: { read_write: string } };
    expect(cluster.connection_strings.read_write).toContain(`&sslmode=verify-full&sslrootcert=${encodeURIComponent(caFile())}`);
  });

  it("issue 10 review: with no access rule of method cert, no server asks for a client certificate: a client holding its own from another CA (~/.postgresql/postgresql.crt) still connects by password", async () => {
    await sh(pg2, "mkdir -p /root/.postgresql && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /root/.postgresql/postgresql.key -out /root/.postgresql/postgresql.crt -subj /CN=app -days 2 2>/dev/null && chmod 600 /root/.postgresql/postgresql.key");
    try {
      const r = await labExec(pg2, `PGPASSWORD='${APP_PASSWORD}' psql -XAtq "host=${pg1.address} user=app dbname=postgres connect_timeout=5 sslmode=verify-full sslrootcert=/root/cluster-ca.crt" -c "select current_setting('ssl_ca_file')"`);
      expect(`${r.stdout.trim()} ${r.stderr}`).toBe(" ");
    } finally {
      await sh(pg2, "rm -rf /root/.postgresql");
    }
  });

  it("issue 10: a fake server at the primary's address (no certificate from the CA, asking for a clear-text password) receives no password from a standby's reconnect attempt", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pgprov-fake-"));
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${dir}/k`, "-out", `${dir}/c`, "-subj", "/CN=pg1", "-days", "2", "-addext", `subjectAltName=DNS:pg1,IP:${pg1.address}`], { stdio: "ignore" });
    writeFileSync(`${dir}/fake.mjs`, FAKE_SERVER);
    await sh(pg1, "systemctl stop postgresql@15-main");
    // In pg1's network namespace only: the fake answers at pg1's address, pg1's server is down.
    const fake = spawn("nsenter", ["--target", String(pg1.pid), "--net", process.execPath, `${dir}/fake.mjs`, `${dir}/k`, `${dir}/c`], { stdio: ["ignore", "pipe", "pipe"] });
    const seen: { event: string; from?: string; value?: string; message?: string }[] = [];
    let buffer = "";
    fake.stdout.on("data", (d: Buffer) => {
      buffer += d.toString();
      const lines = buffer.split("\n");
      buffer = lines.pop()!;
      for (const l of lines) if (l) seen.push(JSON.parse(l));
    });
    try {
      await eventually("the fake server to listen", async () => seen.some((e) => e.event === "listening"));
      // It works: a client that does not verify the server hands it the password.
      await labExec(pg3, `PGPASSWORD=canary-not-secret psql -XAtq "host=${pg1.address} user=replicator dbname=postgres sslmode=require connect_timeout=5" -c "select 1"`);
      expect(seen.filter((e) => e.event === "password").map((e) => `${e.from} ${e.value}`)).toEqual([`${pg3.address} canary-not-secret`]);
      // The standbys' WAL receivers try again every 5 s (wal_retrieve_retry_interval).
      await eventually("two attempts from pg2's WAL receiver", async () => seen.filter((e) => e.event === "tls" && e.from === pg2.address).length >= 2, 60_000);
      const password = readFileSync(join(dirname(inventory), ".pgprov", "inventory.replication.secret"), "utf8").trim();
      expect(seen.filter((e) => e.event === "password" && e.from !== pg3.address)).toEqual([]);
      expect(JSON.stringify(seen)).not.toContain(password);
      expect(seen.filter((e) => e.event === "startup" && e.from === pg2.address)).toEqual([]);
      expect(seen.some((e) => e.event === "tls-error" && e.from === pg2.address)).toBe(true);
    } finally {
      fake.kill("SIGKILL");
      await sh(pg1, "systemctl start postgresql@15-main");
    }
    await expectStreaming([pg2, pg3, pg4]);
  });

  it("issue 10 drift: a certificate replaced by a self-signed one, one expiring in 10 days, a deleted key: plan shows them, one apply repairs each with a reload and no restart", async () => {
    // pg2: a self-signed certificate (with its own key) in place of the CA's.
    await sh(pg2, `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /root/self.key -out ${CERT} -subj /CN=pg2 -days 365 -addext subjectAltName=DNS:pg2,IP:${pg2.address} 2>/dev/null && install -o postgres -g postgres -m 0600 /root/self.key ${KEY}`);
    // pg3: a certificate from the CA for its own key, expiring in 10 days.
    const ca = loadCa({ cert: caFile(), key: join(dirname(inventory), ".pgprov", "inventory.ca.key") });
    const csr = await sh(pg3, `openssl req -new -key ${KEY} -subj /CN=pg3`);
    const short = await signCsr(ca, `${csr}\n`, { dnsNames: ["pg3"], ipAddresses: [pg3.address], days: 10 });
    await sh(pg3, `cat > ${CERT} <<'EOF'\n${short}EOF`);
    // pg1, the primary: its key deleted (the running server keeps the one it loaded).
    await sh(pg1, `rm ${KEY}`);
    const before = await startTimes([pg1, pg2, pg3, pg4]);

    const plan = await pgprov(["plan", inventory]);
    expect(plan.code).toBe(2);
    expect(plan.stdout).toMatch(/the key of the certificate of pg1 \(.*\) is missing/);
    expect(plan.stdout).toMatch(/the certificate of pg2 \(.*\) was not signed by the cluster's CA/);
    expect(plan.stdout).toMatch(/the certificate of pg3 \(.*\) expires on \d{4}-\d\d-\d\d, in 9 days \(renewed within 30\)/);

    const r = await pgprov(["apply", inventory, "--json"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const changed = events(r).flatMap((e: ClusterEvent) => (e.type === "task" && e.status === "changed" ? [`${e.host} ${e.task}`] : []));
    expect(changed.sort()).toEqual(
      ["pg1", "pg2", "pg3"].flatMap((h) => [`${h} reload postgresql`, `${h} this server's certificate from the cluster's CA (its key made here, never sent)`]).sort(),
    );
    expect(await startTimes([pg1, pg2, pg3, pg4])).toEqual(before);
    // Each server now serves its new certificate, valid for a year, for its address (verified against the CA).
    for (const h of [pg1, pg2, pg3]) {
      const served = await sh(pg4, `openssl s_client -starttls postgres -connect ${h.address}:5432 -CAfile ${CA_ON_HOST} -verify_return_error -verify_ip ${h.address} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -enddate`);
      const onDisk = await sh(h, `openssl x509 -in ${CERT} -noout -fingerprint -enddate`);
      expect(`${h.name} ${served}`).toBe(`${h.name} ${onDisk}`);
      const end = new Date(onDisk.split("notAfter=")[1]!);
      expect(end.getTime() - Date.now()).toBeGreaterThan(360 * 86_400_000);
    }
    await expectStreaming([pg2, pg3, pg4]);
  });
});

/**
 * A server that speaks just enough of PostgreSQL's protocol to ask for a clear-text password:
 * TLS (with a certificate the cluster's CA never signed) when asked, then a startup message
 * answered with AuthenticationCleartextPassword. One JSON line per thing it sees.
 */
const FAKE_SERVER = String.raw`
import { createServer } from "node:net";
import { TLSSocket } from "node:tls";
import { readFileSync } from "node:fs";
const [key, cert] = process.argv.slice(2).map((f) => readFileSync(f));
const log = (o) => process.stdout.write(JSON.stringify(o) + "\n");
function speak(stream, from) {
  let buf = Buffer.alloc(0);
  let started = false;
  stream.on("data", (d) => {
    buf = Buffer.concat([buf, d]);
    if (!started && buf.length >= 8) {
      const len = buf.readInt32BE(0);
      if (buf.length < len) return;
      started = true;
      log({ event: "startup", from });
      buf = buf.subarray(len);
      const r = Buffer.alloc(9); r.write("R"); r.writeInt32BE(8, 1); r.writeInt32BE(3, 5);
      stream.write(r);
    }
    if (started && buf.length >= 5 && buf[0] === 0x70) {
      const len = buf.readInt32BE(1);
      if (buf.length < len + 1) return;
      log({ event: "password", from, value: buf.subarray(5, len).toString().replace(/\0$/, "") });
      stream.end();
    }
  });
  stream.on("error", (e) => log({ event: "tls-error", from, message: String(e.message) }));
}
createServer((socket) => {
  const from = socket.remoteAddress.replace(/^::ffff:/, "");
  socket.on("error", () => {});
  socket.once("readable", function first() {
    const head = socket.read(8);
    if (!head) return socket.once("readable", first);
    const code = head.readInt32BE(4);
    if (code === 80877104) { socket.write("N"); return socket.once("readable", first); }
    if (code === 80877103) {
      log({ event: "tls", from });
      socket.write("S");
      const tls = new TLSSocket(socket, { isServer: true, key, cert });
      tls.on("close", () => {});
      speak(tls, from);
      return;
    }
    socket.unshift(head);
    speak(socket, from);
  });
}).listen(5432, "0.0.0.0", () => log({ event: "listening" }));
`;
