/**
 * Issue 10, wired in: the inventory's tls section (bad input refused before anything connects,
 * naming the line, the file and the host), the tls_certificate module's decisions, and what the
 * templates and connection strings carry with TLS on and off.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { connectionStrings } from "../../src/cluster/status.js";
import { hostVariables } from "../../src/cluster/variables.js";
import { ensureCertificateAuthority, ensureReplicationPassword, loadInventory } from "../../src/inventory/inventory.js";
import { certificateArgs, tlsCertificate } from "../../src/modules/certificate.js";
import { conninfoSecurity } from "../../src/postgres/debian.js";
import { render } from "../../src/playbook/template.js";
import { type CertificateAuthority, createCa, saveCa, signCsr } from "../../src/tls/index.js";
import { inventoryProblems, keyAndCsr, keyLines, opensslCert } from "./tls-fixtures.js";

vi.setConfig({ testTimeout: 60_000 });
const dir = mkdtempSync(join(tmpdir(), "pgprov-tls-wiring-"));
const THREE = `hosts:\n  pg1: { address: 10.0.0.11, role: primary }\n  pg2: { address: 10.0.0.12, role: standby }\n  pg3: { address: 10.0.0.13, role: standby }\n`;
let n = 0;

function write(name: string, text: string, mode = 0o644): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  chmodSync(path, mode);
  return path;
}

/** The inventory's problems, each as `line:col: message` (the file's name taken off). */
function problems(text: string): string[] {
  return inventoryProblems(write(`inv-${++n}.yml`, text));
}

/** A CA saved in `dir`, and a certificate it signed for `names` with its key, as files. */
async function fixture() {
  const ca = await createCa({ commonName: "test CA" });
  const tag = ++n;
  saveCa(ca, { cert: join(dir, `ca${tag}`, "ca.crt"), key: join(dir, `ca${tag}`, "ca.key") });
  const issue = async (names: { dnsNames?: string[]; ipAddresses?: string[] }, days = 365) => {
    const { csr, key } = keyAndCsr();
    const cert = await signCsr(ca, csr, { ...names, days });
    return { cert: write(`c${++n}.crt`, cert), key: write(`c${n}.key`, key, 0o600), certPem: cert, keyPem: key };
  };
  return { ca, issue };
}

