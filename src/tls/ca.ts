/**
 * The cluster's certificate authority: made once, kept next to the inventory in `.pgprov/`, or an
 * existing one named by the inventory. Its private key lives in a KeyObject behind a private
 * field: no toString, JSON or util.inspect of a CertificateAuthority, nor any error of this file,
 * ever holds key material. Loading and checking use Node's crypto only (no X.509 library), so a
 * run that signs nothing pays nothing for it.
 */
import { createPrivateKey, type KeyObject, randomBytes, webcrypto, X509Certificate } from "node:crypto";
import { closeSync, fsyncSync, linkSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { inspect } from "node:util";
import { DAY_MS } from "../common/days.js";
import { PgprovError } from "../common/errors.js";
import { pemText, x509 } from "./library.js";

export interface CaFiles {
  cert: string;
  key: string;
}

/** A CA as an inventory may name it: without its key, it only checks certificates issued elsewhere. */
export interface CaFilesMaybeKey {
  cert: string;
  key?: string | undefined;
}

/** Certificates start an hour in the past, so a host whose clock is a little behind accepts them. */
export const BACKDATE_MS = 3_600_000;

export class CertificateAuthority {
  readonly #key: KeyObject | undefined;
  readonly cert: X509Certificate;

  constructor(
    readonly certPem: string,
    /** Undefined for a CA given without its key: it checks, it cannot sign. */
    key: KeyObject | undefined,
    /** Where it was read from or saved to, for messages; undefined while only in memory. */
    public files?: CaFilesMaybeKey,
  ) {
    this.cert = new X509Certificate(certPem);
    this.#key = key;
  }

  get subject(): string {
    return this.cert.subject;
  }

  get notAfter(): Date {
    return new Date(this.cert.validTo);
  }

  /** How messages name it: its certificate file, or its subject while it has none. */
  get label(): string {
    return this.files ? this.files.cert : `the new CA ${this.cert.subject.replace(/\n/g, ", ")}`;
  }

  get canSign(): boolean {
    return this.#key !== undefined;
  }

  /** For signing (sign.ts) and saving only. */
  privateKey(): KeyObject {
    if (!this.#key) throw new PgprovError(`${this.label}: pgprov has no key for this CA (tls.ca.key), so it cannot issue certificates`);
    return this.#key;
  }

  toJSON(): object {
    return { subject: this.cert.subject, notAfter: this.notAfter.toISOString(), files: this.files };
  }

  [inspect.custom](): string {
    return `CertificateAuthority(${this.label})`;
  }
}

export interface CreateCaOptions {
  commonName: string;
  days?: number;
  /** P-256 (ECDSA, understood by every TLS client) unless Ed25519 is asked for. */
  algorithm?: "P-256" | "Ed25519";
  now?: Date;
}

/** A new key and its self-signed CA certificate, in memory: `saveCa` writes them. */
export async function createCa({ commonName, days = 3650, algorithm = "P-256", now = new Date() }: CreateCaOptions): Promise<CertificateAuthority> {
  // X.520 bounds a common name at 64 characters; control characters have no place in a name.
  if (!commonName || commonName.length > 64 || /[\p{Cc}]/u.test(commonName)) {
    throw new PgprovError(`the CA's common name must be 1 to 64 printable characters, not ${JSON.stringify(commonName)}`);
  }
  if (!Number.isInteger(days) || days < 1) throw new PgprovError(`the CA's validity must be a whole number of days, not ${days}`);
  const lib = await x509();
  const alg = algorithm === "Ed25519" ? { name: "Ed25519" } : { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"])) as CryptoKeyPair;
  const cert = await lib.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    // As a JSON name, so that no character of commonName is read as DN syntax.
    name: [{ CN: [commonName] }],
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + days * DAY_MS),
    signingAlgorithm: alg,
    keys,
    extensions: [
      // pathLength 0: this CA signs servers' certificates, never another CA's.
      new lib.BasicConstraintsExtension(true, 0, true),
      new lib.KeyUsagesExtension(lib.KeyUsageFlags.keyCertSign | lib.KeyUsageFlags.cRLSign, true),
      await lib.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  try {
    return new CertificateAuthority(pemText(cert.toString("pem")), createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" }));
  } finally {
    pkcs8.fill(0);
  }
}

/** 16 random bytes, the first in 0x40..0x7f: a positive DER integer with no leading zero. */
export function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x3f) | 0x40;
  return bytes.toString("hex");
}

/**
 * Writes a new CA's files: the directory made 0700 (an existing one must be 0700 already), the
 * key 0600, each file complete before it appears (written under a temporary name, synced, then
 * linked into place, which fails rather than replace a file that exists). An existing CA is
 * never overwritten: all of its certificates would stop being trusted.
 */
export function saveCa(ca: CertificateAuthority, files: CaFiles): void {
  for (const path of [files.key, files.cert]) {
    if (exists(path)) throw new PgprovError(`${path} exists already; pgprov never overwrites a CA's files`);
  }
  for (const dir of new Set([dirname(files.key), dirname(files.cert)])) privateDirectory(dir);
  const keyPem = ca.privateKey().export({ format: "pem", type: "pkcs8" }) as string;
  writeNewFile(files.key, keyPem, 0o600);
  writeNewFile(files.cert, ca.certPem, 0o644);
  ca.files = files;
}

/**
 * Puts a renewed CA certificate (the same key: see renewCa) in place of the old one: written
 * beside it, synced, then renamed over it, so the file is always one whole certificate.
 */
export function replaceCaCertificate(ca: CertificateAuthority, certFile: string): void {
  writeNewFile(certFile, ca.certPem, 0o644, { replace: true });
  ca.files = { ...(ca.files ?? {}), cert: certFile };
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function privateDirectory(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new PgprovError(`${dir} is not a directory (a symbolic link?); pgprov keeps its CA in a directory of its own`);
  if (st.mode & 0o077) throw new PgprovError(`${dir} is open to other users (mode ${(st.mode & 0o777).toString(8)}); chmod 700 it before pgprov keeps a CA key there`);
}

function writeNewFile(path: string, content: string, mode: number, { replace = false }: { replace?: boolean } = {}): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  // wx: O_CREAT|O_EXCL, so a link planted at the temporary name is not followed.
  const fd = openSync(tmp, "wx", mode);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    if (replace) renameSync(tmp, path);
    else linkSync(tmp, path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") throw new PgprovError(`${path} appeared while pgprov was writing it; it was left as it is`);
    throw new PgprovError(`cannot write ${path} (${(e as NodeJS.ErrnoException).code})`);
  } finally {
    if (exists(tmp)) unlinkSync(tmp);
  }
  const dirFd = openSync(dirname(path), "r");
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}

export interface LoadCaOptions {
  now?: Date;
  /** Load it even when it has ended: pgprov's own CA, which apply renews with the same key (renewCa). */
  acceptEnded?: boolean;
}

/**
 * An existing CA, checked before anything connects: its certificate is one CA certificate,
 * valid now; its key is not readable by others, readable by Node, and the certificate's own.
 * Every error names the file.
 */
export function loadCa(files: CaFilesMaybeKey, { now = new Date(), acceptEnded = false }: LoadCaOptions = {}): CertificateAuthority {
  const certPem = readCaFile(files.cert, "CA certificate");
  if (/PRIVATE KEY-----/.test(certPem)) {
    throw new PgprovError(`${files.cert} holds a private key, not a CA certificate (are the CA's cert and key swapped?)`);
  }
  const blocks = certPem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new PgprovError(`${files.cert} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  if (blocks.length > 1) throw new PgprovError(`${files.cert} holds ${blocks.length} certificates; give the one CA certificate that signs the servers' certificates`);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(blocks[0]!);
  } catch {
    throw new PgprovError(`${files.cert} is not a valid X.509 certificate`);
  }
  const subject = cert.subject.replace(/\n/g, ", ");
  // OpenSSL's X509_check_ca: basicConstraints CA:TRUE, and keyCertSign when there is a keyUsage.
  if (!cert.ca) {
    throw new PgprovError(`${files.cert} is not a CA certificate: ${subject} may not sign certificates (it needs basicConstraints CA:TRUE, and keyCertSign in its keyUsage if it has one)`);
  }
  const notBefore = new Date(cert.validFrom);
  const notAfter = new Date(cert.validTo);
  if (notAfter <= now && !acceptEnded) throw new PgprovError(`the CA certificate ${files.cert} (${subject}) expired on ${notAfter.toISOString()}`);
  if (notBefore > now) throw new PgprovError(`the CA certificate ${files.cert} (${subject}) is not valid before ${notBefore.toISOString()}`);
  if (files.key === undefined) return new CertificateAuthority(pemText(blocks[0]!), undefined, files);
  const key = readPrivateKey(files.key, "CA key");
  const type = key.asymmetricKeyType;
  if (type !== "ec" && type !== "ed25519" && type !== "rsa") {
    throw new PgprovError(`the CA key ${files.key} is a ${type} key; pgprov signs with ECDSA, Ed25519 or RSA keys`);
  }
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (type === "ec" && !["prime256v1", "secp384r1", "secp521r1"].includes(curve ?? "")) {
    throw new PgprovError(`the CA key ${files.key} is on the curve ${curve}; pgprov signs with P-256, P-384 or P-521`);
  }
  if (!cert.checkPrivateKey(key)) throw new PgprovError(`the CA key ${files.key} does not match the CA certificate ${files.cert}`);
  return new CertificateAuthority(pemText(blocks[0]!), key, files);
}

/**
 * A private key file as pgprov accepts one: not readable by others, PEM, unencrypted, one Node
 * reads. `what` names it in errors ("CA key", "key of pg1"); no error holds any of its content.
 */
export function readPrivateKey(path: string, what: string): KeyObject {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (e) {
    throw new PgprovError(`cannot read the ${what} ${path} (${(e as NodeJS.ErrnoException).code})`);
  }
  // Like ssh with a private key: a key others can read is refused, not silently used.
  if (mode & 0o077) throw new PgprovError(`the ${what} ${path} is readable by others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`);
  const keyPem = readCaFile(path, what);
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(keyPem)) throw new PgprovError(`the ${what} ${path} holds no PEM private key (-----BEGIN PRIVATE KEY-----)`);
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|^Proc-Type: 4,ENCRYPTED/m.test(keyPem)) {
    throw new PgprovError(`the ${what} ${path} is encrypted with a passphrase; pgprov needs it unencrypted, mode 0600`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch {
    // The error's own message is never shown: it is OpenSSL's, and it need not stay silent about input.
    throw new PgprovError(`the ${what} ${path} is not a private key pgprov can read (PEM: PKCS#8, SEC1 or PKCS#1)`);
  }
  return key;
}

function readCaFile(path: string, what: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    throw new PgprovError(`cannot read the ${what} ${path} (${(e as NodeJS.ErrnoException).code})`);
  }
}

/**
 * The CA kept next to an inventory: loaded when both files exist, made and saved when neither
 * does. One without the other is an error: pgprov does not guess which half to trust.
 */
export async function ensureCa(files: CaFiles, options: CreateCaOptions): Promise<{ ca: CertificateAuthority; created: boolean }> {
  const haveCert = exists(files.cert);
  const haveKey = exists(files.key);
  if (haveCert && haveKey) return { ca: loadCa(files, options), created: false };
  if (haveCert !== haveKey) {
    const [present, missing] = haveCert ? [files.cert, files.key] : [files.key, files.cert];
    throw new PgprovError(
      `${present} exists but ${missing} does not: restore ${missing}, or remove ${present} to make a new CA (every server's certificate is then issued again)`,
    );
  }
  const ca = await createCa(options);
  saveCa(ca, files);
  return { ca, created: true };
}
