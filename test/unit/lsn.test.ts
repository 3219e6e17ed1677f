import { describe, expect, it } from "vitest";
import { lsnValue } from "../../src/common/lsn.js";
import { parseByteSize } from "../../src/common/args.js";

describe("LSNs", () => {
  it("compares as PostgreSQL does, across the 4 GiB boundary", () => {
    expect(lsnValue("0/6000028")).toBe(0x6000028n);
    expect(lsnValue("1/0") - lsnValue("0/FFFFFFFF")).toBe(1n);
    expect(lsnValue("16/B374D848") > lsnValue("9/FFFFFFFF")).toBe(true);
  });
});

describe("issue 8 smaller defects: --max-lag", () => {
  it("accepts PostgreSQL's units, bytes when none", () => {
    expect(parseByteSize("16MB", "--max-lag")).toBe(16 * 1024 * 1024);
    expect(parseByteSize("512kB", "--max-lag")).toBe(512 * 1024);
    expect(parseByteSize("2 GB", "--max-lag")).toBe(2 * 1024 ** 3);
    expect(parseByteSize("1TB", "--max-lag")).toBe(1024 ** 4);
    expect(parseByteSize("100B", "--max-lag")).toBe(100);
    expect(parseByteSize("16777216", "--max-lag")).toBe(16777216);
    expect(parseByteSize("0", "--max-lag")).toBe(0);
  });

  it("refuses anything else with a clear error", () => {
    for (const bad of ["16mb", "16 MiB", "MB", "-1MB", "1.5MB", "", "16MB!", "NaN", "Infinity"]) {
      expect(() => parseByteSize(bad, "--max-lag"), bad).toThrow(/--max-lag: expected a whole number of bytes, or one with a unit \(kB, MB, GB, TB\), such as 16MB; found ".*"/);
    }
  });
});
