import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FileError } from "../../src/errors.js";
import { loadInventory } from "../../src/inventory/inventory.js";

const dir = mkdtempSync(join(tmpdir(), "pgprov-inventory-"));
let n = 0;
function write(text: string): string {
  const file = join(dir, `inventory-${n++}.yml`);
  writeFileSync(file, text);
  return file;
}
function problems(text: string): string[] {
  const file = write(text);
  try {
    loadInventory(file);
  } catch (e) {
    expect(e).toBeInstanceOf(FileError);
    return (e as FileError).message.split("\n").map((l) => l.replace(`${file}:`, ""));
  }
  throw new Error("expected the inventory to be rejected");
}

describe("inventory", () => {
  it("loads the minimal shape with defaults and resolves paths relative to the file", () => {
    writeFileSync(join(dir, "id_test"), "key");
    const inv = loadInventory(
      write(`ssh:\n  private_key: ./id_test\n  known_hosts: ./kh\nhosts:\n  pg1: { address: 10.0.0.11, role: primary }\n  pg2: { address: 10.0.0.12, role: standby }\n`),
    );
    expect(inv.ssh).toEqual({ user: "root", port: 22, privateKey: join(dir, "id_test"), knownHosts: join(dir, "kh"), connectTimeoutMs: 10_000 });
    expect(inv.hosts.map((h) => h.name)).toEqual(["pg1", "pg2"]);
    expect(inv.primary.name).toBe("pg1");
    expect(inv.standbys.map((h) => h.name)).toEqual(["pg2"]);
  });

  it("rejects unknown keys at their position, with a suggestion", () => {
    expect(problems(`ssh:\n  knwon_hosts: ./kh\nhosts:\n  pg1: { adress: 10.0.0.11, role: primary }\n`)).toEqual([
      `2:3: ssh: unknown key "knwon_hosts" (did you mean "known_hosts"?)`,
      `4:8: hosts.pg1: missing required key "address" (expected string)`,
      `4:10: hosts.pg1: unknown key "adress" (did you mean "address"?)`,
    ]);
  });

  it("says what was expected and what was found", () => {
    expect(problems(`hosts:\n  pg1: { address: 10.0.0.11, role: master }\n`)).toEqual([
      `2:36: hosts.pg1.role: invalid option: expected one of "primary"|"standby", found master`,
    ]);
    expect(problems(`ssh:\n  port: "22"\nhosts:\n  pg1: { address: 10.0.0.11, role: primary }\n`)).toEqual([
      `2:9: ssh.port: expected number, received string`,
    ]);
  });

  it("requires exactly one primary and distinct addresses", () => {
    expect(problems(`hosts:\n  pg1: { address: 10.0.0.11, role: standby }\n`)).toEqual([`2:3: hosts: no host has role: primary; exactly one must`]);
    expect(
      problems(`hosts:\n  pg1: { address: 10.0.0.11, role: primary }\n  pg2: { address: 10.0.0.11, role: primary }\n`),
    ).toEqual([
      `3:36: hosts.pg2.role: exactly one host may be the primary, found pg1, pg2`,
      `3:19: hosts.pg2.address: address 10.0.0.11 is already used by host pg1`,
    ]);
  });

  it("reports YAML syntax errors with their position", () => {
    const [first] = problems(`hosts:\n  pg1: { address: 10.0.0.11, role: primary\n`);
    expect(first).toMatch(/^3:1: Flow map/);
  });

  it("reports an unreadable private key at the key's line", () => {
    expect(problems(`ssh:\n  private_key: ./missing\nhosts:\n  pg1: { address: 10.0.0.11, role: primary }\n`)).toEqual([
      `2:16: ssh.private_key: cannot read ${join(dir, "missing")} (ENOENT)`,
    ]);
  });

  it("names a missing file", () => {
    expect(() => loadInventory(join(dir, "nope.yml"))).toThrow(/nope\.yml:1:1: cannot read: ENOENT/);
  });
});
