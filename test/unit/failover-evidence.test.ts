import { describe, expect, it } from "vitest";
import { lossEstimate, type OldPrimaryEvidence, type ReceiverEvidence, whyNotProvenDown } from "../../src/cluster/failover.js";

const PG1 = { name: "pg1", address: "10.0.0.11" };
const MEMBERS = [PG1, { name: "pg2", address: "10.0.0.12" }, { name: "pg3", address: "10.0.0.13" }];
const unreachable: OldPrimaryEvidence = { reachable: false, reason: "connection refused at 10.0.0.11:22 (is sshd running?)" };
const stopped: OldPrimaryEvidence = { reachable: true, postmaster: "stopped", sql: "no answer" };
const hears = (standby: string, age: number, over: Partial<ReceiverEvidence> = {}): ReceiverEvidence =>
  ({ standby, read: true, status: "streaming", senderHost: PG1.address, lastMessageAgeSeconds: age, receiverTimeoutSeconds: 60, ...over }) as ReceiverEvidence;
const silent = (standby: string): ReceiverEvidence => ({ standby, read: true, receiverTimeoutSeconds: 60 });
const why = (old: OldPrimaryEvidence, receivers: ReceiverEvidence[]) => whyNotProvenDown(PG1, old, receivers, MEMBERS);

