/**
 * What a host runs for its certificate, as POSIX shell for a script section of its own: make a
 * new key and a signing request (the key never leaves the host, and is never printed), install
 * the certificate pgprov signed, and print what it has now for the check. Every path and name is
 * quoted; the certificate travels in a heredoc, never in an argument.
 *
 * A new key is made beside the live one (`KEY.pending`) and becomes the live key only together
 * with a certificate for it: a failed or interrupted renewal leaves the server's pair as it was,
 * so a reload or a restart in between still finds a key that matches its certificate.
 */
import { PgprovError } from "../common/errors.js";
import { heredocBase64, shellQuote } from "../common/shell.js";
import { isDnsName } from "./names.js";

export interface HostKeyFiles {
  /** The certificate PostgreSQL reads (ssl_cert_file). */
  certFile: string;
  /** Its key (ssl_key_file): owned by `owner`, mode 0600, as PostgreSQL requires of its own key. */
  keyFile: string;
  owner?: string;
  group?: string;
}

export function pendingKeyFile(keyFile: string): string {
  return `${keyFile}.pending`;
}

function checkedFiles(files: HostKeyFiles): Required<HostKeyFiles> {
  for (const path of [files.certFile, files.keyFile]) {
    if (!path.startsWith("/") || /[\0\n]/.test(path)) throw new PgprovError(`${JSON.stringify(path)}: a certificate or key path must be absolute, on one line`);
  }
  const owner = files.owner ?? "postgres";
  const group = files.group ?? owner;
  for (const account of [owner, group]) {
    if (!/^[a-z_][a-z0-9_-]*\$?$/i.test(account)) throw new PgprovError(`${JSON.stringify(account)} is not a user or group name`);
  }
  return { certFile: files.certFile, keyFile: files.keyFile, owner, group };
}

/**
 * Makes a new ECDSA P-256 key at `KEY.pending` (mode 0600 from its first byte, made by
 * `owner` itself) and prints a signing request for it on stdout, and nothing else. `openssl genpkey`
 * rather than `ecparam -genkey`: one PKCS#8 key, no parameters block beside it.
 */
export function makeKeyAndCsrScript(files: HostKeyFiles, commonName: string): string {
  const f = checkedFiles(files);
  // Only a name pgprov issues for reaches -subj, so no character of it is DN syntax (/, +, =, \).
  if (!isDnsName(commonName)) throw new PgprovError(`${JSON.stringify(commonName)} is not a DNS name to put in a signing request`);
  const pending = shellQuote(pendingKeyFile(f.keyFile));
  return asOwner(f, [
    // No moment at which anyone but the owner can read the new key.
    ...newFileBeside(f.keyFile, "077"),
    `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp"`,
    `chmod 0600 "$tmp"`,
    `mv -f -- "$tmp" ${pending}`,
    `openssl req -new -sha256 -key ${pending} -subj ${shellQuote(`/CN=${commonName}`)}`,
  ]);
}

/**
 * Puts a key issued elsewhere (the inventory's tls.certificates) at `KEY.pending`, as
 * makeKeyAndCsrScript puts a new one there, for installCertificateScript to install with its
 * certificate. The key travels in a heredoc on the shell's stdin, never in an argument.
 */
export function installGivenKeyScript(files: HostKeyFiles, keyPem: string): string {
  const f = checkedFiles(files);
  return asOwner(f, [
    ...newFileBeside(f.keyFile, "077"),
    heredocBase64(keyPem, '"$tmp"'),
    `chmod 0600 "$tmp"`,
    `mv -f -- "$tmp" ${shellQuote(pendingKeyFile(f.keyFile))}`,
  ]);
}

/**
 * Puts a signed certificate in place with its key: the pending key when there is one, else the
 * live key. It refuses a certificate that is not for that key (leaving everything as it was), so
 * the server can never be left with a pair that does not match.
 */
export function installCertificateScript(files: HostKeyFiles, certPem: string): string {
  const f = checkedFiles(files);
  if (!/^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n?$/.test(certPem.replace(/\r/g, ""))) {
    throw new PgprovError(`the certificate for ${f.certFile} is not one PEM certificate`);
  }
  const cert = shellQuote(f.certFile);
  const key = shellQuote(f.keyFile);
  const pending = shellQuote(pendingKeyFile(f.keyFile));
  return asOwner(f, [
    ...newFileBeside(f.certFile, "022"),
    heredocBase64(certPem, '"$tmp"'),
    `if [ -e ${pending} ]; then newkey=${pending}; else newkey=${key}; fi`,
    // Public halves only: the key itself is read by openssl and never printed.
    `if [ "$(openssl pkey -in "$newkey" -pubout)" != "$(openssl x509 -in "$tmp" -noout -pubkey)" ]; then`,
    `  echo "pgprov: the new certificate for ${escapeForDoubleQuotes(f.certFile)} is not for the key $newkey; nothing was changed" >&2`,
    "  exit 1",
    "fi",
    `chmod 0644 "$tmp"`,
    `if [ "$newkey" = ${pending} ]; then mv -f -- ${pending} ${key}; fi`,
    `mv -f -- "$tmp" ${cert}`,
  ]);
}

