/**
 * The rules that keep pgprov from ever making two writable servers, read from every host's data
 * directory before the cluster playbook changes anything. Pure: unit-tested on states.
 */
import type { Inventory } from "../inventory/inventory.js";
import { lsnValue } from "../common/lsn.js";
import { type DataDirectory, isFreshCluster, isWritable, unfinishedRewind, wasWritable } from "../postgres/data-directory.js";

export interface ClusterAssessment {
  /** Why apply must not go on; empty when it may. */
  problems: string[];
  primarySystemIdentifier?: string;
}

/**
 * `reclone`: standbys the user agreed to replace with a clone; whatever they hold, they will not
 * stay a primary, so they do not count as writable.
 */
export function assessCluster(inventory: Inventory, states: Map<string, DataDirectory | undefined>, reclone: string[] = []): ClusterAssessment {
  const primary = inventory.primary;
  const primaryData = states.get(primary.name);
  const primarySystemIdentifier = primaryData?.systemIdentifier;
  const problems: string[] = [];

  // A host of this cluster on a later timeline than the primary was promoted: it may hold the
  // newest writes, and the inventory's primary may be the stale one. Nothing is decided for the
  // user here, not even with --reclone.
  const ahead = inventory.hosts.filter((h) => {
    const d = states.get(h.name);
    return (
      h !== primary &&
      primarySystemIdentifier !== undefined &&
      d?.systemIdentifier === primarySystemIdentifier &&
      d.timeline !== undefined &&
      primaryData?.timeline !== undefined &&
      d.timeline > primaryData.timeline
    );
  });
  const names = (hs: { name: string }[]) => hs.map((h) => h.name).join(", ");
  const timeline = (name: string) => {
    const t = states.get(name)?.timeline;
    return t === undefined ? name : `${name} (timeline ${t})`;
  };
  const seeStatus = "`pgprov status` shows each server's role and timeline";

  // A former primary of this cluster (after a failover, say) that cannot simply follow the
  // primary: `pgprov rejoin` is its way back. A host named in --reclone is about to be replaced
  // by a clone, which is what `rejoin --reclone` asks for.
  const rejoinFirst = inventory.hosts.flatMap((h) => {
    const d = states.get(h.name);
    const why = h !== primary && d && !reclone.includes(h.name) ? mustRejoin(d, primaryData, primary.name) : undefined;
    return why ? [{ host: h, why }] : [];
  });
  const formerPrimaries = rejoinFirst.map((r) => r.host);
  // A standby-to-be still running the empty cluster its package made is writable, but it is no
  // second primary: it holds nothing and is about to be replaced by a clone.
  const writable = inventory.hosts.filter((h) => {
    const d = states.get(h.name);
    if (!d || !isWritable(d) || formerPrimaries.includes(h) || (reclone.includes(h.name) && !ahead.includes(h))) return false;
    return !(h.role === "standby" && isFreshCluster(d) && d.systemIdentifier !== primarySystemIdentifier);
  });
  for (const { host, why } of rejoinFirst) {
    problems.push(
      `${timeline(host.name)} ${why}. pgprov changes nothing while it is in the cluster so: ` +
        `run \`pgprov rejoin ${inventory.file} ${host.name}\` to make it a standby of ${primary.name} (pg_rewind; with --reclone, a fresh clone instead).`,
    );
  }
  if (primaryData?.rewindUnfinished) {
    problems.push(
      `${primary.name}, the inventory's primary, ${unfinishedRewind(primaryData.rewindUnfinished)}. pgprov changes nothing while that is so: ` +
        `set the inventory's roles to what \`pgprov status\` shows, then run \`pgprov rejoin ${inventory.file} ${primary.name} --reclone\`.`,
    );
  }
  if (primaryData?.fenced) {
    problems.push(
      `${primary.name}, the inventory's primary, was fenced by a failover (${primaryData.fenced}), and may lack what was written since. pgprov changes nothing while that is so: ` +
        `set the inventory's roles to what \`pgprov status\` shows, then run \`pgprov rejoin ${inventory.file} ${primary.name}\`.`,
    );
  }

  if (writable.length > 1) {
    const replaceable = writable.filter((h) => h.role === "standby" && !ahead.includes(h));
    problems.push(
      `more than one server accepts writes: ${writable.map((h) => timeline(h.name)).join(", ")}. pgprov changes nothing while that is so; ` +
        `decide which one is the primary (${seeStatus}), stop the others, then rerun` +
        (replaceable.length ? `; or, to replace ${names(replaceable)} with a clone of ${primary.name}, rerun with --reclone ${replaceable.map((h) => h.name).join(",")}.` : "."),
    );
  } else if (writable.length === 1 && writable[0] !== primary) {
    problems.push(
      `the writable server is ${writable[0]!.name}, but the inventory says the primary is ${primary.name}. ` +
        `pgprov changes nothing until they agree: make ${writable[0]!.name} the primary in the inventory, ` +
        `or bring ${primary.name} back (${seeStatus}).`,
    );
  }
  for (const h of ahead.filter((h) => !writable.includes(h))) {
    problems.push(
      `${timeline(h.name)} is ahead of the inventory's primary ${timeline(primary.name)}: it was promoted, and may hold writes ${primary.name} lacks. ` +
        `pgprov will not start, clone or replace either while that is so, not even with --reclone. If ${h.name} is the real primary, make it the primary in the inventory; ` +
        `if its writes can be thrown away, stop it and empty its data directory yourself, and pgprov clones it again.`,
    );
  }
  if (primaryData?.running && primaryData.standbySignal) {
    problems.push(`${primary.name}, the inventory's primary, is running as a standby. pgprov will not promote it on its own (${seeStatus}).`);
  }
  return { problems, ...(primarySystemIdentifier ? { primarySystemIdentifier } : {}) };
}

