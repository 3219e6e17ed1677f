/**
 * Issue 10's remaining gaps, pure parts: a host's extra DNS names in its certificate's SAN, the
 * renewal of pgprov's own CA (with the real X.509 library), client certificates (ssl_ca_file, and
 * pgbouncer's hba), check's finding on certificates' expiry, and rejoin's pg_rewind connection
 * on a cluster not yet switched to TLS. Then the second reading of that work ("issue 10 review"):
 * ssl_ca_file only for client certificates, check's hints and the hosts' copies of the CA, when
 * the renewed CA is saved, dns_names without a trailing dot, one way of counting days left, and an
 * ended CA said on stderr.
 */
import { chmodSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import { afterEach, describe, expect, it, vi } from "vitest";
import { safetyGate } from "../../src/cluster/apply.js";
import { caOf, type HostHealth, judgeHealth } from "../../src/cluster/check.js";
import { loadClusterPlaybook } from "../../src/cluster/playbook.js";
import { connectionStrings } from "../../src/cluster/status.js";
import { hostVariables } from "../../src/cluster/variables.js";
import { caCommand } from "../../src/cli/ca.js";
import { endText } from "../../src/common/days.js";
import { RunResults } from "../../src/engine/results.js";
import { ensureCertificateAuthority, ensureReplicationPassword, loadInventory, ownCaFiles, renewCertificateAuthority } from "../../src/inventory/inventory.js";
import { checksSchema } from "../../src/inventory/schema.js";
import { certificateArgs, tlsCertificate } from "../../src/modules/certificate.js";
import { render } from "../../src/playbook/template.js";
import type { DataDirectory } from "../../src/postgres/data-directory.js";
import { pgDataDirectory } from "../../src/postgres/read.js";
import { checkCertificate, createCa, renewCa, saveCa, signCsr } from "../../src/tls/index.js";
import { inventoryProblems, keyAndCsr, openssl, opensslCert } from "./tls-fixtures.js";

vi.setConfig({ testTimeout: 60_000 });
const dir = mkdtempSync(join(tmpdir(), "pgprov-tls-more-"));
const DAY = 86_400_000;
let n = 0;
const HOSTS = `hosts:\n  pg1: { address: 10.0.0.11, role: primary, dns_names: [db1.example.com, primary.db.example.com] }\n  pg2: { address: 10.0.0.12, role: standby }\n`;
const facts = { os_id: "debian", os_version: "12", os_codename: "bookworm", arch: "amd64", hostname: "x", cpus: 2, memory_mb: 1024 };
const template = (name: string) => readFileSync(join(import.meta.dirname, "../../templates", name), "utf8");

function write(name: string, text: string, mode = 0o644): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  chmodSync(path, mode);
  return path;
}

function inventoryOf(text: string) {
  const inv = loadInventory(write(`inv-${++n}.yml`, text));
  ensureReplicationPassword(inv);
  return inv;
}

function problems(text: string): string[] {
  return inventoryProblems(write(`bad-${++n}.yml`, text));
}