/**
 * Runs a script as the files' owner, not as root: the server's directory is the owner's
 * (/etc/postgresql/N/main is postgres's), so it can swap a link in for any name there at any
 * moment, and root's writes, chmod or chown on such a name would land on a file of its choosing.
 * As the owner, the files are its own from their first byte, and a link gets it nothing it could
 * not do itself. The script travels on sh's stdin (a key inside it never in an argument).
 */
function asOwner(f: Required<HostKeyFiles>, script: string[]): string {
  const delimiter = "PGPROV_AS_OWNER";
  if (script.includes(delimiter)) throw new PgprovError(`a host script may not hold a line ${delimiter}`);
  return [`setpriv --reuid=${f.owner} --regid=${f.group} --init-groups -- sh -s <<'${delimiter}'`, ...script, delimiter].join("\n");
}

/**
 * The start of a script that writes `path` whole or not at all: `$tmp`, a new file beside it
 * (mode 0600, from mktemp), removed on any exit unless renamed into place. Run as the files' owner
 * (asOwner).
 */
function newFileBeside(path: string, umask: string): string[] {
  return [
    "set -e",
    `umask ${umask}`,
    // What a run killed here (SIGKILL: no trap runs) left beside it, a new key maybe: removed
    // first, so that no key outlives the renewal it was made for (certificateProbeScript reports them).
    `rm -f -- ${leftoverGlob(path)}`,
    `tmp=$(mktemp ${shellQuote(`${path}.XXXXXX`)})`,
    `trap 'rm -f -- "$tmp"' EXIT`,
  ];
}

/** mktemp's names beside `path` (six characters after a dot; `.pending` has seven), as a shell glob. */
function leftoverGlob(path: string): string {
  return `${shellQuote(path)}.??????`;
}

function escapeForDoubleQuotes(s: string): string {
  return s.replace(/[\\"$`]/g, "\\$&");
}

/**
 * Prints the server's certificate (its CERTIFICATE blocks only, complete ones: a file that also
 * holds a key, or a broken one, never has its key printed), and for its key only a state line and
 * its mode and owners. Two small processes (stat, awk) and no openssl: the certificate is checked
 * on the control machine (check.ts), so a converged run pays next to nothing for TLS.
 */
export function certificateProbeScript(files: HostKeyFiles): string {
  const f = checkedFiles(files);
  const cert = shellQuote(f.certFile);
  const key = shellQuote(f.keyFile);
  return [
    `if [ ! -e ${cert} ]; then echo "cert=missing"; elif [ ! -r ${cert} ]; then echo "cert=unreadable"; else echo "cert=present"; fi`,
    // The key's state and ownership only: no openssl per check (it runs on every apply and plan).
    // That the key is the certificate's own, the install checked (installCertificateScript).
    `if [ ! -e ${key} ]; then echo "key=missing"; elif [ ! -f ${key} ]; then echo "key=unreadable"`,
    `else echo "key=present"; echo "key_stat=$(stat -c '%a %U %G' ${key})"; fi`,
    `for f in ${leftoverGlob(f.certFile)} ${leftoverGlob(f.keyFile)}; do [ -e "$f" ] && echo "leftover=$f"; done`,
    `[ -r ${cert} ] && awk '`,
    `  /^-----BEGIN CERTIFICATE-----\\r?$/ { on = 1; buf = "-----BEGIN CERTIFICATE-----\\n"; next }`,
    `  on && /^-----END CERTIFICATE-----\\r?$/ { printf "%s-----END CERTIFICATE-----\\n", buf; on = 0; next }`,
    `  on && /^[A-Za-z0-9+\\/=]+\\r?$/ { sub(/\\r$/, ""); buf = buf $0 "\\n"; next }`,
    `  { on = 0 }`,
    `' ${cert}`,
    "true",
  ].join("\n");
}

export interface CertificateProbe {
  cert: "present" | "missing" | "unreadable";
  /** The first certificate of the file (the server's own; a chain may follow it). */
  certPem?: string;
  key: "present" | "missing" | "unreadable";
  /** The public half of the key, for checkCertificate's keyPublicPem, when a probe prints it. */
  keyPublicPem?: string;
  keyMode?: string;
  keyOwner?: string;
  keyGroup?: string;
  /** Temporary files a killed run left beside the certificate or the key (a key, maybe). */
  leftovers?: string[];
}

/** Reads the probe's output. Only CERTIFICATE and PUBLIC KEY blocks are ever taken from it. */
export function parseCertificateProbe(stdout: string): CertificateProbe {
  const line = (name: string) => stdout.match(new RegExp(`^${name}=(.*)$`, "m"))?.[1];
  const state = (v: string | undefined) => (v === "present" || v === "missing" || v === "unreadable" ? v : "unreadable");
  const probe: CertificateProbe = { cert: state(line("cert")), key: state(line("key")) };
  const certPem = stdout.match(/-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+?-----END CERTIFICATE-----\n/)?.[0];
  if (certPem) probe.certPem = certPem;
  const pub = stdout.match(/-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+?-----END PUBLIC KEY-----\n/)?.[0];
  if (pub) probe.keyPublicPem = pub;
  const leftovers = [...stdout.matchAll(/^leftover=(.*)$/gm)].map((m) => m[1]!);
  if (leftovers.length) probe.leftovers = leftovers;
  const [mode, owner, group] = (line("key_stat") ?? "").split(" ");
  if (mode) Object.assign(probe, { keyMode: mode, keyOwner: owner, keyGroup: group });
  return probe;
}
