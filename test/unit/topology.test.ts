/** Issue 12: replication topologies: synchronous and quorum commit, cascading and delayed standbys. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { committedTransactionsSafe, parseSynchronousStandbyNames, type SynchronousList } from "../../src/cluster/commit-rule.js";
import { rankCandidates } from "../../src/cluster/failover.js";
import { type HostStatus, replicationTree } from "../../src/cluster/status.js";
import { hostVariables } from "../../src/cluster/variables.js";
import { ensureReplicationPassword, loadInventory } from "../../src/inventory/inventory.js";
import { topologyProblems, topologyWarnings, withPrimary } from "../../src/inventory/topology.js";
import { render } from "../../src/playbook/template.js";
import { yamlFiles } from "./yaml-files.js";

const { write, problems } = yamlFiles("topology", loadInventory);

/** pg1 primary, pg2 a standby of it, pg3 cascading from pg2, pg4 delayed: the issue's cluster. */
const ISSUE_CLUSTER = `replication:
  synchronous: { mode: quorum, count: 1 }
hosts:
  pg1: { address: 10.0.0.11, role: primary }
  pg2: { address: 10.0.0.12, role: standby }
  pg3: { address: 10.0.0.13, role: standby, upstream: pg2 }
  pg4: { address: 10.0.0.14, role: standby, apply_delay: 1min }
`;

const facts = { os_id: "debian", os_version: "12", os_codename: "bookworm", arch: "amd64", hostname: "h", cpus: 2, memory_mb: 1024 };
const template = readFileSync(join(import.meta.dirname, "../../templates/pgprov.conf.hbs"), "utf8");

function conf(text: string, host: string): string {
  const inv = loadInventory(write(text));
  ensureReplicationPassword(inv);
  return render(template, hostVariables(inv, inv.hosts.find((h) => h.name === host)!, facts), "pgprov.conf.hbs");
}
const setting = (text: string, name: string) => new RegExp(`^${name} = (.*)$`, "m").exec(text)?.[1];

describe("issue 12: the inventory's topology is validated at file:line:col before anything connects", () => {
  const hosts = (lines: string) => `hosts:\n  pg1: { address: 10.0.0.11, role: primary }\n${lines}`;

  it("issue 12: refuses an upstream that is not in the inventory, with the names it could be", () => {
    expect(problems(hosts(`  pg2: { address: 10.0.0.12, role: standby, upstream: pg9 }\n`))).toEqual([
      `3:55: hosts.pg2.upstream: no host named "pg9" in the inventory (pg2's upstream must be one of pg1)`,
    ]);
  });

  it("issue 12: refuses a host that is its own upstream", () => {
    expect(problems(hosts(`  pg2: { address: 10.0.0.12, role: standby, upstream: pg2 }\n`))).toEqual([`3:55: hosts.pg2.upstream: pg2 cannot stream from itself`]);
  });

  it("issue 12: refuses a cycle of upstreams, once", () => {
    expect(
      problems(hosts(`  pg2: { address: 10.0.0.12, role: standby, upstream: pg3 }\n  pg3: { address: 10.0.0.13, role: standby, upstream: pg2 }\n`)),
    ).toEqual([`3:55: hosts.pg2.upstream: the upstreams make a cycle: pg2 -> pg3 -> pg2; one of them must stream from the primary`]);
  });

  it("issue 12: refuses a cascade of two levels (the bundled playbook clones one level after the other)", () => {
    expect(
      problems(
        hosts(`  pg2: { address: 10.0.0.12, role: standby }\n  pg3: { address: 10.0.0.13, role: standby, upstream: pg2 }\n  pg4: { address: 10.0.0.14, role: standby, upstream: pg3 }\n`),
      ),
    ).toEqual([`5:55: hosts.pg4.upstream: pg4 would stream from pg3, which itself streams from pg2: pgprov cascades one level (a standby of a standby of the primary)`]);
  });

  it("issue 12: refuses a synchronous count out of range, naming the eligible standbys", () => {
    const text = ISSUE_CLUSTER.replace("count: 1", "count: 2");
    expect(problems(text)).toEqual([
      `2:39: replication.synchronous.count: count must be between 1 and the number of eligible standbys, 1 (pg2: standbys of the primary without apply_delay), found 2`,
    ]);
    expect(problems(ISSUE_CLUSTER.replace("count: 1", "count: 0"))[0]).toContain("replication.synchronous.count: count must be between 1 and");
  });

  it("issue 12: refuses a delayed standby named synchronous, and an unknown one", () => {
    expect(problems(ISSUE_CLUSTER.replace("count: 1 }", "count: 1, standbys: [pg2, pg4, pg7] }"))).toEqual([
      `2:58: replication.synchronous.standbys.1: pg4 has apply_delay: a delayed standby is never synchronous`,
      `2:63: replication.synchronous.standbys.2: no host named "pg7" in the inventory`,
    ]);
  });

  it("issue 12: refuses a bad delay", () => {
    expect(problems(hosts(`  pg2: { address: 10.0.0.12, role: standby, apply_delay: 1 hour }\n`))).toEqual([
      `3:58: hosts.pg2.apply_delay: expected a delay like 30s, 5min, 1h or 1d (a whole number and one of ms, s, min, h, d), found "1 hour"`,
    ]);
    expect(problems(hosts(`  pg2: { address: 10.0.0.12, role: standby, apply_delay: 0s }\n`))[0]).toContain("a delay of 0 is no delay");
    expect(problems(hosts(`  pg2: { address: 10.0.0.12, role: standby, apply_delay: 30d }\n`))[0]).toContain("at most 24 days");
  });

  it("issue 12: refuses synchronous_standby_names and recovery_min_apply_delay in postgresql.settings", () => {
    const text = `postgresql:\n  settings: { synchronous_standby_names: "*", recovery_min_apply_delay: 5min }\n${hosts("")}`;
    expect(problems(text)).toEqual([
      `2:42: postgresql.settings.synchronous_standby_names: synchronous_standby_names is managed by pgprov (derived from the inventory); remove it here`,
      `2:73: postgresql.settings.recovery_min_apply_delay: recovery_min_apply_delay is managed by pgprov (derived from the inventory); remove it here`,
    ]);
  });
});

