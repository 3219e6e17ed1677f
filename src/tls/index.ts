/**
 * TLS for the cluster (issue 10): its own certificate authority, a certificate per server made
 * from a request its host signs with a key that never leaves it, and the check that makes
 * renewal a kind of drift.
 *
 * Which X.509 code, and why (measured 2026-11, Node 20.20, on the 2-core development machine):
 *
 * - Checking, on every run (check.ts, and loading a CA in ca.ts): Node's own `crypto.X509Certificate`
 *   (issuer and signature, validity, CA flag, SAN, extended key usage, key match). It is part of
 *   Node, costs nothing to load, and is OpenSSL underneath, so a no-op run pays nothing for TLS.
 *
 * - Making and signing (a new CA, a server's signing request): @peculiar/x509 (MIT; 2.2.0 of
 *   2026-10, maintained by Peculiar Ventures, who also keep PKI.js and the asn1-schema packages it
 *   stands on; about 10 million downloads a month). It builds certificates and parses and
 *   verifies PKCS#10 requests, with typed extensions (basicConstraints, keyUsage, EKU, SAN with DNS
 *   and IP entries, key identifiers), and it does no cryptography itself: every key, signature and
 *   verification is Node's WebCrypto, so ECDSA P-256 and Ed25519 are OpenSSL's. Its costs: it
 *   needs the `reflect-metadata` polyfill (its dependency injection, tsyringe, asks for it), and
 *   it is heavy to load, about 300 ms of CPU on this machine under load against about 170 ms for
 *   yaml and zod together; so library.ts loads it only when something is made or signed, which
 *   happens once per CA and once a year per server. Installed: 3.4 MB (@peculiar/*) + 1 MB.
 *
 * - Not node-forge: it cannot read or make an ECDSA certificate or request at all ("Cannot read
 *   public key. OID is not RSA", digitalbazaar/forge#532, open since 2017; the ECDSA pull request
 *   #925 has waited since 2021), it does its cryptography in JavaScript of its own, and it has had
 *   several signature-verification CVEs. RSA-only would mean 3072-bit keys and slower handshakes.
 *
 * - Not `openssl` on the machine that runs pgprov: it may not be there, or be LibreSSL (macOS)
 *   with other options and other output; the CA key would have to pass through a temporary file or
 *   a pipe to a child process; and each result would be parsed from text. On the hosts openssl is
 *   the right tool (Debian's postgresql-common depends on ssl-cert, which depends on openssl): the
 *   scripts of host.ts make the key and the request there, where the key stays.
 */
export { CertificateAuthority, createCa, ensureCa, loadCa, replaceCaCertificate, saveCa, type CaFiles, type CaFilesMaybeKey, type CreateCaOptions } from "./ca.js";
export { checkGivenCertificate, type GivenCertificate } from "./given.js";
export { checkCertificate, type CertificateVerdict, type CheckOptions, type RenewReason, type RenewReasonKind } from "./check.js";
export {
  certificateProbeScript,
  installCertificateScript,
  installGivenKeyScript,
  makeKeyAndCsrScript,
  parseCertificateProbe,
  pendingKeyFile,
  type CertificateProbe,
  type HostKeyFiles,
} from "./host.js";
export { isDnsName, sanNames, serverNames, type SanNames } from "./names.js";
export { renewCa, signCsr, type RenewCaOptions, type SignOptions } from "./sign.js";