describe("issue 10 bad input: refused before anything connects, naming the line, the file and the host", () => {
  it("issue 10: a CA file that is not a CA", async () => {
    const notCa = opensslCert(["basicConstraints=critical,CA:FALSE"]);
    const cert = write("not-ca.crt", notCa.cert);
    const key = write("not-ca.key", notCa.key, 0o600);
    const [p] = problems(`tls:\n  ca: { cert: ${cert}, key: ${key} }\n${THREE}`);
    expect(p).toMatch(new RegExp(`^2:15: tls\\.ca: ${cert.replace(/[.]/g, "\\.")} is not a CA certificate: CN=someone may not sign certificates`));
  });

  it("issue 10: a key that does not match its certificate", async () => {
    const { ca, issue } = await fixture();
    const pg2 = await issue({ dnsNames: ["pg2"], ipAddresses: ["10.0.0.12"] });
    const other = keyAndCsr();
    const wrongKey = write("wrong.key", other.key, 0o600);
    const text = `tls:\n  ca: { cert: ${ca.files!.cert}, key: ${ca.files!.key} }\n  certificates:\n    pg2: { cert: ${pg2.cert}, key: ${wrongKey} }\n${THREE}`;
    expect(problems(text)).toEqual([`4:10: tls.certificates.pg2: the key of pg2 (${wrongKey}) does not match its certificate ${pg2.cert}`]);
    // The key's content is never part of the message.
    for (const line of keyLines(other.key)) expect(problems(text).join("\n")).not.toContain(line);
  });

  it("issue 10: a certificate whose SAN misses the host", async () => {
    const { ca, issue } = await fixture();
    const wrong = await issue({ dnsNames: ["pg3"], ipAddresses: ["10.0.0.13"] });
    const text = `tls:\n  ca: { cert: ${ca.files!.cert} }\n  certificates:\n    pg1: { cert: ${wrong.cert}, key: ${wrong.key} }\n    pg2: { cert: ${wrong.cert}, key: ${wrong.key} }\n    pg3: { cert: ${wrong.cert}, key: ${wrong.key} }\n${THREE}`;
    expect(problems(text)).toEqual([
      `4:10: tls.certificates.pg1: the certificate of pg1 (${wrong.cert}) does not name DNS name pg1, IP address 10.0.0.11 in its subjectAltName`,
      `5:10: tls.certificates.pg2: the certificate of pg2 (${wrong.cert}) does not name DNS name pg2, IP address 10.0.0.12 in its subjectAltName`,
    ]);
  });

  it("issue 10: a certificate another CA signed, a host not in the inventory, a CA without its key for hosts without certificates", async () => {
    const { ca } = await fixture();
    const other = await fixture();
    const stranger = await other.issue({ dnsNames: ["pg1"], ipAddresses: ["10.0.0.11"] });
    expect(problems(`tls:\n  ca: { cert: ${ca.files!.cert} }\n  certificates:\n    pg1: { cert: ${stranger.cert}, key: ${stranger.key} }\n    pg4: { cert: ${stranger.cert}, key: ${stranger.key} }\n${THREE}`)).toEqual([
      `5:10: tls.certificates.pg4: no host named "pg4" in hosts (did you mean "pg1"?)`,
      "2:7: tls.ca: without tls.ca.key pgprov cannot issue certificates, and pg2, pg3 have none in tls.certificates",
    ]);
    const [p] = problems(`tls:\n  ca: { cert: ${ca.files!.cert}, key: ${ca.files!.key} }\n  certificates:\n    pg1: { cert: ${stranger.cert}, key: ${stranger.key} }\n${THREE}`);
    expect(p).toMatch(/^4:10: tls\.certificates\.pg1: the certificate of pg1 \(.*\) was not signed by the cluster's CA/);
    expect(problems(`tls:\n  certificates:\n    pg1: { cert: ${stranger.cert}, key: ${stranger.key} }\n${THREE}`)).toEqual([
      "3:5: tls.certificates: certificates issued elsewhere need their CA: give its certificate as tls.ca.cert",
    ]);
  });

  it("issue 10: ssl settings are pgprov's while TLS is on, the user's when it is off", () => {
    expect(problems(`postgresql:\n  settings: { ssl_min_protocol_version: TLSv1.2 }\n${THREE}`)).toEqual([
      "2:41: postgresql.settings.ssl_min_protocol_version: ssl_min_protocol_version is managed by pgprov while TLS is on (the inventory's tls section); remove it here",
    ]);
    const file = write("off.yml", `tls: { enabled: false }\npostgresql:\n  settings: { ssl_min_protocol_version: TLSv1.2 }\n${THREE}`);
    expect(loadInventory(file).tls.enabled).toBe(false);
  });

  it("issue 10: one of pgprov's own CA files without the other", async () => {
    const inv = join(mkdtempSync(join(tmpdir(), "pgprov-tls-half-")), "inventory.yml");
    writeFileSync(inv, THREE);
    const ca = await ensureCertificateAuthority(loadInventory(inv), { save: true });
    rmSync(ca!.files!.key!);
    expect(() => loadInventory(inv)).toThrow(`tls.ca: cannot read the CA key ${ca!.files!.key} (ENOENT)`);
  });
});

describe("issue 10: pgprov's own CA next to the inventory", () => {
  it("issue 10: made once by apply (directory 0700, key 0600), in memory only for plan", async () => {
    const d = mkdtempSync(join(tmpdir(), "pgprov-tls-own-"));
    const inv = join(d, "cluster.yml");
    writeFileSync(inv, THREE);
    const planned = await ensureCertificateAuthority(loadInventory(inv), { save: false });
    expect(planned?.files).toBeUndefined();
    expect(existsSync(join(d, ".pgprov"))).toBe(false);
    const made = await ensureCertificateAuthority(loadInventory(inv), { save: true });
    expect(made!.files).toEqual({ cert: join(d, ".pgprov", "cluster.ca.crt"), key: join(d, ".pgprov", "cluster.ca.key") });
    expect(statSync(join(d, ".pgprov")).mode & 0o777).toBe(0o700);
    expect(statSync(made!.files!.key!).mode & 0o777).toBe(0o600);
    const again = loadInventory(inv);
    expect(again.tls.authority?.certPem).toBe(made!.certPem);
    expect(await ensureCertificateAuthority(again, { save: true })).toBe(again.tls.authority);
  });
});

describe("issue 10: tls_certificate decides on the control machine, from the certificate's PEM", () => {
  const base = { cert: "/etc/pg/server.crt", key: "/etc/pg/server.key", owner: "postgres", names: ["pg1", "10.0.0.11"], host: "pg1" };
  const probeOut = (certPem: string | undefined, key = "key=present\nkey_stat=600 postgres postgres\n") => ({
    stdout: `${certPem ? "cert=present" : "cert=missing"}\n${key}${certPem ?? ""}`,
    stderr: "",
    code: 0,
  });
  const context = { playbookDir: "/", render: (t: string) => t };
  let ca: CertificateAuthority;
  const setup = (async () => (ca = await createCa({ commonName: "test CA" })))();
  const issued = async (names = { dnsNames: ["pg1"], ipAddresses: ["10.0.0.11"] }, days = 365) => {
    await setup;
    return signCsr(ca, keyAndCsr().csr, { ...names, days });
  };
  const decide = (certPem: string | undefined, key?: string, extra: object = {}) =>
    tlsCertificate(() => ca).decide(certificateArgs.parse({ ...base, ...extra }), probeOut(certPem, key), context);

  it("issue 10: the probe runs no openssl (a converged run pays no process per check for it)", () => {
    expect(tlsCertificate(() => undefined).probe(certificateArgs.parse(base), context)).not.toMatch(/openssl/);
  });

  it("issue 10: a valid certificate from the CA for exactly the host's names: nothing to do", async () => {
    const d = decide(await issued());
    expect(d.changes).toEqual([]);
    expect(d.reason).toMatch(/^the certificate of pg1 \(\/etc\/pg\/server\.crt\) is valid until \d{4}-\d\d-\d\d$/);
  });

  it("issue 10: renewal is drift: expiring within 30 days, a wrong SAN, another issuer, a missing key, a key others can read", async () => {
    const summaries = async (certPem: string | undefined, key?: string) => decide(certPem, key).changes.map((c) => `${c.action} ${c.summary}`);
    expect(await summaries(await issued(undefined, 10))).toEqual([
      expect.stringMatching(/^update issue a certificate for pg1, 10\.0\.0\.11, signed by the cluster's CA: .* expires on \d{4}-\d\d-\d\d, in 9 days \(renewed within 30\)$/),
    ]);
    expect((await summaries(await issued({ dnsNames: ["pg1"], ipAddresses: ["10.0.0.99"] })))[0]).toMatch(
      /does not name IP address 10\.0\.0\.11 in its subjectAltName; .* also names IP address 10\.0\.0\.99/,
    );
    const self = opensslCert(["subjectAltName=DNS:pg1,IP:10.0.0.11", "extendedKeyUsage=serverAuth"], 365);
    expect((await summaries(self.cert))[0]).toMatch(/was not signed by the cluster's CA \(the new CA CN=test CA\); it was issued by CN=someone$/);
    expect((await summaries(await issued(), "key=missing\n"))[0]).toMatch(/the key of the certificate of pg1 .* is missing$/);
    expect((await summaries(await issued(), "key=present\nkey_stat=644 postgres postgres\n"))[0]).toMatch(/has mode 644 and owner postgres:postgres, not 600 postgres:postgres$/);
    expect(await summaries(undefined)).toEqual([expect.stringMatching(/^create issue a certificate for pg1, 10\.0\.0\.11, .* is missing$/)]);
    expect((await summaries(await issued(), "key=present\nkey_stat=600 postgres postgres\nleftover=/etc/pg/server.key.Ab12Cd\n"))[0]).toMatch(
      /an interrupted renewal left \/etc\/pg\/server\.key\.Ab12Cd beside the certificate of pg1/,
    );
  });

  it("issue 10: issuing makes the key and request on the host, signs here (next), installs; no command carries a key", async () => {
    const [change] = decide(undefined).changes;
    const [make] = change!.commands;
    expect(make!.script).toContain("openssl genpkey");
    expect(make!.script).not.toMatch(/PRIVATE KEY/);
    const { csr } = keyAndCsr();
    const [install] = await make!.next!(csr);
    expect(install!.script).toContain("base64 -d");
    expect(install!.display).toBe("install the new certificate of pg1 (/etc/pg/server.crt) with its new key");
  });

  it("issue 10: a certificate issued elsewhere is installed as given, and left alone once it is there", async () => {
    const given = await issued();
    const { key } = keyAndCsr();
    const args = { certificate: given, private_key: key };
    expect(decide(given, undefined, args).changes).toEqual([]);
    const [change] = decide(undefined, "key=missing\n", args).changes;
    expect(change!.summary).toBe("install the certificate of pg1 (/etc/pg/server.crt) and its key as the inventory gives them (tls.certificates)");
    // The key travels base64 in a heredoc; the display that failures show holds none of it.
    for (const c of change!.commands) expect(c.display ?? "").not.toMatch(/KEY|[A-Za-z0-9+/]{40}/);
  });

  it("issue 10: a certificate that ends with its CA is not issued again on every run; the CA must be renewed", async () => {
    await setup;
    const shortCa = await createCa({ commonName: "short CA", days: 20 });
    const cert = await signCsr(shortCa, keyAndCsr().csr, { dnsNames: ["pg1"], ipAddresses: ["10.0.0.11"] });
    const d = tlsCertificate(() => shortCa).decide(certificateArgs.parse(base), probeOut(cert), context);
    expect(d.changes).toEqual([]);
    expect(d.reason).toMatch(/^WARNING: .* it ends with the CA \(the new CA CN=short CA\) on .*: renew the CA$/);
  });
});

describe("issue 10: connection strings and templates", () => {
  const inventoryOf = (text: string) => {
    const file = write(`tpl-${++n}.yml`, text);
    const inv = loadInventory(file);
    ensureReplicationPassword(inv);
    return inv;
  };
  const facts = { os_id: "debian", os_version: "12", os_codename: "bookworm", arch: "amd64", hostname: "x", cpus: 2, memory_mb: 1024 };
  const template = (name: string) => readFileSync(join(import.meta.dirname, "../../templates", name), "utf8");

  it("issue 10: every connection string to another server verifies it against the CA on the host, with channel binding", () => {
    expect(conninfoSecurity(15, "/etc/postgresql/15/main/pgprov-ca.crt")).toBe(
      "sslmode=verify-full sslrootcert=/etc/postgresql/15/main/pgprov-ca.crt channel_binding=require",
    );
    expect(conninfoSecurity(17, "/ca.crt")).toBe("sslmode=verify-full sslrootcert=/ca.crt channel_binding=require require_auth=scram-sha-256");
    expect(conninfoSecurity(15, undefined)).toBe("");
    const inv = inventoryOf(THREE);
    const vars = hostVariables(inv, inv.hosts[1]!, facts);
    // The boot check's questions to the other members use the same options.
    expect(render(template("boot-fence.sh.hbs"), vars, "boot-fence")).toContain(
      "connect_timeout=3 sslmode=verify-full sslrootcert=/etc/postgresql/15/main/pgprov-ca.crt channel_binding=require\"",
    );
    const conf = render(template("pgprov.conf.hbs"), vars, "pgprov.conf");
    expect(conf).toMatch(/\nssl = on\nssl_cert_file = '\/etc\/postgresql\/15\/main\/pgprov-server\.crt'\nssl_key_file = '\/etc\/postgresql\/15\/main\/pgprov-server\.key'\nssl_min_protocol_version = 'TLSv1\.3'\n/);
  });

  it("issue 10: pg_hba rejects every connection without TLS first, and has no host line; off, it is as before", () => {
    const on = inventoryOf(THREE);
    const rules = (inv: typeof on) =>
      render(template("pg_hba.conf.hbs"), hostVariables(inv, inv.hosts[0]!, facts), "pg_hba")
        .split("\n")
        .filter((l) => l && !l.startsWith("#"))
        .map((l) => l.split(/\s+/)[0]);
    expect(rules(on)).toEqual(["hostnossl", "hostnossl", "hostnossl", "hostnossl", "local", "local", ...Array(8).fill("hostssl")]);
    const off = inventoryOf(`tls: { enabled: false }\n${THREE}`);
    expect(rules(off)).toEqual(["local", "local", ...Array(8).fill("host")]);
    const conf = render(template("pgprov.conf.hbs"), hostVariables(off, off.hosts[1]!, facts), "pgprov.conf");
    expect(conf).not.toContain("ssl");
  });

  it("issue 10: status prints connection strings that verify the servers with the CA", () => {
    const inv = inventoryOf(THREE);
    expect(connectionStrings(inv.hosts, 5432, "/home/dba/.pgprov/inv.ca.crt").readWrite).toBe(
      "postgresql://10.0.0.11:5432,10.0.0.12:5432,10.0.0.13:5432/postgres?target_session_attrs=read-write&sslmode=verify-full&sslrootcert=%2Fhome%2Fdba%2F.pgprov%2Finv.ca.crt",
    );
  });
});
