import { describe, expect, it } from "vitest";
import { lsnValue } from "../../src/cluster/failover.js";

describe("LSNs", () => {
  it("compares as PostgreSQL does, across the 4 GiB boundary", () => {
    expect(lsnValue("0/6000028")).toBe(0x6000028n);
    expect(lsnValue("1/0") - lsnValue("0/FFFFFFFF")).toBe(1n);
    expect(lsnValue("16/B374D848") > lsnValue("9/FFFFFFFF")).toBe(true);
  });
});
