/**
 * Host key verification against an OpenSSH known_hosts file. ssh2 accepts any key unless told
 * otherwise and reads no known_hosts itself, so this is what stands between pgprov and a
 * man-in-the-middle. Supports plain and hashed (`|1|salt|hash`) host fields, `[host]:port`,
 * wildcards, negation, and the @revoked marker. The user's files and the system's
 * (/etc/ssh/ssh_known_hosts) are read together, as OpenSSH reads them; a new key goes to the
 * user's first file.
 */
import { createHash, createHmac, randomBytes } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { matchPatternList } from "../sshconfig/patterns.js";

export interface KnownHostEntry {
  line: number;
  marker?: "@revoked" | "@cert-authority";
  hosts: string;
  keyType: string;
  key: Buffer;
}

export type HostKeyVerdict =
  | { kind: "known" }
  | { kind: "unknown" }
  | { kind: "changed"; lines: number[] }
  | { kind: "revoked"; line: number };

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  text.split("\n").forEach((raw, i) => {
    const fields = raw.trim().split(/\s+/);
    if (!fields[0] || fields[0].startsWith("#")) return;
    const marker = fields[0].startsWith("@") ? (fields.shift() as KnownHostEntry["marker"]) : undefined;
    const [hosts, keyType, key] = fields;
    if (!hosts || !keyType || !key) return; // malformed lines are skipped, as OpenSSH does
    entries.push({ line: i + 1, marker, hosts, keyType, key: Buffer.from(key, "base64") });
  });
  return entries;
}

/** The name OpenSSH looks up: `addr` on port 22, `[addr]:port` otherwise. */
export function knownHostsName(address: string, port: number): string {
  return port === 22 ? address : `[${address}]:${port}`;
}

export function entryMatches(entry: KnownHostEntry, name: string): boolean {
  const host = name.toLowerCase();
  if (entry.hosts.startsWith("|1|")) {
    const [, , salt, hash] = entry.hosts.split("|");
    if (!salt || !hash) return false;
    return createHmac("sha1", Buffer.from(salt, "base64")).update(host).digest("base64") === hash;
  }
  // The same comma-separated list with `!` negation as ssh_config's Host lines: OpenSSH matches both with match_hostname.
  return matchPatternList(host, entry.hosts, true) === 1;
}

/** Decides whether `key` (the raw SSH key blob the server presented) is the one known for `name`. */
export function verifyHostKey(entries: KnownHostEntry[], name: string, key: Buffer): HostKeyVerdict {
  const matching = entries.filter((e) => e.marker !== "@cert-authority" && entryMatches(e, name));
  const revoked = entries.find((e) => e.marker === "@revoked" && e.key.equals(key));
  if (revoked) return { kind: "revoked", line: revoked.line };
  const plain = matching.filter((e) => !e.marker);
  if (plain.some((e) => e.key.equals(key))) return { kind: "known" };
  if (plain.length > 0) return { kind: "changed", lines: plain.map((e) => e.line) };
  return { kind: "unknown" };
}

/** The key types known for `name`: the SSH handshake should prefer these, as OpenSSH does. */
export function knownKeyTypes(entries: KnownHostEntry[], name: string): string[] {
  return [...new Set(entries.filter((e) => !e.marker && entryMatches(e, name)).map((e) => e.keyType))];
}

/** The key type named inside an SSH public key blob (its first length-prefixed string). */
export function keyTypeOf(key: Buffer): string {
  if (key.length < 4) return "unknown";
  const len = key.readUInt32BE(0);
  return key.subarray(4, 4 + len).toString("ascii");
}

/** `SHA256:...` as `ssh-keygen -l` prints it. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash("sha256").update(key).digest("base64").replace(/=+$/, "")}`;
}

export class KnownHostsFile {
  private entries: KnownHostEntry[];

  constructor(readonly path: string) {
    this.entries = existsSync(path) ? parseKnownHosts(readFileSync(path, "utf8")) : [];
  }

  verify(name: string, key: Buffer): HostKeyVerdict {
    return verifyHostKey(this.entries, name, key);
  }

  knownKeyTypes(name: string): string[] {
    return knownKeyTypes(this.entries, name);
  }

  /** Lines of `@cert-authority` entries that apply to `name`. */
  authoritiesFor(name: string): number[] {
    return this.entries.filter((e) => e.marker === "@cert-authority" && entryMatches(e, name)).map((e) => e.line);
  }

  /**
   * Records a newly accepted key, hashed like OpenSSH's HashKnownHosts (Debian's default), so the
   * file does not list the fleet's addresses in clear. Synchronous: parallel hosts append in turn.
   */
  add(name: string, key: Buffer): void {
    const salt = randomBytes(20);
    const hash = createHmac("sha1", salt).update(name.toLowerCase()).digest("base64");
    const hosts = `|1|${salt.toString("base64")}|${hash}`;
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    const current = existsSync(this.path) ? readFileSync(this.path, "utf8") : "";
    const prefix = current && !current.endsWith("\n") ? "\n" : "";
    appendFileSync(this.path, `${prefix}${hosts} ${keyTypeOf(key)} ${key.toString("base64")}\n`, { mode: 0o600 });
    this.entries.push({ line: this.entries.length + 1, hosts, keyType: keyTypeOf(key), key });
  }
}

/** Where a known_hosts line is, for messages: `FILE:LINE`. */
export interface KnownHostsLine {
  file: string;
  line: number;
}

export type HostKeyCheck =
  | { kind: "known" }
  | { kind: "unknown"; /** @cert-authority lines for this host: ssh2 cannot check certificates (see message). */ authorities: KnownHostsLine[] }
  | { kind: "changed"; lines: KnownHostsLine[] }
  | { kind: "revoked"; at: KnownHostsLine };

/**
 * The user's known_hosts files and the system's, checked together as OpenSSH checks them: a key
 * revoked in any is refused, a key listed in any is known, and a host listed with other keys
 * only is a changed host.
 */
export class KnownHosts {
  private readonly files: KnownHostsFile[];

  /** `userFiles[0]` is where accepted keys are recorded. */
  constructor(readonly userFiles: string[], readonly globalFiles: string[]) {
    this.files = [...userFiles, ...globalFiles].map((f) => new KnownHostsFile(f));
  }

  /** The files, for messages: the user's, and the system's that exist. */
  describe(): string {
    return [...this.userFiles, ...this.globalFiles.filter((f) => existsSync(f))].join(", ");
  }

  check(name: string, key: Buffer): HostKeyCheck {
    const verdicts = this.files.map((f) => ({ file: f.path, verdict: f.verify(name, key) }));
    const revoked = verdicts.find((v) => v.verdict.kind === "revoked");
    if (revoked?.verdict.kind === "revoked") return { kind: "revoked", at: { file: revoked.file, line: revoked.verdict.line } };
    if (verdicts.some((v) => v.verdict.kind === "known")) return { kind: "known" };
    const changed = verdicts.flatMap((v) => (v.verdict.kind === "changed" ? v.verdict.lines.map((line) => ({ file: v.file, line })) : []));
    if (changed.length > 0) return { kind: "changed", lines: changed };
    return { kind: "unknown", authorities: this.files.flatMap((f) => f.authoritiesFor(name).map((line) => ({ file: f.path, line }))) };
  }

  knownKeyTypes(name: string): string[] {
    return [...new Set(this.files.flatMap((f) => f.knownKeyTypes(name)))];
  }

  add(name: string, key: Buffer): void {
    const first = this.files[0];
    if (!first) throw new Error("no known_hosts file to record a key in");
    first.add(name, key);
  }
}
