import { describe, expect, it } from "vitest";
import { closest, editDistance } from "../../src/yaml/suggest.js";

describe("suggestions", () => {
  it("counts a swap of two letters as one edit", () => {
    expect(editDistance("adress", "address")).toBe(1);
    expect(editDistance("knwon_hosts", "known_hosts")).toBe(1);
    expect(editDistance("", "abc")).toBe(3);
  });
  it("suggests only close words", () => {
    expect(closest("adress", ["address", "role"])).toBe("address");
    expect(closest("foo", ["address", "role"])).toBeUndefined();
  });
});
