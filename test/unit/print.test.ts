/** What the CLI prints is masked; --json lines stay valid JSON whatever the secrets look like. */
import { describe, expect, it, vi } from "vitest";
import { printJson } from "../../src/cli/print.js";
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
