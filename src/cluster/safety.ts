/**
 * The rules that keep pgprov from ever making two writable servers, read from every host's data
 * directory before the cluster playbook changes anything. Pure: unit-tested on states.
 */
import type { Inventory } from "../inventory/inventory.js";
import { type DataDirectory, isFreshCluster, isWritable } from "../postgres/data-directory.js";

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

  // A host of this cluster behind the primary's timeline that accepts writes is a former primary
  // that came back (after a failover, say): `pgprov rejoin` is its way back.
  const formerPrimaries = inventory.hosts.filter((h) => {
    const d = states.get(h.name);
    return (
      h.role === "standby" &&
      d !== undefined &&
      isWritable(d) &&
      primarySystemIdentifier !== undefined &&
      d.systemIdentifier === primarySystemIdentifier &&
      d.timeline !== undefined &&
      primaryData?.timeline !== undefined &&
      d.timeline < primaryData.timeline
    );
  });
  // A standby-to-be still running the empty cluster its package made is writable, but it is no
  // second primary: it holds nothing and is about to be replaced by a clone.
  const writable = inventory.hosts.filter((h) => {
    const d = states.get(h.name);
    if (!d || !isWritable(d) || formerPrimaries.includes(h) || (reclone.includes(h.name) && !ahead.includes(h))) return false;
    return !(h.role === "standby" && isFreshCluster(d) && d.systemIdentifier !== primarySystemIdentifier);
  });
  for (const h of formerPrimaries) {
    problems.push(
      `${timeline(h.name)} is a former primary of this cluster that came back accepting writes, behind ${timeline(primary.name)}. ` +
        `pgprov changes nothing while it runs so: run \`pgprov rejoin ${inventory.file} ${h.name}\` to make it a standby of ${primary.name} (pg_rewind).`,
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
