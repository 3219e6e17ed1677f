/**
 * `pgprov failover [--to HOST]`: the primary is gone; the standby with the most WAL received
 * takes over. A primary that still runs is a switchover's business, so failover refuses unless
 * --force. A reachable old primary is fenced (stopped, its service disabled) so it cannot come
 * back writable after a reboot; an unreachable one is left out until `pgprov rejoin`.
 */
import type { ClusterEmit as Emit } from "./events.js";
import { PgprovError } from "../common/errors.js";
import { rewriteRoles } from "../inventory/edit.js";
import type { Host, Inventory } from "../inventory/inventory.js";
import type { ClusterPlaybook as Playbook } from "./playbook.js";
import { ClusterOperation } from "./operations.js";
import { reconfigure } from "./switchover.js";

export interface FailoverOptions {
  to?: string;
  force: boolean;
  acceptNewHostKeys?: boolean;
  log: (line: string) => void;
  emit: Emit;
}

export interface FailoverResult {
  promoted: string;
  /** WAL the old primary had beyond what the new one received; undefined when unknowable. */
  possibleLossBytes?: number;
  inventoryChanges: string[];
  failed: boolean;
}

export async function failover(inventory: Inventory, playbook: Playbook, options: FailoverOptions): Promise<FailoverResult> {
  const oldPrimary = inventory.primary;
  const op = await ClusterOperation.open(inventory, options);
  try {
    // 1. Is the primary really gone?
    const oldReachable = op.reachable(oldPrimary);
    const oldState = oldReachable ? await op.trySql(oldPrimary, "select pg_is_in_recovery() as in_recovery") : undefined;
    if (oldState?.[0]?.in_recovery === false && !options.force) {
      throw new PgprovError(`${oldPrimary.name} is reachable and accepts writes: that calls for \`pgprov switchover\`, which loses nothing. Use --force to fail over anyway`);
    }
    op.step(
      oldReachable
        ? `${oldPrimary.name} is reachable; PostgreSQL ${oldState ? "runs there" : "does not answer there"}`
        : `${oldPrimary.name} cannot be reached: ${op.unreachableReason(oldPrimary)}`,
    );

    // 2. The standby with the most WAL received, unless --to names one.
    const candidates: { host: Host; lsn: string; received: bigint }[] = [];
    for (const h of inventory.standbys) {
      if (!op.reachable(h)) continue;
      const [r] = (await op.trySql(h, "select pg_is_in_recovery() as in_recovery, coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text as lsn")) ?? [];
      if (r?.in_recovery !== true || !r.lsn) continue;
      candidates.push({ host: h, lsn: String(r.lsn), received: lsnValue(String(r.lsn)) });
    }
    if (candidates.length === 0) throw new PgprovError("no standby can be promoted: none is reachable and in recovery");
    candidates.sort((a, b) => (b.received > a.received ? 1 : b.received < a.received ? -1 : 0));
    const chosen = options.to ? candidates.find((c) => c.host.name === options.to) : candidates[0];
    if (!chosen) throw new PgprovError(`--to ${options.to}: not a reachable standby in recovery (candidates: ${candidates.map((c) => c.host.name).join(", ")})`);
    op.step(`standbys by WAL received: ${candidates.map((c) => `${c.host.name} ${c.lsn}`).join(", ")}; promoting ${chosen.host.name}`);

    // 3. Fence the old primary where it can be reached: stopped and disabled.
    let oldLsn: string | undefined;
    if (oldReachable) {
      await op.stopServer(oldPrimary, true);
      oldLsn = await op.checkpointLsn(oldPrimary);
      op.step(`fenced ${oldPrimary.name}: PostgreSQL stopped and its service disabled; its WAL ends at ${oldLsn}`);
    }

    // 4. Promote.
    await op.promote(chosen.host);
    op.step(`promoted ${chosen.host.name}`);

    const possibleLossBytes = oldLsn ? Number(lsnValue(oldLsn) - chosen.received) : undefined;
    if (possibleLossBytes === undefined) op.step(`how much ${oldPrimary.name} had that ${chosen.host.name} did not receive cannot be known: ${oldPrimary.name} could not be read`);
    else op.step(possibleLossBytes > 0 ? `${oldPrimary.name} had up to ${possibleLossBytes} bytes of WAL that ${chosen.host.name} did not receive: those transactions may be lost` : `${chosen.host.name} had received all of ${oldPrimary.name}'s WAL`);

    // 5. The inventory follows; the others are pointed at the new primary. The old primary
    //    stays out of it until `pgprov rejoin` brings it back.
    const inventoryChanges = rewriteRoles(inventory, { [chosen.host.name]: "primary", [oldPrimary.name]: "standby" });
    op.step(`inventory ${inventory.file}: ${inventoryChanges.join(", ")}`);
    const summary = await reconfigure(inventory, playbook, op, options.emit, [oldPrimary]);
    op.step(summary.failed ? "the cluster playbook failed: see above" : `the other standbys stream from ${chosen.host.name}; bring ${oldPrimary.name} back with \`pgprov rejoin ${inventory.file} ${oldPrimary.name}\``);
    return { promoted: chosen.host.name, ...(possibleLossBytes !== undefined ? { possibleLossBytes } : {}), inventoryChanges, failed: summary.failed };
  } finally {
    await op.close();
  }
}

/** A pg_lsn ("16/B374D848") as a number of bytes. */
export function lsnValue(lsn: string): bigint {
  const [hi, lo] = lsn.split("/");
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
}
