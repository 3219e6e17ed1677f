/** Issue 9 (engine speed): the redactor remembers what it masked, and never a result that a secret added since would change. */
import { describe, expect, it } from "vitest";
import { MASK, Redactor } from "../../src/common/redact.js";

describe("issue 9: the redactor's memory of masked texts", () => {
  it("issue 9: a text masked before a secret was added is masked again with it", () => {
    const r = new Redactor(["first-secret"]);
    const text = "password first-secret and second-secret";
    expect(r.text(text)).toBe(`password ${MASK} and second-secret`);
    expect(r.text(text)).toBe(`password ${MASK} and second-secret`);
    r.add("second-secret");
    expect(r.text(text)).toBe(`password ${MASK} and ${MASK}`);
    expect(r.value({ a: [text, "plain"] })).toEqual({ a: [`password ${MASK} and ${MASK}`, "plain"] });
  });

  it("issue 9: a text holding a secret, or a long one, is masked each time and never kept", () => {
    const r = new Redactor(["s3cret"]);
    expect(r.text("pg1: ok")).toBe("pg1: ok");
    expect(r.remembered).toBe(1);
    expect(r.text("password s3cret")).toBe(`password ${MASK}`);
    expect(r.text("password s3cret")).toBe(`password ${MASK}`);
    const long = "x".repeat(5000);
    expect(r.text(long)).toBe(long);
    expect(r.remembered).toBe(1);
  });
});
