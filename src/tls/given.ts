/**
 * Certificates issued elsewhere (the inventory's `tls.certificates`): pgprov issues nothing for
 * such a host, it checks the pair before anything connects and installs it as given. Every error
 * names the file and the host.
 */
import { readFileSync } from "node:fs";
import { X509Certificate } from "node:crypto";
import { PgprovError } from "../common/errors.js";
import { type CertificateAuthority, readPrivateKey } from "./ca.js";
import { checkCertificate } from "./check.js";
import { pemText } from "./library.js";
import type { SanNames } from "./names.js";

export interface GivenCertificate {
  /** The server's certificate (the file's first), as PEM. */
  certPem: string;
  /** Its key as PKCS#8 PEM: a secret, for the caller to mask wherever output could show it. */
  keyPem: string;
}

export function checkGivenCertificate(
  files: { cert: string; key: string },
  options: { host: string; ca: CertificateAuthority; expectedNames: SanNames; now?: Date },
): GivenCertificate {
  const of = `the certificate of ${options.host} (${files.cert})`;
  let text: string;
  try {
    text = readFileSync(files.cert, "utf8");
  } catch (e) {
    throw new PgprovError(`cannot read ${of} (${(e as NodeJS.ErrnoException).code})`);
  }
  if (/PRIVATE KEY-----/.test(text)) throw new PgprovError(`${of} holds a private key; give the key as a file of its own (key:)`);
  const first = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/)?.[0];
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(first ?? "");
  } catch {
    throw new PgprovError(`${of} is not a PEM certificate (-----BEGIN CERTIFICATE-----)`);
  }
  const key = readPrivateKey(files.key, `key of ${options.host}`);
  if (!cert.checkPrivateKey(key)) throw new PgprovError(`the key of ${options.host} (${files.key}) does not match its certificate ${files.cert}`);
  const certPem = pemText(first!);
  const verdict = checkCertificate(certPem, {
    ca: options.ca,
    expectedNames: options.expectedNames,
    label: of,
    // A certificate issued elsewhere may name more than pgprov knows (a load balancer's name).
    exactSan: false,
    ...(options.now ? { now: options.now } : {}),
  });
  // One that expires within the renewal window still works: the run warns (see the module), it is not refused.
  const fatal = verdict.ok ? [] : verdict.reasons.filter((r) => r.kind !== "expires-soon");
  if (fatal.length) throw new PgprovError(fatal.map((r) => r.message).join("; "));
  return { certPem, keyPem: key.export({ format: "pem", type: "pkcs8" }) as string };
}
