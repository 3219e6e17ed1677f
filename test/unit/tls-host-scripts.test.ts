/**
 * The hosts' scripts run for real, with this machine's sh and openssl, in a directory whose name
 * a careless quote would break; the certificates they end up with are checked by openssl and by
 * a TLS 1.3 handshake on the loopback address.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { userInfo } from "node:os";
import { join } from "node:path";
import { connect, createServer } from "node:tls";
import { afterAll, describe, expect, it, vi } from "vitest";
import { createCa } from "../../src/tls/ca.js";
import { checkCertificate } from "../../src/tls/check.js";
import { certificateProbeScript, installCertificateScript, installGivenKeyScript, makeKeyAndCsrScript, parseCertificateProbe, pendingKeyFile } from "../../src/tls/host.js";
import { signCsr } from "../../src/tls/sign.js";
import { keyLines, openssl, opensslCert, work } from "./tls-fixtures.js";

// The first test to make or sign loads the X.509 library: seconds when the machine is busy.
vi.setConfig({ testTimeout: 60_000 });
afterAll(() => rmSync(work, { recursive: true, force: true }));
const dir = join(work, `host dir 'q' $(touch pwned) "dq"`);
mkdirSync(dir, { recursive: true });
const owner = userInfo().username;
const group = execFileSync("id", ["-gn"], { encoding: "utf8" }).trim();
const files = { certFile: join(dir, "server.crt"), keyFile: join(dir, "server.key"), owner, group };
const names = { dnsNames: ["pg1", "db1.example.com"], ipAddresses: ["127.0.0.1", "fd00::11"] };

/** Runs a script the way the engine does: sh reading it from stdin, never from an argument. */
function sh(script: string): { stdout: string; stderr: string; status: number | null } {
  const r = spawnSync("sh", ["-s"], { input: script, encoding: "utf8", cwd: work });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

function expectNoKeyIn(text: string, keyPem: string): void {
  for (const line of keyLines(keyPem)) expect(text).not.toContain(line);
}

const caFile = join(work, "scripts-ca.crt");
const setup = (async () => {
  const ca = await createCa({ commonName: "scripts CA" });
  writeFileSync(caFile, ca.certPem);
  return ca;
})();

/** One round: a new key and request on the "host", signed here, installed there. */
async function issue(): Promise<{ csrRun: ReturnType<typeof sh>; cert: string; pendingKey: string }> {
  const ca = await setup;
  const csrRun = sh(makeKeyAndCsrScript(files, "pg1"));
  expect(csrRun.status, csrRun.stderr).toBe(0);
  const pendingKey = readFileSync(pendingKeyFile(files.keyFile), "utf8");
  const cert = await signCsr(ca, csrRun.stdout, { ...names, host: "pg1" });
  const install = sh(installCertificateScript(files, cert));
  expect(install.status, install.stderr).toBe(0);
  expectNoKeyIn(install.stdout + install.stderr, pendingKey);
  return { csrRun, cert, pendingKey };
}

function probe() {
  const run = sh(certificateProbeScript(files));
  expect(run.status, run.stderr).toBe(0);
  return { run, parsed: parseCertificateProbe(run.stdout) };
}

describe("issue 10: a host makes its key and request, pgprov signs, the host installs (real sh and openssl)", () => {
  it("issue 10: the key is made on the host (0600, its owner), only the request is printed; openssl verifies chain and SAN", async () => {
    const ca = await setup;
    const { csrRun, cert, pendingKey } = await issue();
    expect(csrRun.stdout).toMatch(/^-----BEGIN CERTIFICATE REQUEST-----\n[\s\S]+-----END CERTIFICATE REQUEST-----\n$/);
    expectNoKeyIn(csrRun.stdout + csrRun.stderr, pendingKey);
    const key = statSync(files.keyFile);
    expect(key.mode & 0o777).toBe(0o600);
    expect(key.uid).toBe(userInfo().uid);
    expect(statSync(files.certFile).mode & 0o777).toBe(0o644);
    expect(readFileSync(files.keyFile, "utf8")).toBe(pendingKey);
    expect(spawnSync("ls", ["-A", dir], { encoding: "utf8" }).stdout.trim().split("\n").sort()).toEqual(["server.crt", "server.key"]);
    // The quotes of the directory's name held: nothing ran.
    expect(existsSync(join(work, "pwned"))).toBe(false);

    expect(openssl(["verify", "-CAfile", caFile, "-purpose", "sslserver", files.certFile]).trim()).toBe(`${files.certFile}: OK`);
    expect(openssl(["x509", "-in", files.certFile, "-noout", "-ext", "subjectAltName"]).split("\n")[1]!.trim()).toBe(
      "DNS:pg1, DNS:db1.example.com, IP Address:127.0.0.1, IP Address:FD00:0:0:0:0:0:0:11",
    );
    expect(readFileSync(files.certFile, "utf8")).toBe(cert);

    const { run, parsed } = probe();
    expectNoKeyIn(run.stdout + run.stderr, pendingKey);
    expect(parsed).toMatchObject({ cert: "present", key: "present", keyMode: "600", keyOwner: owner, keyGroup: group, certPem: cert });
    const verdict = checkCertificate(parsed.certPem, { ca, expectedNames: names, keyPublicPem: parsed.keyPublicPem, label: `the certificate of pg1 (${files.certFile})` });
    expect(verdict.ok).toBe(true);
  });

  it("issue 10: a TLS 1.3 client that trusts only the CA connects by a name in the SAN, and is refused by a name not in it", async () => {
    await issue();
    const server = createServer({ key: readFileSync(files.keyFile), cert: readFileSync(files.certFile), minVersion: "TLSv1.3" }, (s) => s.end("hello"));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    const attempt = (servername: string) =>
      new Promise<string>((resolve) => {
        const s = connect({ host: "127.0.0.1", port, servername, ca: readFileSync(caFile), minVersion: "TLSv1.3" }, () => {
          resolve(`ok ${s.getProtocol()}`);
          s.destroy();
        });
        s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
        s.setTimeout(10_000, () => resolve("timeout"));
      });
    try {
      expect(await attempt("db1.example.com")).toBe("ok TLSv1.3");
      expect(await attempt("pg2")).toBe("ERR_TLS_CERT_ALTNAME_INVALID");
    } finally {
      server.close();
    }
  });

  it("issue 10: a renewal keeps the old pair until the new certificate is installed with its new key", async () => {
    const ca = await setup;
    const first = await issue();
    const csrRun = sh(makeKeyAndCsrScript(files, "pg1"));
    expect(csrRun.status, csrRun.stderr).toBe(0);
    // Between request and install the server still has a matching pair.
    const between = probe().parsed;
    expect(readFileSync(files.keyFile, "utf8")).toBe(first.pendingKey);
    expect(checkCertificate(between.certPem, { ca, expectedNames: names, keyPublicPem: between.keyPublicPem }).ok).toBe(true);
    const cert = await signCsr(ca, csrRun.stdout, names);
    expect(sh(installCertificateScript(files, cert)).status).toBe(0);
    expect(readFileSync(files.keyFile, "utf8")).not.toBe(first.pendingKey);
    const after = probe().parsed;
    expect(after.certPem).toBe(cert);
    expect(checkCertificate(after.certPem, { ca, expectedNames: names, keyPublicPem: after.keyPublicPem }).ok).toBe(true);
  });

  it("issue 10: what a killed renewal left beside the key (a new key, maybe) is reported by the probe and removed by the next renewal", async () => {
    await issue();
    // As mktemp names them; SIGKILL lets no trap remove them.
    writeFileSync(`${files.keyFile}.Ab12Cd`, "-----BEGIN PRIVATE KEY-----\nleft by a killed run\n");
    writeFileSync(`${files.certFile}.Zz99yY`, "half a certificate");
    expect(probe().parsed.leftovers).toEqual([`${files.certFile}.Zz99yY`, `${files.keyFile}.Ab12Cd`]);
    await issue();
    expect(probe().parsed.leftovers).toBeUndefined();
    expect(spawnSync("ls", ["-A", dir], { encoding: "utf8" }).stdout.trim().split("\n").sort()).toEqual(["server.crt", "server.key"]);
  });

  it("issue 10: the install refuses a certificate that is not for the host's key, and changes nothing", async () => {
    const ca = await setup;
    await issue();
    const before = [readFileSync(files.certFile, "utf8"), readFileSync(files.keyFile, "utf8")];
    const stranger = await signCsr(ca, openssl(["req", "-new", "-key", opensslCert([]).keyFile, "-subj", "/CN=x"]), names);
    const run = sh(installCertificateScript(files, stranger));
    expect(run.status).toBe(1);
    expect(run.stderr.trim()).toBe(`pgprov: the new certificate for ${files.certFile} is not for the key ${files.keyFile}; nothing was changed`);
    expect([readFileSync(files.certFile, "utf8"), readFileSync(files.keyFile, "utf8")]).toEqual(before);
    expect(spawnSync("ls", ["-A", dir], { encoding: "utf8" }).stdout.trim().split("\n").sort()).toEqual(["server.crt", "server.key"]);
  });

  it("issue 10 drift: a deleted key, and a certificate replaced by a self-signed one, are found by the probe and the check", async () => {
    const ca = await setup;
    await issue();
    const self = opensslCert(["subjectAltName=DNS:pg1,DNS:db1.example.com,IP:127.0.0.1,IP:fd00::11", "extendedKeyUsage=serverAuth"], 365);
    writeFileSync(files.certFile, self.cert);
    const replaced = probe().parsed;
    const v1 = checkCertificate(replaced.certPem, { ca, expectedNames: names, keyPublicPem: replaced.keyPublicPem });
    // The probe runs no openssl, so it prints no public key: the CA's check finds the stranger.
    expect(!v1.ok && v1.reasons.map((r) => r.kind)).toEqual(["wrong-ca"]);
    rmSync(files.keyFile);
    const deleted = probe().parsed;
    expect(deleted.key).toBe("missing");
    const v2 = checkCertificate(deleted.certPem, { ca, expectedNames: names, keyPublicPem: deleted.keyPublicPem ?? null });
    expect(!v2.ok && v2.reasons.map((r) => r.kind)).toEqual(["wrong-ca", "key-missing"]);
    rmSync(files.certFile);
    expect(probe().parsed).toEqual({ cert: "missing", key: "missing" });
  });

  it("issue 10: the probe prints no private key, even from a certificate file that holds one or is cut short", async () => {
    const { cert, pendingKey } = await issue();
    writeFileSync(files.certFile, cert + pendingKey);
    const combined = probe();
    expectNoKeyIn(combined.run.stdout, pendingKey);
    expect(combined.parsed.certPem).toBe(cert);
    // An unterminated certificate block followed by a key: the block is dropped, the key not printed.
    writeFileSync(files.certFile, `${cert.split("\n").slice(0, 3).join("\n")}\n${pendingKey}`);
    const cut = probe();
    expectNoKeyIn(cut.run.stdout, pendingKey);
    expect(cut.run.stdout).not.toContain("BEGIN CERTIFICATE");
  });
});

describe("issue 10: pgprov stays fast: the X.509 library is loaded only to make or sign", () => {
  it("issue 10: loading a CA and checking a certificate load no X.509 library; signing does", async () => {
    const ca = await setup;
    const caDir = join(work, "lazy");
    mkdirSync(caDir, { recursive: true });
    writeFileSync(join(caDir, "ca.crt"), ca.certPem);
    writeFileSync(join(caDir, "ca.key"), ca.privateKey().export({ format: "pem", type: "pkcs8" }) as string, { mode: 0o600 });
    const script = `
      const tls = await import(${JSON.stringify(join(process.cwd(), "src/tls/index.ts"))});
      const ca = tls.loadCa({ cert: ${JSON.stringify(join(caDir, "ca.crt"))}, key: ${JSON.stringify(join(caDir, "ca.key"))} });
      tls.checkCertificate(ca.certPem, { ca, expectedNames: { dnsNames: ["x"] } });
      const before = typeof Reflect.getMetadata;
      await tls.signCsr(ca, process.env.CSR, { dnsNames: ["pg1"] });
      console.log(before, typeof Reflect.getMetadata);
    `;
    const csr = openssl(["req", "-new", "-key", opensslCert([]).keyFile, "-subj", "/CN=x"]);
    const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { encoding: "utf8", env: { ...process.env, CSR: csr } });
    expect(out.trim()).toBe("undefined function");
  }, 60_000);
});

describe("issue 10: the host scripts run as the files' owner", () => {
  it("issue 10: no root chown or write in the server's directory, which its owner can fill with links", () => {
    // /etc/postgresql/N/main belongs to postgres: as root, a link postgres swapped in for the
    // temporary file between mktemp and chown would have given postgres any file of the host.
    const theirs = { certFile: "/etc/postgresql/15/main/pgprov-server.crt", keyFile: "/etc/postgresql/15/main/pgprov-server.key" };
    const pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    for (const script of [makeKeyAndCsrScript(theirs, "pg1"), installCertificateScript(theirs, pem), installGivenKeyScript(theirs, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")]) {
      expect(script.split("\n")[0]).toBe("setpriv --reuid=postgres --regid=postgres --init-groups -- sh -s <<'PGPROV_AS_OWNER'");
      expect(script).not.toMatch(/\bchown\b/);
      // The key never in an argument: it travels inside the script, on the shell's stdin.
      expect(script.split("\n").at(-1)).toBe("PGPROV_AS_OWNER");
    }
  });
});

