/** Shared helpers of the TLS tests: real keys, requests and certificates made by openssl. */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileError } from "../../src/common/errors.js";
import { loadInventory } from "../../src/inventory/inventory.js";

export const work = mkdtempSync(join(tmpdir(), "pgprov-tls-"));
let n = 0;

export function openssl(args: string[], input?: string): string {
  return execFileSync("openssl", args, { encoding: "utf8", input, stdio: ["pipe", "pipe", "pipe"] });
}

/** A key and a signing request for it, made the way a host makes them. */
export function keyAndCsr(opts: { keyArgs?: string[]; addext?: string } = {}): { key: string; csr: string; keyFile: string } {
  const keyFile = join(work, `k${++n}.pem`);
  openssl(["genpkey", ...(opts.keyArgs ?? ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]), "-out", keyFile]);
  const csr = openssl(["req", "-new", "-key", keyFile, "-subj", "/CN=ignored", ...(opts.addext ? ["-addext", opts.addext] : [])]);
  return { key: readFileSync(keyFile, "utf8"), csr, keyFile };
}

/** A certificate made by openssl itself (self-signed), with extensions as given. */
export function opensslCert(exts: string[], days = 30, subject = "/CN=someone"): { cert: string; key: string; certFile: string; keyFile: string } {
  const base = join(work, `c${++n}`);
  openssl([
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${base}.key`, "-out", `${base}.crt`,
    "-subj", subject, "-days", String(days), "-config", "/dev/null", ...exts.flatMap((e) => ["-addext", e]),
  ]);
  return { cert: readFileSync(`${base}.crt`, "utf8"), key: readFileSync(`${base}.key`, "utf8"), certFile: `${base}.crt`, keyFile: `${base}.key` };
}

/** The base64 lines of a PEM private key: what must never show up in any output. */
export function keyLines(pem: string): string[] {
  return pem.split("\n").filter((l) => l.length > 20 && !l.startsWith("-----"));
}

export function textOf(certPem: string): string {
  return openssl(["x509", "-noout", "-text"], certPem);
}

/** An inventory's problems, each as `line:col: message` (the file's name taken off); it must be refused. */
export function inventoryProblems(file: string): string[] {
  try {
    loadInventory(file);
  } catch (e) {
    if (!(e instanceof FileError)) throw e;
    return e.message.split("\n").map((l) => l.replace(`${file}:`, ""));
  }
  throw new Error("expected the inventory to be refused");
}
