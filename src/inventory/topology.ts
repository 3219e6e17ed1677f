/**
 * Replication topologies (issue 12): who streams from whom (`upstream:`), which standbys the
 * primary waits for at commit (`replication.synchronous`), and which replay late (`apply_delay:`).
 * Pure: the inventory's schema checks a topology with topologyProblems, and switchover and
 * failover check with it the topology their new roles would make, before changing anything.
 */

export interface SynchronousSettings {
  /** quorum: ANY count of the standbys; priority: FIRST count of them, in their order. */
  mode: "quorum" | "priority";
  count: number;
  /** Undefined: every eligible standby. */
  standbys?: string[];
}

/** What the topology rules read of a host. */
export interface TopologyHost {
  name: string;
  role: "primary" | "standby";
  /** The host it streams from, as the inventory says; the primary when undefined. */
  upstream?: string;
  /** recovery_min_apply_delay, as PostgreSQL reads it ("1h", "30min"). */
  applyDelay?: string;
}

export interface TopologyProblem {
  /** Where in the inventory, for file:line:col. */
  path: (string | number)[];
  message: string;
}

/** PostgreSQL's time units for recovery_min_apply_delay, in milliseconds. */
const DELAY_UNITS: Record<string, number> = { ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 };
/** recovery_min_apply_delay is an int of milliseconds. */
const MAX_DELAY_MS = 2_147_483_647;

/** A delay in PostgreSQL's form ("1h", "30min", "90s"), in milliseconds; undefined if it is not one. */
export function delayMilliseconds(delay: string): number | undefined {
  const m = /^(\d+)(ms|s|min|h|d)$/.exec(delay);
  if (!m) return undefined;
  return Number(m[1]) * DELAY_UNITS[m[2]!]!;
}

/** Why a written delay is refused; undefined when it is a valid one. */
export function delayProblem(delay: string): string | undefined {
  const ms = delayMilliseconds(delay);
  if (ms === undefined) return `expected a delay like 30s, 5min, 1h or 1d (a whole number and one of ${Object.keys(DELAY_UNITS).join(", ")}), found "${delay}"`;
  if (ms === 0) return "a delay of 0 is no delay: remove apply_delay instead";
  if (ms > MAX_DELAY_MS) return `at most ${Math.floor(MAX_DELAY_MS / 86_400_000)} days (PostgreSQL's limit for recovery_min_apply_delay)`;
  return undefined;
}

/**
 * The host a standby streams from: its `upstream:`, else the primary. Undefined for the primary,
 * whose `upstream:` (kept for when it is a standby again, after a switchover) means nothing.
 */
export function upstreamOf<H extends TopologyHost>(hosts: readonly H[], host: H): H | undefined {
  if (host.role === "primary") return undefined;
  const primary = hosts.find((h) => h.role === "primary");
  return (host.upstream !== undefined ? hosts.find((h) => h.name === host.upstream) : undefined) ?? primary;
}

/** The hosts that stream from `host` (their slots live on it). */
export function downstreamsOf<H extends TopologyHost>(hosts: readonly H[], host: H): H[] {
  return hosts.filter((h) => h !== host && upstreamOf(hosts, h) === host);
}

/** A standby that streams from another standby: cloned after the standbys of the primary. */
export function isCascading<H extends TopologyHost>(hosts: readonly H[], host: H): boolean {
  return upstreamOf(hosts, host)?.role === "standby";
}

/**
 * The standbys the primary may wait for at commit: those named (default: all), that stream from
 * the primary itself (a cascading standby never reports to it), and are not delayed.
 */
export function synchronousStandbys<H extends TopologyHost>(hosts: readonly H[], sync: SynchronousSettings | undefined): H[] {
  if (!sync) return [];
  const eligible = (h: H) => h.role === "standby" && h.applyDelay === undefined && !isCascading(hosts, h);
  if (sync.standbys === undefined) return hosts.filter(eligible);
  // In the order written: FIRST N takes them by it.
  return sync.standbys.flatMap((name) => hosts.filter((h) => h.name === name && eligible(h)));
}

/** The value of synchronous_standby_names: empty (asynchronous) without `replication.synchronous`. */
export function synchronousStandbyNames(hosts: readonly TopologyHost[], sync: SynchronousSettings | undefined): string {
  const standbys = synchronousStandbys(hosts, sync);
  if (!sync || standbys.length === 0) return "";
  // Quoted: a host name may hold '-' or '.', which the list's grammar reads otherwise.
  return `${sync.mode === "quorum" ? "ANY" : "FIRST"} ${sync.count} (${standbys.map((h) => `"${h.name}"`).join(", ")})`;
}

