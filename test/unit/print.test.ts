/** What the CLI prints is masked; --json lines stay valid JSON whatever the secrets look like. */
import { describe, expect, it, vi } from "vitest";
import { jsonKeys, printJson } from "../../src/cli/print.js";
import { MASK } from "../../src/common/redact.js";
import { Secret } from "../../src/common/secret.js";
import { maskConninfoPassword } from "../../src/postgres/overrides.js";

describe("printed output", () => {
  it("issue 8 item 9, found by review: a short secret masks values in --json, never keys or escapes", () => {
    // Secrets of one or two characters, like a key letter or a JSON punctuation mark.
    new Secret("e", "test");
    new Secret('"', "test");
    const lines: string[] = [];
    const spy = vi.spyOn(process.stdout, "write").mockImplementation((text) => (lines.push(String(text)), true));
    try {
      printJson({ type: "task", message: 'the key "e" and a quote' });
    } finally {
      spy.mockRestore();
    }
    const parsed = JSON.parse(lines.join("")) as Record<string, string>;
    expect(Object.keys(parsed)).toEqual(["type", "message"]);
    expect(parsed.type).toBe("task");
    expect(parsed.message).not.toMatch(/e|"/);
    expect(parsed.message).toContain(MASK);
  });

  it("issue 8 item 15, found by review: a password in a URI connection string is masked too", () => {
    expect(maskConninfoPassword("postgresql://u:OtherPw@10.0.0.9:5432/postgres")).toBe(`postgresql://u:${MASK}@10.0.0.9:5432/postgres`);
    expect(maskConninfoPassword("host=10.0.0.9 password='a b' user=u")).toBe(`host=10.0.0.9 password=${MASK} user=u`);
    expect(maskConninfoPassword("postgres://u@h/db?password=Pw1&sslmode=require")).toBe(`postgres://u@h/db?password=${MASK}&sslmode=require`);
  });
});

describe("--json keys", () => {
  it("issue 14: one key style in every command's --json: snake_case, host names kept as written", () => {
    expect(jsonKeys({ type: "status", expectedRole: "primary", lagBytes: 1, connectionStrings: { readWrite: "x" }, standbys: [{ slotActive: true }] })).toEqual({
      type: "status",
      expected_role: "primary",
      lag_bytes: 1,
      connection_strings: { read_write: "x" },
      standbys: [{ slot_active: true }],
    });
    // The recap's hosts are keyed by the inventory's names, which may hold capitals.
    expect(jsonKeys({ type: "recap", hosts: { pgPrimary: { ok: 1 } } })).toEqual({ type: "recap", hosts: { pgPrimary: { ok: 1 } } });
    expect(jsonKeys({ type: "run", hosts: ["pgA"] })).toEqual({ type: "run", hosts: ["pgA"] });
  });
});