describe("issue 10: any DNS name a host is reached by (hosts.NAME.dns_names)", () => {
  it("issue 10: a host's dns_names are in its certificate's SAN, beside its name and address; connection strings keep the address", () => {
    const inv = inventoryOf(HOSTS);
    expect(hostVariables(inv, inv.hosts[0]!, facts).tls).toMatchObject({ names: ["pg1", "db1.example.com", "primary.db.example.com", "10.0.0.11"] });
    expect(hostVariables(inv, inv.hosts[1]!, facts).tls).toMatchObject({ names: ["pg2", "10.0.0.12"] });
    const vars = hostVariables(inv, inv.hosts[1]!, facts);
    expect(render(template("pgprov.conf.hbs"), vars, "pgprov.conf")).toContain("host=10.0.0.11 ");
    expect(connectionStrings(inv.hosts, 5432, "/ca.crt").readWrite).toMatch(/^postgresql:\/\/10\.0\.0\.11:5432,10\.0\.0\.12:5432\//);
  });

  it("issue 10 bad input: a dns_names entry that is not a DNS name is refused at file:line:col", () => {
    expect(problems(`hosts:\n  pg1:\n    address: 10.0.0.11\n    role: primary\n    dns_names: [db1.example.com, "bad name!", "*.example.com"]\n`)).toEqual([
      expect.stringMatching(/^5:34: hosts\.pg1\.dns_names\.1: "bad name!" is not a DNS name/),
      expect.stringMatching(/^5:47: hosts\.pg1\.dns_names\.2: "\*\.example\.com" is not a DNS name/),
    ]);
  });

  it("issue 10: a change of dns_names is drift: the certificate is issued again", async () => {
    const ca = await createCa({ commonName: "test CA" });
    const cert = await signCsr(ca, keyAndCsr().csr, { dnsNames: ["pg1"], ipAddresses: ["10.0.0.11"] });
    const args = certificateArgs.parse({ cert: "/c", key: "/k", owner: "postgres", host: "pg1", names: ["pg1", "db1.example.com", "10.0.0.11"] });
    const d = tlsCertificate(() => ca).decide(args, { stdout: `cert=present\nkey=present\nkey_stat=600 postgres postgres\n${cert}`, stderr: "", code: 0 }, { playbookDir: "/", render: (t: string) => t });
    expect(d.changes.map((c) => c.summary)).toEqual([expect.stringMatching(/does not name DNS name db1\.example\.com in its subjectAltName$/)]);
  });
});

describe("issue 10: the CA's renewal", () => {
  it("issue 10: renewCa re-signs the same key with the same subject and key identifier: certificates issued before still verify (Node and openssl)", async () => {
    const now = new Date();
    // Ten years old, 50 days left; the server's certificate was issued yesterday (and ends with it).
    const ca = await createCa({ commonName: "pgprov CA of renew", days: 3650, now: new Date(now.getTime() - 3600 * DAY) });
    const server = await signCsr(ca, keyAndCsr().csr, { dnsNames: ["pg1"], ipAddresses: ["10.0.0.11"], days: 365, now: new Date(now.getTime() - DAY) });
    const renewed = await renewCa(ca, { now });
    expect(renewed.subject).toBe(ca.subject);
    expect(renewed.cert.raw.equals(ca.cert.raw)).toBe(false);
    expect(renewed.cert.serialNumber).not.toBe(ca.cert.serialNumber);
    expect(renewed.notAfter.getTime() - now.getTime()).toBeGreaterThan(3649 * DAY);
    expect(renewed.cert.publicKey.equals(ca.cert.publicKey)).toBe(true);
    const ext = (pem: string, name: string) => openssl(["x509", "-noout", "-ext", name], pem);
    expect(ext(renewed.certPem, "subjectKeyIdentifier")).toBe(ext(ca.certPem, "subjectKeyIdentifier"));
    expect(ext(renewed.certPem, "basicConstraints,keyUsage")).toBe(ext(ca.certPem, "basicConstraints,keyUsage"));
    // Issued by the old certificate, verified by the new one.
    const cert = new X509Certificate(server);
    expect(cert.checkIssued(renewed.cert) && cert.verify(renewed.cert.publicKey)).toBe(true);
    const caFile = write(`renewed-${++n}.crt`, renewed.certPem);
    const serverFile = write(`server-${n}.crt`, server);
    expect(openssl(["verify", "-CAfile", caFile, serverFile]).trim()).toBe(`${serverFile}: OK`);
    // The renewed CA signs, and what it signs verifies against the old certificate too (same key, same name).
    expect(renewed.canSign).toBe(true);
    const fresh = await signCsr(renewed, keyAndCsr().csr, { dnsNames: ["pg2"] });
    expect(new X509Certificate(fresh).verify(ca.cert.publicKey)).toBe(true);
    expect(new X509Certificate(fresh).checkIssued(ca.cert)).toBe(true);
    expect(checkCertificate(fresh, { ca: renewed, expectedNames: { dnsNames: ["pg2"] } }).ok).toBe(true);
  });

  it("issue 10: apply renews pgprov's own CA within a year of its end (the certificate file replaced, the key untouched); plan only in memory; once renewed, nothing more", async () => {
    const file = write(`own-${++n}.yml`, HOSTS);
    const files = ownCaFiles({ file, dir });
    const old = await createCa({ commonName: "pgprov CA of own", days: 200 });
    saveCa(old, files);
    const key = readFileSync(files.key, "utf8");

    const planned = loadInventory(file);
    await ensureCertificateAuthority(planned, { save: false });
    const warning = (await renewCertificateAuthority(planned))!.warning;
    expect(warning).toMatch(new RegExp(`^the CA ${files.cert.replace(/[.]/g, "\\.")} expires on \\d{4}-\\d\\d-\\d\\d, in 199 days: apply renews it \\(the same key, subject and key identifier, valid until \\d{4}`));
    expect(readFileSync(files.cert, "utf8")).toBe(old.certPem);
    expect(planned.tls.authority!.notAfter.getTime()).toBeGreaterThan(Date.now() + 3000 * DAY);

    const applied = loadInventory(file);
    await ensureCertificateAuthority(applied, { save: true });
    expect((await renewCertificateAuthority(applied))!.save!()).toMatch(/renewed the CA .* until \d{4}-\d\d-\d\d .*refresh every client's copy: pgprov ca /);
    const saved = readFileSync(files.cert, "utf8");
    expect(saved).toBe(applied.tls.authority!.certPem);
    expect(saved).not.toBe(old.certPem);
    expect(readFileSync(files.key, "utf8")).toBe(key);
    expect(statSync(files.cert).mode & 0o777).toBe(0o644);

    const again = loadInventory(file);
    await ensureCertificateAuthority(again, { save: true });
    expect(await renewCertificateAuthority(again)).toBeUndefined();
  });

  it("issue 10: pgprov's own CA that has already ended (no apply for a year) still loads, and apply renews it with the same key", async () => {
    const file = write(`ended-${++n}.yml`, HOSTS);
    const files = ownCaFiles({ file, dir });
    const ended = await createCa({ commonName: "pgprov CA of ended", days: 3650, now: new Date(Date.now() - 3652 * DAY) });
    saveCa(ended, files);
    const inv = loadInventory(file);
    await ensureCertificateAuthority(inv, { save: true });
    expect((await renewCertificateAuthority(inv))!.save!()).toMatch(/^renewed the CA .*, which expired on \d{4}-\d\d-\d\d: valid until/);
    expect(inv.tls.authority!.cert.publicKey.equals(ended.cert.publicKey)).toBe(true);
  });

  it("issue 10: a CA the inventory gives (tls.ca) is never renewed: a warning within a year of its end", async () => {
    const given = await createCa({ commonName: "their CA", days: 90 });
    const sub = mkdtempSync(join(dir, "given-"));
    saveCa(given, { cert: join(sub, "ca.crt"), key: join(sub, "ca.key") });
    const inv = inventoryOf(`tls: { ca: { cert: ${join(sub, "ca.crt")}, key: ${join(sub, "ca.key")} } }\n${HOSTS}`);
    await ensureCertificateAuthority(inv, { save: true });
    expect((await renewCertificateAuthority(inv))!).toEqual({ warning: expect.stringMatching(/^the CA .*ca\.crt \(tls\.ca\) expires on .*, in 89 days: pgprov never renews a CA the inventory gives; renew it, keeping its key/) });
    expect(readFileSync(join(sub, "ca.crt"), "utf8")).toBe(given.certPem);
  });
});

describe("issue 10: client certificates (access rules with method cert)", () => {
  const access = `pooler: {}\naccess:\n  - { database: appdb, user: app, from: 10.0.0.7, method: cert }\n  - { from: 10.0.0.0/24, method: scram-sha-256 }\n`;
  it("issue 10: with TLS on, ssl_ca_file names the cluster's CA on the host; off, no ssl setting", () => {
    const inv = inventoryOf(`${access}databases: { appdb: {} }\nroles: { app: {} }\n${HOSTS}`);
    expect(render(template("pgprov.conf.hbs"), hostVariables(inv, inv.hosts[0]!, facts), "pgprov.conf")).toContain("\nssl_ca_file = '/etc/postgresql/15/main/pgprov-ca.crt'\n");
  });

  it("issue 10: pgbouncer's hba rejects what pg_hba.conf lets in by certificate: those clients use the server's port", () => {
    const inv = inventoryOf(`${access}databases: { appdb: {} }\nroles: { app: {} }\n${HOSTS}`);
    expect(hostVariables(inv, inv.hosts[0]!, facts).pooler).toMatchObject({
      hba: [
        "hostssl appdb        app                   10.0.0.7/32              reject",
        "hostssl all          all                   10.0.0.0/24              scram-sha-256",
      ],
    });
    expect(hostVariables(inv, inv.hosts[0]!, facts).postgresql).toMatchObject({ access: [expect.stringMatching(/ cert$/), expect.stringMatching(/ scram-sha-256$/)] });
  });
});

describe("issue 10: check finds certificates near their end", () => {
  const t = checksSchema.parse({});
  const now = new Date();
  const host = (name: string, days: number | { error: string }): HostHealth => ({
    host: name,
    role: name === "pg1" ? "primary" : "standby",
    tls: typeof days === "number" ? { file: "/etc/postgresql/15/main/pgprov-server.crt", notAfter: new Date(now.getTime() + days * DAY - 1000).toISOString() } : days,
  });
  it("issue 10: a server certificate or the CA within tls_expiry_days is a warning (30 days), then critical (7); thresholds in checks:", () => {
    const findings = judgeHealth([host("pg1", 200), host("pg2", 20), host("pg3", 3), host("pg4", { error: "cannot read it" })], t, "pg1", {
      ca: { label: "/inv/.pgprov/inv.ca.crt", notAfter: new Date(now.getTime() + 25 * DAY - 1000), fingerprint: "AA", own: false, canSign: true, given: [] },
      now,
    });
    const tls = findings.filter((f) => f.check.startsWith("tls")).map((f) => `${f.status} ${f.check} ${f.host ?? "-"} ${f.value ?? ""}`);
    expect(tls).toEqual(["critical tls_certificate pg3 2", "warning tls_certificate pg2 19", "warning tls_ca - 24", "unknown tls_certificate pg4 ", "ok tls_certificate pg1 199"]);
    expect(findings.find((f) => f.host === "pg2" && f.check === "tls_certificate")!.message).toMatch(/^\/etc\/postgresql\/15\/main\/pgprov-server\.crt expires on \d{4}-\d\d-\d\d, in 19 days/);
    expect(checksSchema.parse({ tls_expiry_days: { warning: 60 } }).tls_expiry_days).toEqual({ warning: 60, critical: 7 });
    expect(checksSchema.safeParse({ tls_expiry_days: { warning: 5, critical: 10 } }).success).toBe(false);
  });
});

afterEach(() => {
  vi.restoreAllMocks();
});

describe("issue 10 review: ssl_ca_file only with client certificates", () => {
  it("issue 10 review: ssl_ca_file is set only when an access rule uses method cert (otherwise a client's own certificate from another CA would be refused)", () => {
    const conf = (access: string) => {
      const inv = inventoryOf(`${access}roles: { app: {} }\n${HOSTS}`);
      return render(template("pgprov.conf.hbs"), hostVariables(inv, inv.hosts[0]!, facts), "pgprov.conf");
    };
    const password = conf(`access:\n  - { user: app, from: 10.0.0.0/24, method: scram-sha-256 }\n`);
    expect(password).toContain("\nssl = on\n");
    expect(password).not.toContain("ssl_ca_file");
    expect(conf(`access:\n  - { user: app, from: 10.0.0.7, method: cert }\n`)).toContain("\nssl_ca_file = '/etc/postgresql/15/main/pgprov-ca.crt'\n");
  });
});

describe("issue 10 review: check's TLS findings", () => {
  const t = checksSchema.parse({});
  const now = new Date();
  const end = (days: number) => new Date(now.getTime() + days * DAY - 1000).toISOString();
  const host = (name: string, days: number, ca?: NonNullable<Extract<HostHealth["tls"], { file: string }>>["ca"]): HostHealth => ({
    host: name,
    role: name === "pg1" ? "primary" : "standby",
    tls: { file: "/etc/postgresql/15/main/pgprov-server.crt", notAfter: end(days), ...(ca ? { ca } : {}) },
  });
  const local = { label: "/inv/.pgprov/inv.ca.crt", notAfter: new Date(end(3000)), fingerprint: "AA:BB", own: true, canSign: true, given: [] as string[] };

  it("issue 10 review: a certificate near its end says who renews it: apply when pgprov signs it, its issuer when given in tls.certificates", () => {
    const findings = judgeHealth([host("pg1", 20), host("pg2", 20)], t, "pg1", { ca: { ...local, given: ["pg2"] }, now });
    const message = (h: string) => findings.find((f) => f.host === h && f.check === "tls_certificate")!.message;
    expect(message("pg1")).toMatch(/in 19 days \(`pgprov apply` renews it\)$/);
    expect(message("pg2")).toMatch(/in 19 days \(given in tls\.certificates\.pg2: pgprov does not renew it; have it issued again and give the new one there\)$/);
    const keyless = judgeHealth([host("pg1", 20)], t, "pg1", { ca: { ...local, own: false, canSign: false, given: ["pg1"] }, now });
    expect(keyless.find((f) => f.check === "tls_certificate")!.message).not.toContain("pgprov apply");
  });

  it("issue 10 review: pgprov's own CA within a year of its end is a warning (apply renews it then); a CA the inventory gives warns at 30 days", () => {
    const status = (ca: typeof local, days: number) => judgeHealth([], t, "pg1", { ca: { ...ca, notAfter: new Date(end(days)) }, now }).find((f) => f.check === "tls_ca")!;
    expect(status(local, 200)).toMatchObject({ status: "warning", value: 199, message: expect.stringMatching(/in 199 days \(`pgprov apply` renews pgprov's own CA within 365 days of its end: has it not run since\?\)$/) });
    expect(status(local, 400).status).toBe("ok");
    expect(status(local, 5).status).toBe("critical");
    const given = { ...local, own: false };
    expect(status(given, 200).status).toBe("ok");
    expect(status(given, 20)).toMatchObject({ status: "warning", message: expect.stringMatching(/\(tls\.ca: pgprov never renews it; its owner must\)$/) });
  });

  it("issue 10 review: a host's copy of the CA that is not the local one (a renewal its apply did not reach) is a finding; one that ends before it says so", () => {
    const findings = judgeHealth(
      [
        host("pg1", 300, { file: "/etc/postgresql/15/main/pgprov-ca.crt", notAfter: local.notAfter.toISOString(), fingerprint: "AA:BB" }),
        host("pg2", 300, { file: "/etc/postgresql/15/main/pgprov-ca.crt", notAfter: end(60), fingerprint: "CC:DD" }),
        host("pg3", 300, { file: "/etc/postgresql/15/main/pgprov-ca.crt", error: "it could not be read: No such file" }),
      ],
      t,
      "pg1",
      { ca: local, now },
    );
    const ca = findings.filter((f) => f.check === "tls_ca").map((f) => `${f.status} ${f.host ?? "-"}`);
    expect(ca.sort()).toEqual(["ok -", "unknown pg3", "warning pg2"]);
    expect(findings.find((f) => f.check === "tls_ca" && f.host === "pg2")!.message).toMatch(
      /^\/etc\/postgresql\/15\/main\/pgprov-ca\.crt is not the CA \/inv\/\.pgprov\/inv\.ca\.crt: it expires on \d{4}-\d\d-\d\d, in 59 days, before the local one \(\d{4}-\d\d-\d\d\); `pgprov apply` puts the local one there$/,
    );
  });

  it("issue 10 review: caOf says whether pgprov signs, and which hosts have a certificate given", async () => {
    const inv = inventoryOf(HOSTS);
    await ensureCertificateAuthority(inv, { save: false });
    expect(caOf(inv)).toMatchObject({ own: true, canSign: true, given: [], fingerprint: inv.tls.authority!.cert.fingerprint256 });
  });
});

describe("issue 10 review: the renewed CA is saved only once the run may change hosts", () => {
  const writable = (id: string): DataDirectory => ({
    exists: true, entries: 20, standbySignal: false, running: true, partialClone: false, replacedLeft: false,
    userDatabases: 1, userRelations: 9, tablespaces: 0, nextOid: 20000, timeline: 1, state: "in production", systemIdentifier: id,
  });

  it("issue 10 review: renewing keeps the new certificate in memory; save() writes it, and adopts one another run saved meanwhile", async () => {
    const file = write(`own-${++n}.yml`, HOSTS);
    const files = ownCaFiles({ file, dir });
    const old = await createCa({ commonName: "pgprov CA of own", days: 200 });
    saveCa(old, files);
    const inv = loadInventory(file);
    const renewal = (await renewCertificateAuthority(inv))!;
    expect(renewal.warning).toMatch(/expires on \d{4}-\d\d-\d\d, in 199 days: apply renews it/);
    expect(readFileSync(files.cert, "utf8")).toBe(old.certPem);
    expect(renewal.save!()).toMatch(/^renewed the CA .*, which expires on .*: valid until/);
    expect(readFileSync(files.cert, "utf8")).toBe(inv.tls.authority!.certPem);

    // Two runs renewed the same CA; the second to save takes the first's certificate.
    writeFileSync(files.cert, old.certPem);
    const [a, b] = [loadInventory(file), loadInventory(file)];
    const [ra, rb] = [(await renewCertificateAuthority(a))!, (await renewCertificateAuthority(b))!];
    ra.save!();
    expect(rb.save!()).toMatch(/was renewed by another run meanwhile/);
    expect(b.tls.authority!.certPem).toBe(a.tls.authority!.certPem);
    expect(readFileSync(files.cert, "utf8")).toBe(a.tls.authority!.certPem);
  });

  it("issue 10 review: apply saves the renewed CA after the safety gate passed, before the first play that may change a host; a refused run saves nothing", () => {
    const inv = inventoryOf(HOSTS);
    const playbook = loadClusterPlaybook(join(import.meta.dirname, "../../playbooks/cluster.yml"), inv);
    const save = vi.fn();
    const gate = safetyGate(playbook, inv, inv.hosts, [], save);
    const refused = new RunResults();
    refused.record(pgDataDirectory, "pg1", writable("1"));
    refused.record(pgDataDirectory, "pg2", writable("2"));
    expect(() => gate(playbook.plays[0]!, refused, ["pg1", "pg2"])).toThrow(/more than one server accepts writes/);
    expect(save).not.toHaveBeenCalled();
    const good = new RunResults();
    good.record(pgDataDirectory, "pg1", writable("1"));
    good.record(pgDataDirectory, "pg2", { ...writable("1"), running: false, standbySignal: true });
    gate(playbook.plays[0]!, good, ["pg1", "pg2"]);
    expect(save).toHaveBeenCalledTimes(1);
  });
});

describe("issue 10 review: dns_names", () => {
  it("issue 10 review bad input: a dns_names entry with a trailing dot is refused at file:line:col (verify-full would not match it)", async () => {
    expect(inventoryProblems(write(`dot-${++n}.yml`, `hosts:\n  pg1:\n    address: 10.0.0.11\n    role: primary\n    dns_names: [db1.example.com.]\n`))).toEqual([
      expect.stringMatching(/^5:17: hosts\.pg1\.dns_names\.0: "db1\.example\.com\." is not a DNS name/),
    ]);
    const ca = await createCa({ commonName: "test CA" });
    await expect(signCsr(ca, keyAndCsr().csr, { dnsNames: ["db1.example.com."] })).rejects.toThrow(/"db1\.example\.com\." is not a DNS name/);
    // A certificate that already names it with the dot (issued elsewhere, or before) is drift.
    const dotted = opensslCert(["subjectAltName=DNS:db1.example.com."]).cert;
    const verdict = checkCertificate(dotted, { ca, expectedNames: { dnsNames: ["db1.example.com"] } });
    expect(!verdict.ok && verdict.reasons.map((r) => r.kind)).toContain("san-missing");
  });
});

describe("issue 10 review: days left, told one way", () => {
  it("issue 10 review: endText counts whole days left and says expired once the end has passed", () => {
    const now = new Date("2026-01-01T12:00:00Z");
    expect(endText(new Date("2026-01-11T11:00:00Z"), now)).toBe("expires on 2026-01-11, in 9 days");
    expect(endText(new Date("2026-01-02T12:00:00Z"), now)).toBe("expires on 2026-01-02, in 1 day");
    expect(endText(new Date("2025-12-31T00:00:00Z"), now)).toBe("expired on 2025-12-31");
  });

  it("issue 10 review: check, the CA's renewal and the certificate verdict tell an end the same way", async () => {
    const ca = await createCa({ commonName: "test CA", days: 20 });
    const cert = await signCsr(ca, keyAndCsr().csr, { dnsNames: ["pg1"], days: 10 });
    const verdict = checkCertificate(cert, { ca, expectedNames: { dnsNames: ["pg1"] } });
    expect(!verdict.ok && verdict.reasons[0]!.message).toMatch(/^the certificate expires on \d{4}-\d\d-\d\d, in 9 days \(renewed within 30\)$/);
  });
});

describe("issue 10 review: an ended CA is said on stderr", () => {
  it("issue 10 review: pgprov ca prints pgprov's own CA that has ended, with a warning on stderr", async () => {
    const file = write(`ended-${++n}.yml`, HOSTS);
    const files = ownCaFiles({ file, dir });
    const ended = await renewCa(await createCa({ commonName: "pgprov CA of ended" }), { days: 1, now: new Date(Date.now() - 3 * DAY) });
    saveCa(ended, files);
    const out: string[] = [];
    const err: string[] = [];
    vi.spyOn(process.stdout, "write").mockImplementation((s) => (out.push(String(s)), true));
    vi.spyOn(process.stderr, "write").mockImplementation((s) => (err.push(String(s)), true));
    expect(caCommand(file, undefined)).toBe(0);
    vi.restoreAllMocks();
    expect(out.join("")).toBe(ended.certPem);
    expect(err.join("")).toMatch(/^pgprov: warning: the CA .*ca\.crt expired on \d{4}-\d\d-\d\d: no client can verify the servers with it; `pgprov apply .*` renews it \(the same key\), then give clients the new one \(pgprov ca\)\n$/);
  });
});