/**
 * Everything wrong with a topology, each at its place in the inventory: an upstream that is not
 * a host, the host itself, a cycle, a cascade of more than one level (the bundled playbook clones
 * the standbys of the primary, then theirs), a synchronous standby that cannot be one, and a
 * count out of range.
 */
export function topologyProblems(hosts: readonly TopologyHost[], sync: SynchronousSettings | undefined): TopologyProblem[] {
  const problems: TopologyProblem[] = [];
  const byName = new Map(hosts.map((h) => [h.name, h]));
  for (const h of hosts) {
    const path = ["hosts", h.name, "upstream"];
    if (h.upstream === undefined) continue;
    if (h.upstream === h.name) problems.push({ path, message: `${h.name} cannot stream from itself` });
    else if (!byName.has(h.upstream)) problems.push({ path, message: `no host named "${h.upstream}" in the inventory (${h.name}'s upstream must be one of ${hosts.filter((o) => o !== h).map((o) => o.name).join(", ")})` });
  }
  // A cycle among the upstreams, whatever the roles: a switchover must never make one.
  const reported = new Set<string>();
  for (const start of hosts) {
    const seen: string[] = [];
    let at: TopologyHost | undefined = start;
    while (at?.upstream !== undefined && at.upstream !== at.name && !seen.includes(at.name)) {
      seen.push(at.name);
      at = byName.get(at.upstream);
    }
    if (at && seen.includes(at.name) && at === start && !reported.has(start.name)) {
      const cycle = seen.slice(seen.indexOf(at.name));
      for (const n of cycle) reported.add(n);
      problems.push({ path: ["hosts", start.name, "upstream"], message: `the upstreams make a cycle: ${[...cycle, start.name].join(" -> ")}; one of them must stream from the primary` });
    }
  }
  if (problems.length) return problems;
  for (const h of hosts) {
    const up = upstreamOf(hosts, h);
    if (h.upstream !== undefined && up?.role === "standby" && upstreamOf(hosts, up)?.role === "standby") {
      problems.push({
        path: ["hosts", h.name, "upstream"],
        message: `${h.name} would stream from ${up.name}, which itself streams from ${up.upstream}: pgprov cascades one level (a standby of a standby of the primary)`,
      });
    }
  }
  if (!sync) return problems;
  for (const [i, name] of (sync.standbys ?? []).entries()) {
    const path = ["replication", "synchronous", "standbys", i];
    const h = byName.get(name);
    if (!h) problems.push({ path, message: `no host named "${name}" in the inventory` });
    else if (h.applyDelay !== undefined) problems.push({ path, message: `${name} has apply_delay: a delayed standby is never synchronous` });
  }
  const eligible = synchronousStandbys(hosts, sync);
  if (sync.count < 1 || sync.count > eligible.length) {
    problems.push({
      path: ["replication", "synchronous", "count"],
      message:
        `count must be between 1 and the number of eligible standbys, ${eligible.length}` +
        ` (${eligible.length ? eligible.map((h) => h.name).join(", ") : "none"}: standbys of the primary without apply_delay${sync.standbys ? ", among those named" : ""}), found ${sync.count}`,
    });
  }
  return problems;
}

/** What `plan` warns about: a topology that works, but stops every commit when one standby is down. */
export function topologyWarnings(hosts: readonly TopologyHost[], sync: SynchronousSettings | undefined): string[] {
  const eligible = synchronousStandbys(hosts, sync);
  if (!sync || eligible.length === 0 || sync.count !== eligible.length) return [];
  return [
    `replication.synchronous.count is ${sync.count}, every eligible standby (${eligible.map((h) => h.name).join(", ")}): ` +
      `if ${eligible.length === 1 ? "it is" : "one of them is"} down, every commit on the primary waits until it is back`,
  ];
}

/** The roles a change of primary gives: `to` the primary, the old one a standby. */
export function withPrimary<H extends TopologyHost>(hosts: readonly H[], to: string): TopologyHost[] {
  return hosts.map((h) => ({ ...h, role: h.name === to ? "primary" : "standby" }));
}
