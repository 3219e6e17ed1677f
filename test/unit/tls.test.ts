import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { inspect } from "node:util";
import { afterAll, describe, expect, it, vi } from "vitest";
import { type CertificateAuthority, createCa, ensureCa, loadCa, saveCa } from "../../src/tls/ca.js";
import { checkCertificate, sanKeys } from "../../src/tls/check.js";
import { certificateProbeScript, installCertificateScript, makeKeyAndCsrScript, parseCertificateProbe } from "../../src/tls/host.js";
import { sanNames } from "../../src/tls/names.js";
import { signCsr } from "../../src/tls/sign.js";
import { keyAndCsr, keyLines, openssl, opensslCert, textOf, work } from "./tls-fixtures.js";

// The first test to make or sign loads the X.509 library: seconds when the machine is busy.
vi.setConfig({ testTimeout: 60_000 });
afterAll(() => rmSync(work, { recursive: true, force: true }));
const DAY = 86_400_000;
let dirs = 0;
function caFiles(): { cert: string; key: string } {
  const dir = join(work, `inv${++dirs}`, ".pgprov");
  return { cert: join(dir, "cluster.ca.crt"), key: join(dir, "cluster.ca.key") };
}

/** Every way a CA's key could be shown, none of which may show it. */
function keyPemOf(ca: CertificateAuthority): string {
  return ca.privateKey().export({ format: "pem", type: "pkcs8" }) as string;
}

function expectNoKey(text: string, keyPem: string): void {
  for (const line of keyLines(keyPem)) expect(text).not.toContain(line);
  expect(text).not.toMatch(/PRIVATE KEY-----\s*[A-Za-z0-9+/]{16}/);
}

