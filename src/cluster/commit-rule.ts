/**
 * Whether a failover may lose transactions whose commit was acknowledged, with synchronous or
 * quorum commit (issue 12). Pure: unit-tested over the standbys' positions.
 *
 * The rule: with synchronous_standby_names = 'ANY N (K standbys)' (or 'FIRST N (...)') and
 * synchronous_commit on or remote_apply (remote_write waits for a write the standby may not have
 * flushed: not counted), the primary acknowledges a commit only once N of the K standbys have
 * flushed its WAL. So every acknowledged commit is on at least N of the K, and among any K-N+1 of them at least one holds it (only K-N can lack it):
 * the most advanced of K-N+1 standbys read holds every acknowledged commit. FIRST N waits for
 * the N first connected of the list, which are N of the K as well: the same rule holds. A
 * promoted standby at least as advanced as every listed standby read loses none of them; with
 * fewer than K-N+1 of the K read, an acknowledged commit may be on the others only.
 */

export interface SynchronousList {
  mode: "quorum" | "priority";
  count: number;
  standbys: string[];
}

/**
 * synchronous_standby_names as pgprov renders it (inventory/topology.ts), or PostgreSQL's older
 * plain list ("a, b": FIRST 1). "" is asynchronous; undefined: a form this rule cannot judge ('*').
 */
export function parseSynchronousStandbyNames(value: string): SynchronousList | "asynchronous" | undefined {
  const text = value.trim();
  if (text === "") return "asynchronous";
  const m = /^(?:(ANY|FIRST)\s+(\d+)\s*\((.*)\)|([^()]*))$/is.exec(text);
  if (!m) return undefined;
  const list = (m[3] ?? m[4] ?? "").split(",").map((n) => n.trim().replace(/^"(.*)"$/, "$1"));
  if (list.some((n) => n === "" || n === "*")) return undefined;
  return { mode: m[1]?.toUpperCase() === "ANY" ? "quorum" : "priority", count: m[2] ? Number(m[2]) : 1, standbys: list };
}

/** synchronous_commit values with which a commit waits for the synchronous standbys. */
const WAITING_COMMITS = new Set(["on", "remote_apply"]);

export interface CommitVerdict {
  /** True: no acknowledged commit is lost by promoting `chosen`. */
  safe: boolean;
  line: string;
}

/**
 * `read`: every standby whose received WAL was read (fenced or delayed ones included: where WAL
 * is counts, not whether the host may be promoted). `chosen`: the standby to promote.
 */
export function committedTransactionsSafe(
  list: SynchronousList,
  synchronousCommit: string,
  read: { name: string; received: bigint }[],
  chosen: { name: string; received: bigint },
): CommitVerdict {
  const k = list.standbys.length;
  const n = list.count;
  const rule = `${list.mode === "quorum" ? "ANY" : "FIRST"} ${n} of ${k} (${list.standbys.join(", ")})`;
  if (!WAITING_COMMITS.has(synchronousCommit)) {
    return { safe: false, line: `synchronous_commit is ${synchronousCommit}: commits do not wait for the synchronous standbys, so committed transactions may be lost` };
  }
  if (n < 1 || n > k) return { safe: false, line: `synchronous_standby_names asks for ${n} of ${k} standbys: no count of copies is known, so committed transactions may be lost` };
  const listed = read.filter((r) => list.standbys.includes(r.name));
  const needed = k - n + 1;
  if (listed.length < needed) {
    return {
      safe: false,
      line:
        `committed transactions may be lost: with ${rule}, every committed transaction is on at least ${n} of them, so ${needed} must be read to find one that holds it, ` +
        `and only ${listed.length} ${listed.length === 1 ? "was" : "were"} (${listed.map((r) => r.name).join(", ") || "none"})`,
    };
  }
  const ahead = listed.filter((r) => r.received > chosen.received);
  if (ahead.length) {
    return {
      safe: false,
      line: `committed transactions may be lost: ${ahead.map((r) => r.name).join(", ")} received more WAL than ${chosen.name}, and may hold commits that only ${n} of ${rule} have`,
    };
  }
  return {
    safe: true,
    line:
      `no committed transaction is lost: with ${rule}, every committed transaction is on at least ${n} of them; ${listed.length} were read ` +
      `(${listed.map((r) => r.name).join(", ")}; ${needed} suffice), and ${chosen.name} has received at least as much WAL as each`,
  };
}
