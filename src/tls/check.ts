/**
 * Whether a server's certificate is still the right one: the verdict that makes renewal a kind of
 * drift. It runs on every apply and plan, so it uses Node's own X509Certificate only (no X.509
 * library to load): issuer and signature, validity, SAN, usage, and the key beside it.
 */
import { createPublicKey, X509Certificate } from "node:crypto";
import { DAY_MS, endText } from "../common/days.js";
import type { CertificateAuthority } from "./ca.js";
import { describeNameKey, nameKeys, type SanNames } from "./names.js";

export type RenewReasonKind =
  /** No certificate, or not one Node can read. */
  | "missing"
  | "unreadable"
  | "not-yet-valid"
  | "expired"
  | "expires-soon"
  /** An expected name or address is not in the SAN. */
  | "san-missing"
  /** The SAN names something not expected (only when `exactSan`). */
  | "san-extra"
  | "wrong-ca"
  /** Its extended key usage excludes TLS servers (or clients, when asked for: see clientAuth). */
  | "not-server"
  | "not-client"
  /** The key file is missing, or is not the certificate's key (when the key's public half is given). */
  | "key-missing"
  | "key-mismatch";

export interface RenewReason {
  kind: RenewReasonKind;
  /** A sentence naming the certificate as the caller named it. */
  message: string;
}

export type CertificateVerdict =
  | { ok: true; notAfter: Date; message: string }
  | {
      ok: false;
      reasons: RenewReason[];
      /**
       * Set when the certificate ends with the CA itself and would be renewed only for that:
       * issuing it again cannot help (a new certificate cannot outlive its CA), the CA must be
       * renewed. The caller warns instead of issuing again on every run.
       */
      caExpiresSoon?: Date;
    };

export interface CheckOptions {
  ca: CertificateAuthority;
  expectedNames: SanNames;
  renewWithinDays?: number;
  now?: Date;
  /** How messages name the certificate: "the certificate of pg1 (/etc/postgresql/16/main/server.crt)". */
  label?: string;
  /** Extra SAN entries are a reason to renew (a certificate pgprov issued names exactly its host). */
  exactSan?: boolean;
  /**
   * The public half of the key the server would use with it (PEM), `null` when the key file is
   * missing, undefined when not checked.
   */
  keyPublicPem?: string | null;
  /** It must also be a TLS client's (pgBackRest's mutual TLS). */
  clientAuth?: boolean;
}

const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";

export function checkCertificate(certPem: string | undefined, options: CheckOptions): CertificateVerdict {
  const { ca, renewWithinDays = 30, now = new Date(), label = "the certificate", exactSan = true } = options;
  const fail = (kind: RenewReasonKind, message: string): CertificateVerdict => ({ ok: false, reasons: [{ kind, message }] });
  if (!certPem?.trim()) return fail("missing", `${label} is missing`);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    return fail("unreadable", `${label} is not a PEM certificate`);
  }

  const reasons: RenewReason[] = [];
  const add = (kind: RenewReasonKind, message: string) => reasons.push({ kind, message });
  const day = (d: Date) => d.toISOString().slice(0, 10);

  if (!cert.checkIssued(ca.cert) || !cert.verify(ca.cert.publicKey)) {
    add("wrong-ca", `${label} was not signed by the cluster's CA (${ca.label}); it was issued by ${oneLine(cert.issuer)}`);
  }
  const notBefore = new Date(cert.validFrom);
  const notAfter = new Date(cert.validTo);
  if (notBefore > now) add("not-yet-valid", `${label} is not valid before ${notBefore.toISOString()}`);
  if (notAfter <= now) add("expired", `${label} ${endText(notAfter, now)}`);
  else if (notAfter.getTime() - now.getTime() < renewWithinDays * DAY_MS) add("expires-soon", `${label} ${endText(notAfter, now)} (renewed within ${renewWithinDays})`);

  const expected = new Set(nameKeys(options.expectedNames));
  const present = new Set(sanKeys(cert.subjectAltName));
  const missing = [...expected].filter((k) => !present.has(k));
  const extra = [...present].filter((k) => !expected.has(k));
  if (missing.length) add("san-missing", `${label} does not name ${missing.map(describeNameKey).join(", ")} in its subjectAltName`);
  if (exactSan && extra.length) add("san-extra", `${label} also names ${extra.map(describeNameKey).join(", ")}, which the inventory does not give this host`);

  // No extended key usage means any usage (RFC 5280); one without serverAuth excludes servers.
  if (cert.keyUsage && !cert.keyUsage.includes(SERVER_AUTH)) add("not-server", `${label} is not for TLS servers (its extendedKeyUsage lacks serverAuth)`);
  if (options.clientAuth && cert.keyUsage && !cert.keyUsage.includes(CLIENT_AUTH)) add("not-client", `${label} is not for TLS clients (its extendedKeyUsage lacks clientAuth)`);

  if (options.keyPublicPem === null) add("key-missing", `the key of ${label} is missing`);
  else if (options.keyPublicPem !== undefined && !sameKey(options.keyPublicPem, cert)) {
    add("key-mismatch", `the key beside ${label} is not the certificate's key`);
  }

  if (reasons.length === 0) return { ok: true, notAfter, message: `${label} is valid until ${day(notAfter)}` };
  const onlyExpiry = reasons.every((r) => r.kind === "expires-soon");
  const caEnd = ca.notAfter;
  // Issued on the CA's last day (clamped when signed): only the CA's renewal helps.
  if (onlyExpiry && Math.abs(notAfter.getTime() - caEnd.getTime()) < 1000) {
    return { ok: false, reasons, caExpiresSoon: caEnd };
  }
  return { ok: false, reasons };
}

function sameKey(publicPem: string, cert: X509Certificate): boolean {
  try {
    return createPublicKey(publicPem).equals(cert.publicKey);
  } catch {
    return false;
  }
}

function oneLine(dn: string): string {
  return dn.replace(/\n/g, ", ");
}

/**
 * Node's subjectAltName text as name keys. Node writes `DNS:a, IP Address:10.0.0.1`, and quotes a
 * value (as a JSON string) when it holds a comma, a quote or a control character; kinds other
 * than DNS and IP are kept under their own label, so they count as extra.
 */
export function sanKeys(text: string | undefined): string[] {
  if (!text) return [];
  const keys: string[] = [];
  let rest = text;
  while (rest.length) {
    const colon = rest.indexOf(":");
    if (colon < 0) break;
    const kind = rest.slice(0, colon);
    rest = rest.slice(colon + 1);
    let value: string;
    if (rest.startsWith('"')) {
      const end = closingQuote(rest);
      value = JSON.parse(rest.slice(0, end + 1)) as string;
      rest = rest.slice(end + 1);
    } else {
      const comma = rest.indexOf(", ");
      value = comma < 0 ? rest : rest.slice(0, comma);
      rest = comma < 0 ? "" : rest.slice(comma);
    }
    rest = rest.replace(/^, /, "");
    if (kind === "DNS") keys.push(nameKeys({ dnsNames: [value] })[0]!);
    else if (kind === "IP Address") keys.push(nameKeys({ ipAddresses: [value] })[0]!);
    else keys.push(`${kind}:${value}`);
  }
  return keys;
}

function closingQuote(s: string): number {
  for (let i = 1; i < s.length; i++) {
    if (s[i] === "\\") i++;
    else if (s[i] === '"') return i;
  }
  return s.length - 1;
}
