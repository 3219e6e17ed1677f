import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  entryMatches,
  fingerprint,
  KnownHostsFile,
  knownHostsName,
  keyTypeOf,
  parseKnownHosts,
  verifyHostKey,
} from "../../src/transport/known-hosts.js";
import { preferKnownTypes } from "../../src/transport/ssh.js";

const dir = mkdtempSync(join(tmpdir(), "pgprov-known-hosts-"));

/** A real key pair from ssh-keygen, so blobs and fingerprints are the ones OpenSSH computes. */
function newKey(type: "ed25519" | "ecdsa" | "rsa", name: string): { line: string; blob: Buffer; fp: string } {
  const file = join(dir, name);
  execFileSync("ssh-keygen", ["-q", "-t", type, "-N", "", "-f", file, ...(type === "rsa" ? ["-b", "2048"] : [])]);
  const [kind, b64] = readFileSync(`${file}.pub`, "utf8").trim().split(" ");
  const fp = execFileSync("ssh-keygen", ["-l", "-E", "sha256", "-f", `${file}.pub`], { encoding: "utf8" }).split(" ")[1]!;
  return { line: `${kind} ${b64}`, blob: Buffer.from(b64!, "base64"), fp };
}

const a = newKey("ed25519", "a");
const b = newKey("ed25519", "b");
const rsa = newKey("rsa", "r");

describe("known_hosts", () => {
  it("computes the fingerprint and key type that ssh-keygen prints", () => {
    expect(fingerprint(a.blob)).toBe(a.fp);
    expect(keyTypeOf(a.blob)).toBe("ssh-ed25519");
    expect(keyTypeOf(rsa.blob)).toBe("ssh-rsa");
  });

  it("knows a host, refuses a changed key, and reports an unknown one", () => {
    const entries = parseKnownHosts(`# comment\n10.0.0.11 ${a.line}\n`);
    expect(verifyHostKey(entries, "10.0.0.11", a.blob)).toEqual({ kind: "known" });
    expect(verifyHostKey(entries, "10.0.0.11", b.blob)).toEqual({ kind: "changed", lines: [2] });
    expect(verifyHostKey(entries, "10.0.0.12", a.blob)).toEqual({ kind: "unknown" });
  });

  it("matches hashed entries exactly as ssh-keygen -F does", () => {
    const file = join(dir, "hashed");
    writeFileSync(file, `10.0.0.11 ${a.line}\n[10.0.0.12]:2222 ${b.line}\n`);
    execFileSync("ssh-keygen", ["-q", "-H", "-f", file]);
    const text = readFileSync(file, "utf8");
    expect(text).not.toContain("10.0.0.11");
    const entries = parseKnownHosts(text);
    for (const name of ["10.0.0.11", "[10.0.0.12]:2222", "10.0.0.12", "10.0.0.13"]) {
      // ssh-keygen -F exits 0 when it finds the host, 1 when it does not.
      const openssh = spawnSync("ssh-keygen", ["-F", name, "-f", file]).status === 0;
      expect(entries.some((e) => entryMatches(e, name)), name).toBe(openssh);
    }
    expect(verifyHostKey(entries, knownHostsName("10.0.0.12", 2222), b.blob)).toEqual({ kind: "known" });
  });

  it("understands patterns, negation and @revoked", () => {
    const entries = parseKnownHosts(`10.0.0.*,!10.0.0.13 ${a.line}\n@revoked * ${b.line}\n`);
    expect(verifyHostKey(entries, "10.0.0.12", a.blob).kind).toBe("known");
    expect(verifyHostKey(entries, "10.0.0.13", a.blob).kind).toBe("unknown");
    expect(verifyHostKey(entries, "10.0.0.12", b.blob)).toEqual({ kind: "revoked", line: 2 });
  });

  it("records a new key hashed, and recognises it afterwards", () => {
    const path = join(dir, "sub", "known_hosts");
    const file = new KnownHostsFile(path);
    file.add("10.0.0.21", a.blob);
    file.add("10.0.0.22", b.blob);
    const text = readFileSync(path, "utf8");
    expect(text).not.toContain("10.0.0.2");
    expect(new KnownHostsFile(path).verify("10.0.0.21", a.blob)).toEqual({ kind: "known" });
    expect(new KnownHostsFile(path).verify("10.0.0.22", a.blob).kind).toBe("changed");
    expect(execFileSync("ssh-keygen", ["-F", "10.0.0.22", "-f", path], { encoding: "utf8" })).toContain(b.line.split(" ")[1]);
  });

  it("asks the server for a key type already known for it", () => {
    expect(preferKnownTypes(["ssh-rsa"]).slice(0, 3)).toEqual(["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]);
    expect(preferKnownTypes([])[0]).toBe("ssh-ed25519");
  });
});