describe("issue 12: rendering", () => {
  it("issue 12: ANY N over the standbys of the primary without delay, the same on every host; the delay only on its host", () => {
    for (const h of ["pg1", "pg2", "pg3", "pg4"]) expect(setting(conf(ISSUE_CLUSTER, h), "synchronous_standby_names")).toBe(`'ANY 1 ("pg2")'`);
    expect(setting(conf(ISSUE_CLUSTER, "pg4"), "recovery_min_apply_delay")).toBe("'1min'");
    expect(setting(conf(ISSUE_CLUSTER, "pg2"), "recovery_min_apply_delay")).toBe("'0'");
    const priority = ISSUE_CLUSTER.replace("mode: quorum, count: 1", "mode: priority, count: 1, standbys: [pg3, pg2, pg1]");
    // Named in order; pg3 (cascading) and pg1 (the primary) are not eligible now.
    expect(setting(conf(priority, "pg1"), "synchronous_standby_names")).toBe(`'FIRST 1 ("pg2")'`);
    expect(setting(conf(ISSUE_CLUSTER.replace(/replication:\n.*\n/, ""), "pg1"), "synchronous_standby_names")).toBe("''");
  });

  it("issue 12: a cascading standby streams and clones from its upstream, on a slot that lives there", () => {
    expect(setting(conf(ISSUE_CLUSTER, "pg3"), "primary_conninfo")).toMatch(/^'host=10\.0\.0\.12 port=5432 /);
    expect(setting(conf(ISSUE_CLUSTER, "pg2"), "primary_conninfo")).toMatch(/^'host=10\.0\.0\.11 port=5432 /);
    expect(setting(conf(ISSUE_CLUSTER, "pg3"), "primary_slot_name")).toBe("'pgprov_pg3'");
    const inv = loadInventory(write(ISSUE_CLUSTER));
    const cluster = (name: string) => hostVariables(inv, inv.hosts.find((h) => h.name === name)!, facts).cluster as Record<string, unknown>;
    expect(cluster("pg1").slots).toEqual(["pgprov_pg2", "pgprov_pg4"]);
    expect(cluster("pg2").slots).toEqual(["pgprov_pg3"]);
    expect(cluster("pg3")).toMatchObject({ slots: [], cascading: true, upstream: { name: "pg2", address: "10.0.0.12" } });
    // Sized for every standby on every host: an upstream counts its downstreams among them.
    const postgresql = (name: string) => hostVariables(inv, inv.hosts.find((h) => h.name === name)!, facts).postgresql as Record<string, number>;
    expect(postgresql("pg2").max_wal_senders).toBe(postgresql("pg1").max_wal_senders);
    expect(postgresql("pg2").max_wal_senders).toBeGreaterThanOrEqual(2 * 1 + 1);
  });

  it("issue 12: with its upstream left out of a run (a failed primary), a standby streams from the primary meanwhile", () => {
    const inv = loadInventory(write(ISSUE_CLUSTER.replace("upstream: pg2", "upstream: pg4")));
    const vars = hostVariables(inv, inv.hosts[2]!, facts, { reclone: [], excluded: ["pg4"] }).cluster as Record<string, unknown>;
    expect(vars).toMatchObject({ cascading: false, upstream: { name: "pg1" } });
    expect((hostVariables(inv, inv.hosts[0]!, facts, { reclone: [], excluded: ["pg4"] }).cluster as Record<string, unknown>).slots).toEqual(["pgprov_pg2", "pgprov_pg3"]);
  });

  it("issue 12: plan warns when the count is every eligible standby; a switchover that would break the topology is found first", () => {
    const inv = loadInventory(write(ISSUE_CLUSTER));
    expect(topologyWarnings(inv.hosts, inv.replication.synchronous)).toEqual([
      "replication.synchronous.count is 1, every eligible standby (pg2): if it is down, every commit on the primary waits until it is back",
    ]);
    // pg2 the primary: pg1 and pg3 stream from it, both eligible.
    expect(topologyProblems(withPrimary(inv.hosts, "pg2"), { mode: "quorum", count: 2 })).toEqual([]);
    expect(topologyProblems(withPrimary(inv.hosts, "pg2"), { mode: "quorum", count: 3 })[0]!.message).toContain("found 3");
  });
});

describe("issue 12: failover with synchronous standbys: may committed transactions be lost?", () => {
  it("issue 12: parses synchronous_standby_names as pgprov renders it, and PostgreSQL's plain list", () => {
    expect(parseSynchronousStandbyNames(`ANY 2 ("pg2", "pg-3")`)).toEqual({ mode: "quorum", count: 2, standbys: ["pg2", "pg-3"] });
    expect(parseSynchronousStandbyNames(`FIRST 1 ("pg2")`)).toEqual({ mode: "priority", count: 1, standbys: ["pg2"] });
    expect(parseSynchronousStandbyNames("pg2, pg3")).toEqual({ mode: "priority", count: 1, standbys: ["pg2", "pg3"] });
    expect(parseSynchronousStandbyNames("")).toBe("asynchronous");
    expect(parseSynchronousStandbyNames("ANY 1 (*)")).toBeUndefined();
  });

  /**
   * The proof, exhaustively for K up to 4 standbys: a commit at LSN 10 acknowledged under ANY N
   * is on some N (or more) of the K; the others stopped anywhere before it. For every such
   * placement and every set of standbys read, the rule says "safe" exactly when K-N+1 were read,
   * and then the most advanced of them holds the commit; with fewer, some placement loses it.
   */
  it("issue 12: ANY N over K: the most advanced of any K-N+1 standbys read holds every acknowledged commit; with fewer, it may not", () => {
    const COMMIT = 10n;
    // Collected, then compared once: an expect per case costs seconds on a loaded machine.
    const wrong: string[] = [];
    for (let k = 1; k <= 4; k++) {
      const names = Array.from({ length: k }, (_, i) => `s${i + 1}`);
      for (let n = 1; n <= k; n++) {
        const list: SynchronousList = { mode: "quorum", count: n, standbys: names };
        for (let readMask = 1; readMask < 1 << k; readMask++) {
          const readNames = names.filter((_, i) => readMask & (1 << i));
          const enough = readNames.length >= k - n + 1;
          let lossSeen = false;
          // Each standby: has the commit (10 or 11: further on) or lacks it (5 or 9: behind it).
          for (let placement = 0; placement < 4 ** k; placement++) {
            const lsn = names.map((_, i) => [5n, 9n, 10n, 11n][Math.floor(placement / 4 ** i) % 4]!);
            if (lsn.filter((l) => l >= COMMIT).length < n) continue; // not acknowledged: not on N
            const read = readNames.map((name) => ({ name, received: lsn[names.indexOf(name)]! }));
            const chosen = read.reduce((a, b) => (b.received > a.received ? b : a));
            const verdict = committedTransactionsSafe(list, "on", read, chosen);
            const at = `K=${k} N=${n} read ${readNames.join("+")} at ${lsn.join(",")}`;
            if (verdict.safe !== enough) wrong.push(`${at}: safe=${verdict.safe}`);
            if (verdict.safe && chosen.received < COMMIT) wrong.push(`${at}: said safe, but ${chosen.name} lacks the commit`);
            if (chosen.received < COMMIT) lossSeen = true;
          }
          // Below the rule's threshold, a placement exists whose commit the most advanced read lacks.
          if (lossSeen !== !enough) wrong.push(`K=${k} N=${n} read ${readNames.join("+")}: a loss ${lossSeen ? "seen" : "never seen"}`);
        }
      }
    }
    expect(wrong).toEqual([]);
  });

  it("issue 12: says why it cannot promise: too few read, a standby ahead of the one promoted (--to), commits that do not wait", () => {
    const list: SynchronousList = { mode: "quorum", count: 1, standbys: ["pg2", "pg3", "pg4"] };
    const at = (name: string, received: bigint) => ({ name, received });
    expect(committedTransactionsSafe(list, "on", [at("pg2", 5n), at("pg3", 7n)], at("pg3", 7n)).line).toBe(
      "committed transactions may be lost: with ANY 1 of 3 (pg2, pg3, pg4), every committed transaction is on at least 1 of them, so 3 must be read to find one that holds it, and only 2 were (pg2, pg3)",
    );
    const all = [at("pg2", 5n), at("pg3", 7n), at("pg4", 6n)];
    expect(committedTransactionsSafe(list, "on", all, at("pg3", 7n))).toMatchObject({ safe: true });
    expect(committedTransactionsSafe(list, "on", all, at("pg2", 5n)).line).toContain("pg3, pg4 received more WAL than pg2");
    expect(committedTransactionsSafe(list, "local", all, at("pg3", 7n)).safe).toBe(false);
    expect(committedTransactionsSafe({ ...list, mode: "priority", count: 2 }, "remote_apply", all.slice(0, 2), at("pg3", 7n)).line).toMatch(/^no committed transaction is lost: with FIRST 2 of 3/);
  });

  it("issue 12: failover promotes the most advanced candidate, a synchronous one among equals", () => {
    const c = (name: string, received: bigint) => ({ host: { name }, received });
    const candidates = [c("pg5", 10n), c("pg2", 10n), c("pg3", 12n)];
    rankCandidates(candidates, ["pg2"]);
    expect(candidates.map((x) => x.host.name)).toEqual(["pg3", "pg2", "pg5"]);
  });
});

describe("issue 12: status draws the tree", () => {
  it("issue 12: each server with the standbys that stream from it, their sync_state and delay", () => {
    const h = (host: string, role: HostStatus["role"], extra: Partial<HostStatus> = {}): HostStatus => ({ host, address: "", expectedRole: role === "primary" ? "primary" : "standby", role, ...extra });
    const tree = replicationTree([
      h("pg1", "primary"),
      h("pg2", "standby", { upstream: "pg1", expectedUpstream: "pg1", syncState: "quorum", streaming: "streaming" }),
      h("pg3", "standby", { upstream: "pg2", expectedUpstream: "pg2", syncState: "async", streaming: "streaming" }),
      h("pg4", "standby", { upstream: "pg1", expectedUpstream: "pg2", syncState: "async", streaming: "streaming", applyDelay: "1min" }),
      h("pg5", "stopped", { reason: "no server" }),
    ]);
    expect(tree).toEqual([
      "pg1 (primary)",
      "├── pg2 (quorum)",
      "│   └── pg3 (async)",
      "└── pg4 (async, apply delay 1min, inventory: from pg2)",
      "pg5 (stopped): streams from no server reached (no server)",
    ]);
  });
});

describe("issue 12: pgprov's own writes", () => {
  it("issue 12: never wait for synchronous standbys (on a bootstrap, none can exist before the replication role does)", async () => {
    const { psql } = await import("../../src/postgres/psql.js");
    expect(psql(5432).command(["create role r"], "create role r").script).toContain("-c synchronous_commit=local");
  });
});