/** The error a function throws, as its message (fails the test if it throws none). */
async function errorOf(f: () => unknown): Promise<string> {
  try {
    await f();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("expected an error");
}

const pg1 = { dnsNames: ["pg1", "db1.example.com"], ipAddresses: ["10.0.0.11", "fd00::11"] };

describe("issue 10: the cluster's CA", () => {
  it("issue 10: createCa makes a P-256 key and a self-signed CA: CA:TRUE critical, keyCertSign and cRLSign critical, 10 years", async () => {
    const now = new Date();
    const ca = await createCa({ commonName: "pgprov CA for cluster" });
    const text = textOf(ca.certPem);
    expect(text).toMatch(/Public Key Algorithm: id-ecPublicKey[\s\S]*NIST CURVE: P-256/);
    expect(text).toMatch(/Signature Algorithm: ecdsa-with-SHA256/);
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
    expect(text).toMatch(/Subject: CN ?= ?pgprov CA for cluster/);
    expect(text).toMatch(/Issuer: CN ?= ?pgprov CA for cluster/);
    const years = (ca.notAfter.getTime() - now.getTime()) / DAY / 365;
    expect(years).toBeGreaterThan(9.99);
    expect(years).toBeLessThan(10.01);
    // Self-signed, and openssl agrees it is a CA.
    const file = join(work, "self.crt");
    writeFileSync(file, ca.certPem);
    expect(openssl(["verify", "-CAfile", file, file])).toContain("OK");
  });

  it("issue 10: createCa makes an Ed25519 CA when asked", async () => {
    const ca = await createCa({ commonName: "ed", algorithm: "Ed25519", days: 10 });
    expect(textOf(ca.certPem)).toMatch(/Public Key Algorithm: ED25519/);
    expect(ca.privateKey().asymmetricKeyType).toBe("ed25519");
  });

  it("issue 10: createCa refuses a common name with a line break, and one too long", async () => {
    expect(await errorOf(() => createCa({ commonName: "a\nb" }))).toMatch(/common name must be 1 to 64 printable characters/);
    expect(await errorOf(() => createCa({ commonName: "x".repeat(65) }))).toMatch(/common name/);
  });

  it("issue 10: saveCa writes .pgprov/ 0700, the key 0600, and loadCa reads the same CA back", async () => {
    const files = caFiles();
    const ca = await createCa({ commonName: "c" });
    saveCa(ca, files);
    expect(statSync(join(files.key, "..")).mode & 0o777).toBe(0o700);
    expect(statSync(files.key).mode & 0o777).toBe(0o600);
    expect(readFileSync(files.cert, "utf8")).toBe(ca.certPem);
    const loaded = loadCa(files);
    expect(loaded.certPem).toBe(ca.certPem);
    expect(loaded.privateKey().equals(ca.privateKey())).toBe(true);
    expect(loaded.files).toEqual(files);
    // No temporary file is left beside them.
    expect(spawnSync("ls", ["-A", join(files.key, "..")], { encoding: "utf8" }).stdout.trim().split("\n").sort()).toEqual(["cluster.ca.crt", "cluster.ca.key"]);
  });

  it("issue 10: saveCa never overwrites an existing CA, and names the file", async () => {
    const files = caFiles();
    saveCa(await createCa({ commonName: "first" }), files);
    const before = [readFileSync(files.cert, "utf8"), readFileSync(files.key, "utf8")];
    const second = await createCa({ commonName: "second" });
    expect(await errorOf(() => saveCa(second, files))).toBe(`${files.key} exists already; pgprov never overwrites a CA's files`);
    expect([readFileSync(files.cert, "utf8"), readFileSync(files.key, "utf8")]).toEqual(before);
  });

  it("issue 10: saveCa refuses a .pgprov directory others can read", async () => {
    const files = caFiles();
    mkdirSync(join(files.key, ".."), { recursive: true });
    chmodSync(join(files.key, ".."), 0o755);
    const message = await errorOf(async () => saveCa(await createCa({ commonName: "c" }), files));
    expect(message).toBe(`${join(files.key, "..")} is open to other users (mode 755); chmod 700 it before pgprov keeps a CA key there`);
    expect(existsSync(files.key)).toBe(false);
  });

  it("issue 10: ensureCa makes the CA once, then loads the same one", async () => {
    const files = caFiles();
    const first = await ensureCa(files, { commonName: "c" });
    const again = await ensureCa(files, { commonName: "c" });
    expect([first.created, again.created]).toEqual([true, false]);
    expect(again.ca.certPem).toBe(first.ca.certPem);
  });

  it("issue 10: ensureCa refuses a CA certificate without its key (and the reverse), writing nothing", async () => {
    const files = caFiles();
    saveCa(await createCa({ commonName: "c" }), files);
    const key = readFileSync(files.key, "utf8");
    spawnSync("rm", [files.key]);
    expect(await errorOf(() => ensureCa(files, { commonName: "c" }))).toBe(
      `${files.cert} exists but ${files.key} does not: restore ${files.key}, or remove ${files.cert} to make a new CA (every server's certificate is then issued again)`,
    );
    expect(existsSync(files.key)).toBe(false);
    writeFileSync(files.key, key, { mode: 0o600 });
    spawnSync("rm", [files.cert]);
    expect(await errorOf(() => ensureCa(files, { commonName: "c" }))).toMatch(new RegExp(`^${files.key} exists but ${files.cert} does not`));
    expect(existsSync(files.cert)).toBe(false);
  });

  it("issue 10: a CA's key never shows in its toString, JSON or util.inspect", async () => {
    const files = caFiles();
    const ca = await createCa({ commonName: "c" });
    saveCa(ca, files);
    const key = keyPemOf(ca);
    for (const shown of [String(ca), JSON.stringify(ca), inspect(ca, { depth: 10, showHidden: true }), inspect({ ca }, { depth: 10 })]) expectNoKey(shown, key);
    expect(inspect(ca)).toBe(`CertificateAuthority(${files.cert})`);
  });
});

describe("issue 10: an existing CA (tls.ca) is checked before anything connects", () => {
  function write(name: string, content: string, mode = 0o600): string {
    const file = join(work, name);
    writeFileSync(file, content, { mode });
    chmodSync(file, mode);
    return file;
  }

  it("issue 10 bad input: a CA file that is not a CA is refused, naming the file", () => {
    const leaf = opensslCert(["basicConstraints=critical,CA:FALSE"]);
    const cert = write("leaf.crt", leaf.cert, 0o644);
    const key = write("leaf.key", leaf.key);
    expect(() => loadCa({ cert, key })).toThrow(
      `${cert} is not a CA certificate: CN=someone may not sign certificates (it needs basicConstraints CA:TRUE, and keyCertSign in its keyUsage if it has one)`,
    );
  });

  it("issue 10 bad input: a CA certificate whose keyUsage lacks keyCertSign is refused, naming the file", () => {
    const bad = opensslCert(["basicConstraints=critical,CA:TRUE", "keyUsage=critical,digitalSignature"]);
    chmodSync(bad.keyFile, 0o600);
    expect(() => loadCa({ cert: bad.certFile, key: bad.keyFile })).toThrow(`${bad.certFile} is not a CA certificate: CN=someone may not sign certificates`);
  });

  it("issue 10 bad input: a key that does not match its certificate is refused, naming both files", async () => {
    const ca = opensslCert(["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign"]);
    const other = keyAndCsr();
    const cert = write("ca-a.crt", ca.cert, 0o644);
    const key = write("other.key", other.key);
    const message = await errorOf(() => loadCa({ cert, key }));
    expect(message).toBe(`the CA key ${key} does not match the CA certificate ${cert}`);
    expectNoKey(message, other.key);
  });

  it("issue 10 bad input: an expired CA, and one not valid yet, are refused with the date", async () => {
    const files = caFiles();
    saveCa(await createCa({ commonName: "old", days: 10, now: new Date(Date.now() - 20 * DAY) }), files);
    expect(await errorOf(() => loadCa(files))).toMatch(new RegExp(`^the CA certificate ${files.cert} \\(CN=old\\) expired on \\d{4}-\\d\\d-\\d\\dT`));
    const later = caFiles();
    saveCa(await createCa({ commonName: "future", now: new Date(Date.now() + 2 * DAY) }), later);
    expect(await errorOf(() => loadCa(later))).toMatch(new RegExp(`^the CA certificate ${later.cert} \\(CN=future\\) is not valid before`));
  });

  it("issue 10 bad input: an unreadable file is named with the reason", async () => {
    const files = caFiles();
    expect(await errorOf(() => loadCa(files))).toBe(`cannot read the CA certificate ${files.cert} (ENOENT)`);
    saveCa(await createCa({ commonName: "c" }), files);
    spawnSync("rm", [files.key]);
    expect(await errorOf(() => loadCa(files))).toBe(`cannot read the CA key ${files.key} (ENOENT)`);
    expect(await errorOf(() => loadCa({ cert: join(work), key: files.key }))).toBe(`cannot read the CA certificate ${work} (EISDIR)`);
  });

  it("issue 10 bad input: a CA key others can read is refused, like ssh refuses one", async () => {
    const files = caFiles();
    saveCa(await createCa({ commonName: "c" }), files);
    chmodSync(files.key, 0o640);
    expect(await errorOf(() => loadCa(files))).toBe(`the CA key ${files.key} is readable by others (mode 640); chmod 600 it`);
  });

  it("issue 10 bad input: swapped cert and key, garbage, an encrypted key, several certificates: each named, no key shown", async () => {
    const files = caFiles();
    const ca = await createCa({ commonName: "c" });
    saveCa(ca, files);
    const keyPem = keyPemOf(ca);
    const swapped = write("swapped.crt", keyPem);
    const messages = [await errorOf(() => loadCa({ cert: swapped, key: files.key }))];
    expect(messages[0]).toBe(`${swapped} holds a private key, not a CA certificate (are the CA's cert and key swapped?)`);
    const garbage = write("garbage.crt", "hello\n");
    messages.push(await errorOf(() => loadCa({ cert: garbage, key: files.key })));
    expect(messages[1]).toBe(`${garbage} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
    const two = write("two.crt", ca.certPem + ca.certPem);
    messages.push(await errorOf(() => loadCa({ cert: two, key: files.key })));
    expect(messages[2]).toMatch(/holds 2 certificates/);
    const encrypted = write("enc.key", openssl(["pkey", "-aes256", "-passout", "pass:secret1234"], keyPem));
    messages.push(await errorOf(() => loadCa({ cert: files.cert, key: encrypted })));
    expect(messages[3]).toBe(`the CA key ${encrypted} is encrypted with a passphrase; pgprov needs it unencrypted, mode 0600`);
    const cut = write("cut.key", keyPem.slice(0, 120) + "\n-----END PRIVATE KEY-----\n");
    messages.push(await errorOf(() => loadCa({ cert: files.cert, key: cut })));
    expect(messages[4]).toBe(`the CA key ${cut} is not a private key pgprov can read (PEM: PKCS#8, SEC1 or PKCS#1)`);
    const certAsKey = write("cert-as.key", ca.certPem);
    messages.push(await errorOf(() => loadCa({ cert: files.cert, key: certAsKey })));
    expect(messages[5]).toBe(`the CA key ${certAsKey} holds no PEM private key (-----BEGIN PRIVATE KEY-----)`);
    for (const m of messages) expectNoKey(m, keyPem);
  });

  it("issue 10: an existing CA made by openssl (EC or RSA) signs servers' certificates", async () => {
    for (const newkey of [["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"], ["-newkey", "rsa:2048"]]) {
      const base = join(work, `ossl-ca-${newkey[1]}`);
      openssl(["req", "-x509", ...newkey, "-nodes", "-keyout", `${base}.key`, "-out", `${base}.crt`, "-subj", "/O=Acme/CN=Acme DB CA", "-days", "100", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
      chmodSync(`${base}.key`, 0o600);
      const ca = loadCa({ cert: `${base}.crt`, key: `${base}.key` });
      const cert = await signCsr(ca, keyAndCsr().csr, { dnsNames: ["pg1"] });
      const certFile = `${base}.leaf.crt`;
      writeFileSync(certFile, cert);
      expect(openssl(["verify", "-CAfile", `${base}.crt`, "-purpose", "sslserver", certFile])).toContain("OK");
    }
  });
});

describe("issue 10: signCsr", () => {
  const caPromise = createCa({ commonName: "pgprov test CA" });

  it("issue 10: issues a server certificate for the request's key: SAN exactly as given, serverAuth, CA:FALSE, 1 year, chain verified by openssl", async () => {
    const ca = await caPromise;
    // The request asks for another name: pgprov never takes the SAN from it.
    const { csr, keyFile } = keyAndCsr({ addext: "subjectAltName=DNS:evil.example" });
    const now = new Date();
    const pem = await signCsr(ca, csr, { ...pg1, host: "pg1" });
    const text = textOf(pem);
    expect(openssl(["x509", "-noout", "-ext", "subjectAltName"], pem).split("\n")[1]!.trim()).toBe(
      "DNS:pg1, DNS:db1.example.com, IP Address:10.0.0.11, IP Address:FD00:0:0:0:0:0:0:11",
    );
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\n/);
    expect(text).toMatch(/X509v3 Extended Key Usage: \s+TLS Web Server Authentication\n/);
    expect(text).toMatch(/X509v3 Authority Key Identifier/);
    expect(text).toMatch(/Subject: CN ?= ?pg1\n/);
    expect(text).not.toContain("evil.example");
    const caFile = join(work, "sign-ca.crt");
    const certFile = join(work, "sign-leaf.crt");
    writeFileSync(caFile, ca.certPem);
    writeFileSync(certFile, pem);
    expect(openssl(["verify", "-CAfile", caFile, "-purpose", "sslserver", "-verify_hostname", "db1.example.com", certFile])).toContain("OK");
    // The certificate is for the host's own key.
    expect(openssl(["x509", "-noout", "-pubkey"], pem)).toBe(openssl(["pkey", "-pubout", "-in", keyFile]));
    const days = (new Date(openssl(["x509", "-noout", "-enddate"], pem).split("=")[1]!).getTime() - now.getTime()) / DAY;
    expect(Math.round(days)).toBe(365);
  });

  it("issue 10: every certificate gets its own random serial", async () => {
    const ca = await caPromise;
    const { csr } = keyAndCsr();
    const serials = new Set<string>();
    for (let i = 0; i < 5; i++) serials.add(openssl(["x509", "-noout", "-serial"], await signCsr(ca, csr, { dnsNames: ["pg1"] })));
    expect(serials.size).toBe(5);
    for (const s of serials) expect(s.trim()).toMatch(/^serial=[4-7][0-9A-F]{31}$/);
  });

  it("issue 10: refuses a request whose signature does not verify, naming the host", async () => {
    const ca = await caPromise;
    const { csr } = keyAndCsr();
    const der = Buffer.from(csr.replace(/-----[A-Z ]+-----|\s/g, ""), "base64");
    der[der.length - 3]! ^= 0x01; // inside the signature
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString("base64")}\n-----END CERTIFICATE REQUEST-----\n`;
    expect(await errorOf(() => signCsr(ca, tampered, { dnsNames: ["pg1"], host: "pg1" }))).toBe(
      "the signing request from pg1 does not verify: its signature was not made by the key it holds",
    );
    expect(await errorOf(() => signCsr(ca, "not a request", { dnsNames: ["pg1"], host: "pg1" }))).toBe(
      "the signing request from pg1 is not a PEM certificate signing request (-----BEGIN CERTIFICATE REQUEST-----)",
    );
  });

  it("issue 10: refuses weak or unusual keys in a request (RSA 1024, secp256k1)", async () => {
    const ca = await caPromise;
    const rsa = keyAndCsr({ keyArgs: ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"] });
    expect(await errorOf(() => signCsr(ca, rsa.csr, { dnsNames: ["pg1"], host: "pg1" }))).toBe(
      "the signing request from pg1 holds a 1024-bit RSA key; pgprov signs ECDSA P-256/P-384/P-521, Ed25519 or RSA keys of at least 2048 bits",
    );
    const k1 = keyAndCsr({ keyArgs: ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp256k1"] });
    expect(await errorOf(() => signCsr(ca, k1.csr, { dnsNames: ["pg1"], host: "pg1" }))).toMatch(/holds an EC key on secp256k1/);
    const ed = keyAndCsr({ keyArgs: ["-algorithm", "ED25519"] });
    expect(textOf(await signCsr(ca, ed.csr, { dnsNames: ["pg1"] }))).toMatch(/ED25519/);
  });

  it("issue 10: refuses names that are not DNS names or addresses, and no name at all", async () => {
    const ca = await caPromise;
    const { csr } = keyAndCsr();
    expect(await errorOf(() => signCsr(ca, csr, { dnsNames: ["*.example.com"], host: "pg1" }))).toBe(
      'the certificate of pg1: "*.example.com" is not a DNS name (letters, digits and hyphens, in labels separated by dots; no trailing dot)',
    );
    expect(await errorOf(() => signCsr(ca, csr, { dnsNames: ["pg1;reboot"], host: "pg1" }))).toMatch(/"pg1;reboot" is not a DNS name/);
    expect(await errorOf(() => signCsr(ca, csr, { ipAddresses: ["10.0.0.300"], host: "pg1" }))).toBe('the certificate of pg1: "10.0.0.300" is not an IP address');
    expect(await errorOf(() => signCsr(ca, csr, { host: "pg1" }))).toBe("the certificate of pg1: no name or address to issue a certificate for");
  });

  it("issue 10: a certificate never outlives its CA", async () => {
    const ca = await createCa({ commonName: "short", days: 100 });
    const pem = await signCsr(ca, keyAndCsr().csr, { dnsNames: ["pg1"] });
    expect(new Date(openssl(["x509", "-noout", "-enddate"], pem).split("=")[1]!).getTime()).toBe(Math.floor(ca.notAfter.getTime() / 1000) * 1000);
  });

});

describe("issue 10: checkCertificate, renewal as drift", () => {
  const setup = (async () => {
    const ca = await createCa({ commonName: "check CA" });
    const host = keyAndCsr();
    const cert = await signCsr(ca, host.csr, pg1);
    const pub = openssl(["pkey", "-pubout", "-in", host.keyFile]);
    return { ca, host, cert, pub };
  })();
  const label = "the certificate of pg1 (/etc/postgresql/16/main/pgprov.crt)";

  it("issue 10: a fresh certificate with the right names, CA and key is ok", async () => {
    const { ca, cert, pub } = await setup;
    const verdict = checkCertificate(cert, { ca, expectedNames: pg1, label, keyPublicPem: pub });
    expect(verdict.ok).toBe(true);
    expect(verdict.ok && verdict.message).toMatch(new RegExp(`^the certificate of pg1 \\(/etc/postgresql/16/main/pgprov.crt\\) is valid until \\d{4}-\\d\\d-\\d\\d$`));
  });

  it("issue 10: names compare as names: OpenSSL's spelling of an IPv6 address, DNS case, order", async () => {
    const { ca, cert } = await setup;
    const names = { dnsNames: ["DB1.example.com", "pg1"], ipAddresses: ["FD00:0:0:0:0:0:0:11", "10.0.0.11"] };
    expect(checkCertificate(cert, { ca, expectedNames: names }).ok).toBe(true);
  });

  it("issue 10: a certificate expiring within 30 days is renewed; an expired one too", async () => {
    const { ca, host } = await setup;
    const short = await signCsr(ca, host.csr, { ...pg1, days: 10 });
    const verdict = checkCertificate(short, { ca, expectedNames: pg1, label });
    expect(verdict).toEqual({ ok: false, reasons: [{ kind: "expires-soon", message: expect.stringMatching(new RegExp(`^${label.replace(/[()]/g, "\\$&")} expires on \\d{4}-\\d\\d-\\d\\d, in 9 days \\(renewed within 30\\)$`)) }] });
    expect(checkCertificate(short, { ca, expectedNames: pg1, label, renewWithinDays: 5 }).ok).toBe(true);
    const later = checkCertificate(short, { ca, expectedNames: pg1, label, now: new Date(Date.now() + 11 * DAY) });
    expect(!later.ok && later.reasons.map((r) => r.kind)).toEqual(["expired"]);
  });

  it("issue 10: a certificate not valid yet is renewed", async () => {
    const { ca, cert } = await setup;
    const verdict = checkCertificate(cert, { ca, expectedNames: pg1, label, now: new Date(Date.now() - 2 * 3_600_000) });
    expect(!verdict.ok && verdict.reasons).toEqual([{ kind: "not-yet-valid", message: expect.stringMatching(new RegExp(`^${label.replace(/[()]/g, "\\$&")} is not valid before `)) }]);
  });

  it("issue 10: a SAN that misses a name, or names another, is renewed, each named", async () => {
    const { ca, cert } = await setup;
    const wanted = { dnsNames: ["pg1", "pg1.internal"], ipAddresses: ["10.0.0.11", "fd00::11"] };
    const verdict = checkCertificate(cert, { ca, expectedNames: wanted, label });
    expect(!verdict.ok && verdict.reasons).toEqual([
      { kind: "san-missing", message: `${label} does not name DNS name pg1.internal in its subjectAltName` },
      { kind: "san-extra", message: `${label} also names DNS name db1.example.com, which the inventory does not give this host` },
    ]);
    // A certificate issued elsewhere (tls.certificates) may name more than the host.
    const more = checkCertificate(cert, { ca, expectedNames: { dnsNames: ["pg1"] }, exactSan: false });
    expect(more.ok).toBe(true);
  });

  it("issue 10: a certificate not signed by the cluster's CA is renewed: self-signed, or another CA with the same name", async () => {
    const { ca, host } = await setup;
    const self = opensslCert(["subjectAltName=DNS:pg1,DNS:db1.example.com,IP:10.0.0.11,IP:fd00::11", "extendedKeyUsage=serverAuth"], 365, "/CN=check CA");
    const verdict = checkCertificate(self.cert, { ca, expectedNames: pg1, label });
    expect(!verdict.ok && verdict.reasons).toEqual([{ kind: "wrong-ca", message: `${label} was not signed by the cluster's CA (the new CA CN=check CA); it was issued by CN=check CA` }]);
    const impostor = await createCa({ commonName: "check CA" });
    const forged = await signCsr(impostor, host.csr, pg1);
    const v2 = checkCertificate(forged, { ca, expectedNames: pg1, label });
    expect(!v2.ok && v2.reasons.map((r) => r.kind)).toEqual(["wrong-ca"]);
  });

  it("issue 10: a certificate whose extendedKeyUsage excludes servers is renewed", async () => {
    const { ca } = await setup;
    const caFile = join(work, "eku-ca");
    writeFileSync(`${caFile}.crt`, ca.certPem);
    writeFileSync(`${caFile}.key`, ca.privateKey().export({ format: "pem", type: "pkcs8" }) as string, { mode: 0o600 });
    const { csr } = keyAndCsr();
    writeFileSync(`${caFile}.csr`, csr);
    writeFileSync(`${caFile}.ext`, "extendedKeyUsage=clientAuth\nsubjectAltName=DNS:pg1,DNS:db1.example.com,IP:10.0.0.11,IP:fd00::11\n");
    const client = openssl(["x509", "-req", "-in", `${caFile}.csr`, "-CA", `${caFile}.crt`, "-CAkey", `${caFile}.key`, "-days", "100", "-extfile", `${caFile}.ext`]);
    const verdict = checkCertificate(client, { ca, expectedNames: pg1, label });
    expect(!verdict.ok && verdict.reasons).toEqual([{ kind: "not-server", message: `${label} is not for TLS servers (its extendedKeyUsage lacks serverAuth)` }]);
  });

  it("issue 10: a missing key, or a key that is not the certificate's, is renewed", async () => {
    const { ca, cert } = await setup;
    const missing = checkCertificate(cert, { ca, expectedNames: pg1, label, keyPublicPem: null });
    expect(!missing.ok && missing.reasons).toEqual([{ kind: "key-missing", message: `the key of ${label} is missing` }]);
    const otherPub = openssl(["pkey", "-pubout", "-in", keyAndCsr().keyFile]);
    const mismatch = checkCertificate(cert, { ca, expectedNames: pg1, label, keyPublicPem: otherPub });
    expect(!mismatch.ok && mismatch.reasons).toEqual([{ kind: "key-mismatch", message: `the key beside ${label} is not the certificate's key` }]);
  });

  it("issue 10: no certificate, or one that is not a certificate, is renewed", async () => {
    const { ca } = await setup;
    expect(checkCertificate(undefined, { ca, expectedNames: pg1, label })).toEqual({ ok: false, reasons: [{ kind: "missing", message: `${label} is missing` }] });
    expect(checkCertificate("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", { ca, expectedNames: pg1, label })).toEqual({
      ok: false,
      reasons: [{ kind: "unreadable", message: `${label} is not a PEM certificate` }],
    });
  });

  it("issue 10: a certificate that ends with its CA asks for the CA's renewal, not another certificate", async () => {
    const ca = await createCa({ commonName: "ending", days: 20 });
    const cert = await signCsr(ca, keyAndCsr().csr, { dnsNames: ["pg1"] });
    const verdict = checkCertificate(cert, { ca, expectedNames: { dnsNames: ["pg1"] } });
    expect(!verdict.ok && verdict.caExpiresSoon).toEqual(ca.notAfter);
  });

  it("issue 10: Node's subjectAltName text is read with quoted values and other kinds", () => {
    expect(sanKeys('DNS:pg1, IP Address:FD00:0:0:0:0:0:0:11, DNS:"a, b", email:x@y')).toEqual(["dns:pg1", "ip:fd00::11", "dns:a, b", "email:x@y"]);
    expect(sanKeys(undefined)).toEqual([]);
    expect(sanNames(["pg1", "10.0.0.11", "db.example.com", "::1", "pg1"])).toEqual({ dnsNames: ["pg1", "db.example.com"], ipAddresses: ["10.0.0.11", "::1"] });
  });
});

describe("issue 10: the hosts' scripts", () => {
  const files = { certFile: "/etc/postgresql/16/main/pg 'x' $(reboot).crt", keyFile: "/etc/postgresql/16/main/pgprov.key" };

  it("issue 10: every path and name is quoted; the key is made under umask 077 and never printed", () => {
    const script = makeKeyAndCsrScript(files, "pg1");
    expect(script).toContain("umask 077");
    expect(script).toContain("tmp=$(mktemp /etc/postgresql/16/main/pgprov.key.XXXXXX)");
    expect(script).toContain("setpriv --reuid=postgres --regid=postgres --init-groups -- sh -s");
    expect(script).toContain("-subj /CN=pg1");
    expect(script).not.toMatch(/\bcat\b|-text|-noout -in .*key|set -x/);
    const install = installCertificateScript(files, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    expect(install).toContain(`mv -f -- "$tmp" '/etc/postgresql/16/main/pg '\\''x'\\'' $(reboot).crt'`);
    expect(install).toContain("base64 -d > \"$tmp\" <<'PGPROV_EOF'");
    const probe = certificateProbeScript(files);
    expect(probe).toContain(`'/etc/postgresql/16/main/pg '\\''x'\\'' $(reboot).crt'`);
    expect(probe).not.toMatch(/cat /);
  });

  it("issue 10: refuses relative paths, line breaks, odd owners, a common name that is not a DNS name, and a certificate that is not one PEM certificate", () => {
    expect(() => makeKeyAndCsrScript({ ...files, keyFile: "server.key" }, "pg1")).toThrow('"server.key": a certificate or key path must be absolute, on one line');
    expect(() => makeKeyAndCsrScript({ ...files, keyFile: "/a\n/b" }, "pg1")).toThrow(/must be absolute, on one line/);
    expect(() => makeKeyAndCsrScript({ ...files, owner: "postgres; reboot" }, "pg1")).toThrow('"postgres; reboot" is not a user or group name');
    expect(() => makeKeyAndCsrScript(files, "pg1/O=evil")).toThrow('"pg1/O=evil" is not a DNS name to put in a signing request');
    expect(() => installCertificateScript(files, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")).toThrow(
      `the certificate for ${files.certFile} is not one PEM certificate`,
    );
  });

  it("issue 10: the probe's reader takes only certificates and public keys from what a host prints", () => {
    const { key } = keyAndCsr();
    const out = `cert=present\nkey=present\nkey_stat=600 postgres postgres\n-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n${key}-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n`;
    const probe = parseCertificateProbe(out);
    expect(probe).toEqual({
      cert: "present",
      key: "present",
      keyMode: "600",
      keyOwner: "postgres",
      keyGroup: "postgres",
      keyPublicPem: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
      certPem: "-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n",
    });
    expectNoKey(JSON.stringify(probe), key);
    expect(parseCertificateProbe("cert=missing\nkey=missing\n")).toEqual({ cert: "missing", key: "missing" });
  });
});