/**
 * Why a host of the primary's cluster must be rewound (or cloned) before it may follow the
 * primary; undefined when it may follow as it is, or when that cannot be told from files (the
 * standby then reports why it does not stream). Switchover's old primary follows as it is: it
 * stopped cleanly, and the new primary received its shutdown checkpoint before being promoted,
 * so that checkpoint lies before where the primary's history left the old timeline. A failover's
 * old primary may have written past that point, and nothing in pg_control says whether it did
 * once it has run as a standby: hence the mark failover leaves (FENCE_MARKER).
 */
export function mustRejoin(d: DataDirectory, primary: DataDirectory | undefined, primaryName: string): string | undefined {
  if (d.rewindUnfinished) return `${unfinishedRewind(d.rewindUnfinished)}, and only a clone can replace it (\`pgprov rejoin\` with --reclone)`;
  if (d.fenced) return `was fenced by a failover (${d.fenced}): it may hold WAL that ${primaryName} never received, and cannot simply follow it`;
  if (d.systemIdentifier === undefined || d.systemIdentifier !== primary?.systemIdentifier) return undefined;
  if (d.timeline === undefined || primary.timeline === undefined || d.timeline >= primary.timeline) return undefined;
  if (isWritable(d)) return `is a former primary of this cluster that came back accepting writes, behind ${primaryName} (timeline ${primary.timeline})`;
  if (d.running || !wasWritable(d)) return undefined;
  if (!d.standbySignal) return `last ran as the primary and is not marked a standby (no standby.signal): it may have been written to since ${primaryName} was promoted`;
  if (d.state !== "shut down") {
    return `last ran as the primary and stopped without a clean shutdown (pg_control: ${d.state}): how far its WAL goes past the point where ${primaryName}'s timeline began cannot be read from pg_control`;
  }
  const left = primary.history?.find((e) => e.timeline === d.timeline)?.switchLsn;
  if (left === undefined) return `stopped as the primary on timeline ${d.timeline}, which is not on ${primaryName}'s history`;
  if (d.checkpointLsn !== undefined && lsnValue(d.checkpointLsn) >= lsnValue(left)) {
    return `stopped as the primary with WAL up to ${d.checkpointLsn} on timeline ${d.timeline}, where ${primaryName}'s history left timeline ${d.timeline} at ${left}: it holds WAL ${primaryName} never had`;
  }
  return undefined;
}

/**
 * Restore promotes the inventory's primary on a new timeline and only then clones the standbys:
 * a standby that accepts writes meanwhile (a failover the inventory does not know of) would be a
 * second writable server for the whole restore, and may be the real primary, holding the newest
 * writes. Refused before anything stops. As for apply, a standby-to-be still running the empty
 * cluster its package made holds nothing and counts for nothing.
 */
export function restoreWritableProblem(primary: string, standbys: { name: string; data: DataDirectory | undefined }[]): string | undefined {
  const writable = standbys.filter((s) => s.data && isWritable(s.data) && !isFreshCluster(s.data));
  if (!writable.length) return undefined;
  const names = writable.map((s) => `${s.name}${s.data?.timeline === undefined ? "" : ` (timeline ${s.data.timeline})`}`).join(", ");
  const them = writable.map((s) => s.name).join(", ");
  return (
    `${names} accepts writes, though the inventory makes it a standby of ${primary}: it may be the real primary, with writes ${primary} lacks. ` +
    `If it is, make ${them} the primary in the inventory and restore that; or stop it (\`pgprov status\` shows each server's role and timeline)`
  );
}
