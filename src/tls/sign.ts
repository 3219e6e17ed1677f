/**
 * A server's certificate, from the signing request its host made: the key stays on the host,
 * pgprov sees only the request. Nothing the request asks for is taken on trust but its public
 * key (after checking the request's own signature): the subject, the SAN, the usages and the
 * validity are pgprov's.
 */
import { createPublicKey, webcrypto } from "node:crypto";
import { DAY_MS } from "../common/days.js";
import { PgprovError } from "../common/errors.js";
import { BACKDATE_MS, CertificateAuthority, randomSerial } from "./ca.js";
import { pemText, x509 } from "./library.js";
import { type SanNames, validSanNames } from "./names.js";

export interface SignOptions extends SanNames {
  days?: number;
  now?: Date;
  /** Whose request it is, for messages: the host's name as the inventory gives it. */
  host?: string;
  /** Also a TLS client's certificate (pgBackRest's mutual TLS authenticates both ends). */
  clientAuth?: boolean;
}


/** Signs a PEM signing request; returns the certificate as PEM. */
export async function signCsr(ca: CertificateAuthority, csrPem: string, options: SignOptions): Promise<string> {
  const { days = 365, now = new Date() } = options;
  const what = options.host ? `the certificate of ${options.host}` : "the server certificate";
  const names = validSanNames(options, what);
  if (!Number.isInteger(days) || days < 1) throw new PgprovError(`${what}: the validity must be a whole number of days, not ${days}`);
  const lib = await x509();

  // loadCa and createCa made sure it is a CA that may sign (keyCertSign, if it has a keyUsage).
  const caCert = new lib.X509Certificate(ca.certPem);

  const from = options.host ? `the signing request from ${options.host}` : "the signing request";
  let csr: InstanceType<typeof lib.Pkcs10CertificateRequest>;
  try {
    csr = new lib.Pkcs10CertificateRequest(csrPem.trim());
  } catch {
    throw new PgprovError(`${from} is not a PEM certificate signing request (-----BEGIN CERTIFICATE REQUEST-----)`);
  }
  // The key first: WebCrypto cannot verify a signature made with a key it does not know.
  acceptableServerKey(Buffer.from(csr.publicKey.rawData), from);
  let signatureOk = false;
  try {
    signatureOk = await csr.verify();
  } catch {
    signatureOk = false;
  }
  if (!signatureOk) throw new PgprovError(`${from} does not verify: its signature was not made by the key it holds`);

  const notBefore = new Date(now.getTime() - BACKDATE_MS);
  // Never past the CA's own end: a certificate cannot be trusted longer than its issuer.
  const notAfter = new Date(Math.min(now.getTime() + days * DAY_MS, ca.notAfter.getTime()));
  const digitalSignature = lib.KeyUsageFlags.digitalSignature;
  const keyEncipherment = csr.publicKey.algorithm.name.startsWith("RSA") ? lib.KeyUsageFlags.keyEncipherment : 0;
  const cert = await lib.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ CN: [names.dnsNames[0] ?? names.ipAddresses[0]!] }],
    // The CA's subject exactly as encoded in its certificate, so chain building matches bytes.
    issuer: caCert.subjectName,
    notBefore,
    notAfter,
    publicKey: csr.publicKey,
    signingKey: await signingKey(ca),
    signingAlgorithm: signingAlgorithm(ca),
    extensions: [
      new lib.BasicConstraintsExtension(false, undefined, true),
      new lib.KeyUsagesExtension(digitalSignature | keyEncipherment, true),
      new lib.ExtendedKeyUsageExtension([lib.ExtendedKeyUsage.serverAuth, ...(options.clientAuth ? [lib.ExtendedKeyUsage.clientAuth] : [])]),
      new lib.SubjectAlternativeNameExtension([
        ...names.dnsNames.map((value) => ({ type: "dns" as const, value })),
        ...names.ipAddresses.map((value) => ({ type: "ip" as const, value })),
      ]),
      await lib.SubjectKeyIdentifierExtension.create(csr.publicKey),
      await lib.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return pemText(cert.toString("pem"));
}

