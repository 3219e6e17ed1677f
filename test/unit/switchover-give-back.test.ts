import { describe, expect, it } from "vitest";
import { giveBack } from "../../src/cluster/switchover.js";

const original = new Error("gave up after 30 s waiting for pg2 to receive pg1's WAL up to 0/5000100 (last seen: received up to 0/5000000)");
const fail = (message: string) => async () => {
  throw new Error(message);
};
const ok = async () => {};

describe("issue 8 second reading, item 4: a switchover that gives up and cannot start the old primary again says so", () => {
  it("keeps the original error and the start's, names the state (no writable server) and the way out", async () => {
    const e = await giveBack("pg1", "postgresql@15-main", { removeStandbySignal: ok, start: fail("host pg1: starting PostgreSQL failed (exit 1)") }, original).catch((x: Error) => x);
    expect(e).toBeInstanceOf(Error);
    const m = (e as Error).message;
    expect(m).toContain(original.message);
    expect(m).toContain("host pg1: starting PostgreSQL failed (exit 1)");
    expect(m).toContain("No server accepts writes now: nothing was promoted, and pg1 is stopped (standby.signal was removed, but PostgreSQL did not start)");
    expect(m).toContain("run `systemctl start postgresql@15-main`");
  });

  it("says standby.signal is still there when removing it failed, and does not try to start", async () => {
    let started = false;
    const e = await giveBack("pg1", "postgresql@15-main", { removeStandbySignal: fail("host pg1: connection lost"), start: async () => void (started = true) }, original).catch((x: Error) => x);
    expect(started).toBe(false);
    expect((e as Error).message).toMatch(/gave up after 30 s.*Starting pg1 again as the primary then failed: host pg1: connection lost\. No server accepts writes now: .*still marked a standby.*remove standby\.signal from its data directory, then run `systemctl start postgresql@15-main`/);
  });

  it("returns quietly when the old primary starts again", async () => {
    await expect(giveBack("pg1", "postgresql@15-main", { removeStandbySignal: ok, start: ok }, original)).resolves.toBeUndefined();
  });
});
