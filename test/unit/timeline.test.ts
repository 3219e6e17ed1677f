import { describe, expect, it } from "vitest";
import { judgeRejoin, parseTimelineHistory } from "../../src/cluster/timeline.js";
import { rewindBegan } from "../../src/cluster/rejoin.js";

const history = (text: string) => parseTimelineHistory(text);
const TL2 = history("1\t0/5000148\tno recovery target specified\n");
const TL3 = history("1\t0/5000148\tno recovery target specified\n\n2\t0/7000060\tno recovery target specified\n");

describe("timeline history files", () => {
  it("parses PostgreSQL's NNNNNNNN.history: timeline, switch point, reason; comments and blank lines skipped", () => {
    expect(history("# comment\n1\t0/5000148\tno recovery target specified\n\n2\t1/A0\tbefore 2026-01-01\n")).toEqual([
      { timeline: 1, switchLsn: "0/5000148" },
      { timeline: 2, switchLsn: "1/A0" },
    ]);
    expect(history("")).toEqual([]);
  });
});

describe("issue 8 item 2: rejoin only a host provably behind on the primary's history", () => {
  const primary = (timeline: number, h = timeline === 3 ? TL3 : timeline === 2 ? TL2 : [], endLsn = "0/9000000") => ({ name: "pg2", timeline, history: h, endLsn });
  const host = (timeline: number, wasWritable: boolean, h = timeline === 3 ? TL3 : timeline === 2 ? TL2 : [], endLsn = "0/8000000") => ({ name: "pg1", timeline, history: h, wasWritable, endLsn });

  it("refuses a host that accepted writes on the primary's own timeline (two promotions to the same number)", () => {
    const v = judgeRejoin(host(2, true), primary(2));
    expect(v).toMatchObject({ ok: false, recloneAllowed: true });
    expect(v.ok || v.reason).toMatch(/pg1 accepted writes on timeline 2, the timeline pg2 is on/);
    // Even when its WAL is shorter: the same positions may hold different transactions.
    expect(judgeRejoin(host(2, true, TL2, "0/6000000"), primary(2)).ok).toBe(false);
    expect(judgeRejoin(host(1, true), primary(1)).ok).toBe(false);
  });

  it("refuses a timeline the primary's history does not contain", () => {
    const v = judgeRejoin(host(2, true, TL2), primary(3, history("1\t0/5000148\tx\n")));
    expect(v).toMatchObject({ ok: false, recloneAllowed: true });
    expect(v.ok || v.reason).toMatch(/timeline 2 of pg1 is not on pg2's history/);
  });

  it("refuses a timeline that left its parent at another point than the primary's did", () => {
    const v = judgeRejoin(host(2, true, history("1\t0/6000000\tx\n")), primary(3));
    expect(v).toMatchObject({ ok: false, recloneAllowed: true });
    expect(v.ok || v.reason).toMatch(/pg1 left timeline 1 at 0\/6000000, pg2's history at 0\/5000148/);
  });

  it("refuses a host ahead of the primary, even with --reclone", () => {
    expect(judgeRejoin(host(3, true), primary(2))).toMatchObject({ ok: false, recloneAllowed: false });
  });

  it("refuses a standby on the primary's timeline with more WAL than the primary", () => {
    expect(judgeRejoin(host(2, false, TL2, "0/A000000"), primary(2))).toMatchObject({ ok: false, recloneAllowed: true });
  });

  it("issue 8 second reading, item 2: a former primary whose WAL goes past the fork is rewound only with consent, naming at least how much is undone", () => {
    const v = judgeRejoin(host(1, true, [], "0/6000000"), primary(2));
    expect(v).toMatchObject({ ok: false, recloneAllowed: true, discardBytes: 0x6000000n - 0x5000148n });
    expect(v.ok || v.reason).toMatch(/pg1's WAL goes on to at least 0\/6000000 on timeline 1, past 0\/5000148, where pg2's history left it: a rewind undoes at least 16776888 bytes of WAL/);
    expect(judgeRejoin(host(2, true, TL2, "0/7000061"), primary(3))).toMatchObject({ ok: false, recloneAllowed: true, discardBytes: 1n });
    // Where its WAL ends unread: it may have written past the fork, so consent is asked too.
    const unknown = judgeRejoin({ name: "pg1", timeline: 1, history: [], wasWritable: true }, primary(2));
    expect(unknown).toMatchObject({ ok: false, recloneAllowed: true });
    expect(unknown.ok || unknown.reason).toMatch(/where pg1's WAL ends could not be read/);
    expect(unknown.ok || unknown.discardBytes).toBeUndefined();
    // After a crash, pg_control's checkpoint is only a lower bound: before the fork proves nothing.
    const crashed = judgeRejoin({ ...host(1, true, [], "0/5000000"), endAtLeast: true }, primary(2));
    expect(crashed).toMatchObject({ ok: false, recloneAllowed: true, discardAllowed: true });
    expect(crashed.ok || crashed.reason).toMatch(/did not shut down cleanly, so pg_control's checkpoint is only a lower bound/);
  });

  it("accepts a former primary on an ancestor timeline whose WAL ends at or before the fork: nothing is undone", () => {
    const v = judgeRejoin(host(1, true, [], "0/5000000"), primary(2));
    expect(v).toMatchObject({ ok: true });
    expect(v.ok && v.detail).toMatch(/pg2's history left timeline 1 at 0\/5000148; pg1's WAL ends at 0\/5000000, at or before that point: nothing is undone/);
    expect(judgeRejoin(host(2, true, TL2, "0/6000000"), primary(3))).toMatchObject({ ok: true });
  });

  it("accepts a former primary that stopped before the fork, and a standby on the primary's timeline", () => {
    expect(judgeRejoin(host(1, true, [], "0/5000148"), primary(2))).toMatchObject({ ok: true });
    expect(judgeRejoin(host(2, false, TL2, "0/8000000"), primary(2))).toMatchObject({ ok: true });
  });
});

describe("rewindBegan: whether a failed pg_rewind may have written into the data directory", () => {
  it("false when it stopped at its checks, true once it began the rewind (PostgreSQL 15's messages)", () => {
    expect(rewindBegan('pg_rewind: error: could not connect to server: connection to server at "10.0.0.2", port 5432 failed')).toBe(false);
    expect(rewindBegan("pg_rewind: servers diverged at WAL location 0/90000A0 on timeline 2\npg_rewind: no rewind required")).toBe(false);
    expect(
      rewindBegan(
        'pg_rewind: servers diverged at WAL location 0/90000A0 on timeline 2\npg_rewind: rewinding from last common checkpoint at 0/9000028 on timeline 2\npg_rewind: error: could not open target file "/var/lib/postgresql/15/main/pg_wal/000000020000000000000007": Permission denied',
      ),
    ).toBe(true);
  });
});