export interface RenewCaOptions {
  days?: number;
  now?: Date;
}

/**
 * The CA's certificate made again for a new validity: the same key, the same subject (its
 * encoded bytes), the same extensions (so the same subject key identifier), a new serial. Every
 * certificate the old one issued names that subject as its issuer and that key identifier as its
 * authority's, and its signature is the same key's: it verifies against the new certificate as
 * against the old. A client that still has the old one keeps trusting the servers until the old
 * one ends.
 */
export async function renewCa(ca: CertificateAuthority, { days = 3650, now = new Date() }: RenewCaOptions = {}): Promise<CertificateAuthority> {
  if (!Number.isInteger(days) || days < 1) throw new PgprovError(`the CA's validity must be a whole number of days, not ${days}`);
  const lib = await x509();
  const old = new lib.X509Certificate(ca.certPem);
  const cert = await lib.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: old.subjectName,
    issuer: old.subjectName,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + days * DAY_MS),
    publicKey: old.publicKey,
    signingKey: await signingKey(ca),
    signingAlgorithm: signingAlgorithm(ca),
    extensions: old.extensions,
  });
  return new CertificateAuthority(pemText(cert.toString("pem")), ca.privateKey(), ca.files);
}

/** ECDSA on a NIST curve, Ed25519, or RSA of 2048 bits or more: what PostgreSQL's clients accept. */
function acceptableServerKey(spki: Buffer, from: string): void {
  let key;
  try {
    key = createPublicKey({ key: spki, format: "der", type: "spki" });
  } catch {
    throw new PgprovError(`${from} holds a public key pgprov cannot read`);
  }
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (type === "ec" && ["prime256v1", "secp384r1", "secp521r1"].includes(details.namedCurve ?? "")) return;
  if (type === "ed25519") return;
  if (type === "rsa" && (details.modulusLength ?? 0) >= 2048) return;
  const what = type === "ec" ? `an EC key on ${details.namedCurve}` : type === "rsa" ? `a ${details.modulusLength}-bit RSA key` : `a ${type} key`;
  throw new PgprovError(`${from} holds ${what}; pgprov signs ECDSA P-256/P-384/P-521, Ed25519 or RSA keys of at least 2048 bits`);
}

function signingAlgorithm(ca: CertificateAuthority): Algorithm | EcdsaParams {
  const key = ca.privateKey();
  switch (key.asymmetricKeyType) {
    case "ed25519":
      return { name: "Ed25519" };
    case "rsa":
      return { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } as Algorithm;
    default: {
      // The hash that matches the curve's strength (RFC 5480, section 4).
      const hash = { prime256v1: "SHA-256", secp384r1: "SHA-384", secp521r1: "SHA-512" }[key.asymmetricKeyDetails?.namedCurve ?? "prime256v1"] ?? "SHA-256";
      return { name: "ECDSA", hash } as EcdsaParams;
    }
  }
}

/** The CA's key as a WebCrypto key that cannot be exported again; the DER copy is wiped. */
async function signingKey(ca: CertificateAuthority): Promise<CryptoKey> {
  const key = ca.privateKey();
  const der = key.export({ format: "der", type: "pkcs8" });
  try {
    switch (key.asymmetricKeyType) {
      case "ed25519":
        return await webcrypto.subtle.importKey("pkcs8", der, { name: "Ed25519" }, false, ["sign"]);
      case "rsa":
        return await webcrypto.subtle.importKey("pkcs8", der, { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, ["sign"]);
      default: {
        const curve = { prime256v1: "P-256", secp384r1: "P-384", secp521r1: "P-521" }[key.asymmetricKeyDetails?.namedCurve ?? ""];
        if (!curve) throw new PgprovError(`${ca.label}: its key's curve ${key.asymmetricKeyDetails?.namedCurve} cannot sign; use P-256, P-384 or P-521`);
        return await webcrypto.subtle.importKey("pkcs8", der, { name: "ECDSA", namedCurve: curve }, false, ["sign"]);
      }
    }
  } finally {
    der.fill(0);
  }
}