describe("issue 8 item 1: failover only when the old primary is proven down", () => {
  it("refuses when the primary cannot be reached but a standby heard from it recently, saying when a retry is safe", () => {
    const r = why(unreachable, [hears("pg2", 3.4), silent("pg3")]);
    expect(r.reasons).toEqual(["pg2's WAL receiver heard from pg1 3 s ago (streaming)"]);
    expect(r.advice).toMatch(/wal_receiver_timeout \(60 s\).*retry.*57 s/);
  });

  it("refuses when every standby still hears it, naming each", () => {
    expect(why(unreachable, [hears("pg2", 1), hears("pg3", 12)]).reasons).toEqual([
      "pg2's WAL receiver heard from pg1 1 s ago (streaming)",
      "pg3's WAL receiver heard from pg1 12 s ago (streaming)",
    ]);
  });

  it("proceeds when the primary cannot be reached and no standby has heard from it within wal_receiver_timeout", () => {
    expect(why(unreachable, [silent("pg2"), silent("pg3")]).reasons).toEqual([]);
    // A receiver about to give up (no message for the whole timeout) is no evidence of life.
    expect(why(unreachable, [hears("pg2", 61), silent("pg3")]).reasons).toEqual([]);
    // A receiver that lost its connection and is reconnecting.
    expect(why(unreachable, [hears("pg2", 2, { status: "waiting" }), silent("pg3")]).reasons).toEqual([]);
  });

  it("counts a receiver connected but not yet told anything, and one that never times out", () => {
    expect(why(unreachable, [hears("pg2", Number.NaN, { lastMessageAgeSeconds: undefined }), silent("pg3")]).reasons).toHaveLength(1);
    const r = why(unreachable, [hears("pg2", 3600, { receiverTimeoutSeconds: 0 }), silent("pg3")]);
    expect(r.reasons).toEqual(["pg2's WAL receiver heard from pg1 3600 s ago (streaming)"]);
    expect(r.advice).toContain("wal_receiver_timeout is 0 on pg2");
  });

  it("does not count a standby streaming from another member (its sender speaks for itself)", () => {
    expect(why(unreachable, [hears("pg3", 1, { senderHost: "10.0.0.12" }), silent("pg2")]).reasons).toEqual([]);
    // An address that is no member's may be the old primary under another name.
    expect(why(unreachable, [hears("pg3", 1, { senderHost: "db-vip" }), silent("pg2")]).reasons).toEqual(["pg3's WAL receiver heard from db-vip 1 s ago (streaming)"]);
  });

  it("refuses when a standby cannot be read: it may still hear the primary, and may hold more of its WAL", () => {
    expect(why(unreachable, [silent("pg2"), { standby: "pg3", read: false, reason: "timed out" }]).reasons).toEqual([
      "pg3 could not be read (timed out): it may still hear pg1, and may have received more of its WAL than the others",
    ]);
  });

  it("refuses when the primary is reachable and its postmaster runs, whatever SQL says", () => {
    expect(why({ reachable: true, postmaster: "running", sql: "writable" }, [silent("pg2")]).reasons[0]).toMatch(/pg1 is reachable and accepts writes: .*switchover/);
    expect(why({ reachable: true, postmaster: "running", sql: "no answer", detail: "sorry, too many clients already" }, [silent("pg2")]).reasons).toEqual([
      "pg1's postmaster is running (postmaster.pid names a live process), though PostgreSQL does not answer SQL (sorry, too many clients already): it may still serve clients and stream WAL",
    ]);
    expect(why({ reachable: true, postmaster: "running", sql: "in recovery" }, [silent("pg2")]).reasons[0]).toMatch(/pg1's postmaster is running/);
  });

  it("refuses when the primary is reachable but whether its postmaster runs cannot be read", () => {
    expect(why({ reachable: true, postmaster: "unknown", sql: "no answer", detail: "permission denied" }, [silent("pg2")]).reasons).toEqual([
      "pg1's data directory could not be read (permission denied): whether its postmaster runs is unknown",
    ]);
  });

  it("proceeds when the primary is reachable and its postmaster is stopped", () => {
    expect(why(stopped, [silent("pg2"), silent("pg3")]).reasons).toEqual([]);
  });

  it("refuses when a stopped primary's address still streams to a standby: something else answers there", () => {
    expect(why(stopped, [hears("pg2", 1), silent("pg3")]).reasons).toHaveLength(1);
  });

  it("refuses when no standby could be read at all", () => {
    expect(why(unreachable, []).reasons).toEqual(["no standby could be read: nothing shows that pg1 is down"]);
  });

  it("issue 8 second reading, item 3: refuses when SQL answers at the old primary's address, though its postmaster.pid says stopped", () => {
    for (const sql of ["writable", "in recovery"] as const) {
      const r = why({ reachable: true, postmaster: "stopped", sql }, [silent("pg2"), silent("pg3")]);
      expect(r.reasons).toHaveLength(1);
      expect(r.reasons[0]).toMatch(new RegExp(`a server at pg1's address (accepts writes|answers SQL, in recovery), though pg1's postmaster.pid names no live process: something still serves there`));
    }
    expect(why({ reachable: true, postmaster: "unknown", sql: "writable", detail: "permission denied" }, [silent("pg2")]).reasons[0]).toMatch(/a server at pg1's address accepts writes/);
  });
});

describe("issue 8 second reading, item 3: failover's estimate of what the old primary had that the new one lacks", () => {
  it("says all was received only when pg_control says the old primary shut down cleanly", () => {
    expect(lossEstimate("pg1", "pg2", { lsn: "0/5000000", atLeast: false }, 0x5000000n)).toEqual({ bytes: 0, atLeast: false, line: "pg2 had received all of pg1's WAL" });
    expect(lossEstimate("pg1", "pg2", { lsn: "0/5000100", atLeast: false }, 0x5000000n).line).toBe(
      "pg1 had 256 bytes of WAL that pg2 did not receive: those transactions may be lost",
    );
  });

  it("after a crash, pg_control's checkpoint is only a lower bound: at least N bytes, possibly more", () => {
    const crashed = lossEstimate("pg1", "pg2", { lsn: "0/5000000", atLeast: true }, 0x5000000n);
    expect(crashed).toMatchObject({ bytes: 0, atLeast: true });
    expect(crashed.line).toMatch(/pg1 did not shut down cleanly .*: pg2 lacks at least 0 bytes of its WAL, possibly more; transactions committed on pg1 may be lost/);
    expect(lossEstimate("pg1", "pg2", { lsn: "0/5000100", atLeast: true }, 0x5000000n).line).toMatch(/at least 256 bytes of its WAL, possibly more/);
  });

  it("cannot know when the old primary could not be read", () => {
    expect(lossEstimate("pg1", "pg2", undefined, 0x5000000n)).toEqual({ line: "how much pg1 had that pg2 did not receive cannot be known: pg1 could not be read" });
  });
});
