/**
 * `pgprov switchover --to HOST`: a planned change of primary that loses no committed
 * transaction. The old primary is shut down cleanly (its last WAL record is its shutdown
 * checkpoint), the target is promoted only once it has received that record, and the old
 * primary then follows the target as a standby: it has nothing the target lacks, so no rewind.
 * The inventory's roles are rewritten, and the cluster playbook points everyone at the new
 * primary and verifies that every standby streams.
 */
import type { ClusterEmit as Emit } from "./events.js";
import { PgprovError } from "../common/errors.js";
import { rewriteRoles } from "../inventory/edit.js";
import type { Host, Inventory } from "../inventory/inventory.js";
import type { ClusterPlaybook as Playbook } from "./playbook.js";
import { applyCluster } from "./apply.js";
import { ClusterOperation, crashPoint, type OperationOptions } from "./operations.js";
import { assessCluster } from "./safety.js";
import { topologyProblems, upstreamOf, withPrimary } from "../inventory/topology.js";
import { lsnValue } from "../common/lsn.js";
import { sqlLiteral } from "../common/sql.js";

export interface SwitchoverOptions extends OperationOptions {
  to: string;
  /** How far behind the target may be when the switchover starts (bytes of WAL). */
  maxLagBytes: number;
  /** Bound on waiting for the target to receive the old primary's last WAL. */
  catchUpTimeoutMs: number;
}

export interface SwitchoverResult {
  newPrimary: string;
  oldPrimary: string;
  /** Seconds during which no server accepted writes. */
  writeWindowSeconds: number;
  inventoryChanges: string[];
  failed: boolean;
}

/** Undefined after a dry run: every check passed, and nothing was changed. */
export async function switchover(inventory: Inventory, playbook: Playbook, options: SwitchoverOptions): Promise<SwitchoverResult | undefined> {
  const oldPrimary = inventory.primary;
  const target = inventory.hosts.find((h) => h.name === options.to);
  if (!target) throw new PgprovError(`--to: no host named "${options.to}" in the inventory`);
  if (target === oldPrimary) throw new PgprovError(`${target.name} is already the primary`);

  const op = await ClusterOperation.open(inventory, "switchover", options);
  try {
    for (const h of inventory.hosts) {
      if (!op.reachable(h)) throw new PgprovError(`a switchover needs every server: ${h.name} cannot be reached (${op.unreachableReason(h)}); if the primary is gone, that is a failover`);
    }
    // What apply would refuse after the promotion (a host fenced by a failover, say), refused now.
    const states = new Map(await Promise.all(inventory.hosts.map(async (h) => [h.name, await op.dataDirectory(h)] as const)));
    const { problems } = assessCluster(inventory, states);
    if (problems.length) throw new PgprovError(`refusing to switch over: ${problems.join("\n")}`);

    // The inventory the switchover leaves must be one pgprov accepts (no cascade of two levels, a
    // synchronous count the new primary's standbys can meet).
    const after = topologyProblems(withPrimary(inventory.hosts, target.name), inventory.replication.synchronous);
    if (after.length) throw new PgprovError(`refusing to switch over: with ${target.name} the primary, the inventory would be wrong: ${after.map((p) => p.message).join("; ")}. Nothing was changed`);

    // 1. The target streams (from its upstream: a cascading standby from a standby), and is close
    //    enough to catch up at once.
    const [primaryRow] = await op.sql(oldPrimary, "select pg_is_in_recovery() as in_recovery, pg_current_wal_lsn()::text as lsn");
    if (primaryRow?.in_recovery !== false) throw new PgprovError(`${oldPrimary.name}, the inventory's primary, is not a writable primary; see \`pgprov status\``);
    const upstream = upstreamOf(inventory.hosts, target)!;
    const seen = await op.sql(upstream, `select state, sync_state, replay_lsn::text as replay from pg_stat_replication where application_name = ${sqlLiteral(target.name)}`);
    if (seen[0]?.state !== "streaming") throw new PgprovError(`${target.name} does not stream from ${upstream.name} (${String(seen[0]?.state ?? "not connected")}); refusing to switch over`);
    const replayed = lsnValue(String(seen[0].replay ?? "0/0"));
    const lag = Math.max(0, Number(lsnValue(String(primaryRow.lsn)) - replayed));
    if (lag > options.maxLagBytes) throw new PgprovError(`${target.name} is ${lag} bytes behind ${oldPrimary.name}, more than the ${options.maxLagBytes} allowed (--max-lag); try again when it has caught up`);
    op.step(`${target.name} streams from ${upstream.name}, ${lag} bytes behind ${oldPrimary.name}`);
    if (inventory.replication.synchronous && seen[0].sync_state !== "sync" && seen[0].sync_state !== "quorum") {
      op.step(
        `${target.name} is an asynchronous standby (sync_state ${String(seen[0].sync_state)}${upstream !== oldPrimary ? `, cascading from ${upstream.name}` : ""}): ` +
          `the switchover waits until it has everything, so nothing is lost, but it was not one of the standbys commits waited for`,
      );
    }
    const proceed = await op.proceed({ oldPrimary: oldPrimary.name, target: target.name, targetLagBytes: lag, maxLagBytes: options.maxLagBytes }, [
      `stop ${oldPrimary.name} cleanly and mark it a standby (standby.signal): from here no server accepts writes`,
      `wait (at most ${options.catchUpTimeoutMs / 1000} s) until ${target.name} has received ${oldPrimary.name}'s WAL up to its shutdown checkpoint; if it does not, start ${oldPrimary.name} again as the primary, changing nothing`,
      `promote ${target.name}: writes are accepted again`,
      `rewrite the inventory's roles: ${oldPrimary.name} standby, ${target.name} primary`,
      `run the cluster playbook: every standby follows ${target.name}, slots follow, all must stream`,
    ]);
    if (!proceed) return undefined;

    // 2. The old primary shuts down cleanly: from here, no server accepts writes. It is marked a
    //    standby before anything is promoted, so that if pgprov dies from here on, however it
    //    starts again (a reboot: its service is enabled) it comes back read-only.
    await op.stopServer(oldPrimary);
    const windowStarts = op.elapsed();
    await op.writeStandbySignal(oldPrimary);
    const shutdownLsn = await op.checkpointLsn(oldPrimary);
    op.step(`stopped ${oldPrimary.name} cleanly and marked it a standby (standby.signal); its last WAL record, the shutdown checkpoint, is at ${shutdownLsn}`);

    // 3. The target has received everything up to that record, or nothing is promoted.
    try {
      await op.waitFor(`${target.name} to receive ${oldPrimary.name}'s WAL up to ${shutdownLsn}`, options.catchUpTimeoutMs, async () => {
        const [r] = await op.sql(target, `select pg_last_wal_receive_lsn()::text as lsn, pg_wal_lsn_diff(pg_last_wal_receive_lsn(), '${shutdownLsn}') > 0 as done`);
        return { done: r?.done === true, seen: `received up to ${String(r?.lsn)}` };
      });
    } catch (e) {
      const service = (await op.pathsOf(oldPrimary)).service;
      await giveBack(oldPrimary.name, service, { removeStandbySignal: () => op.removeStandbySignal(oldPrimary), start: () => op.startServer(oldPrimary) }, e as Error);
      op.step(`started ${oldPrimary.name} again as the primary: nothing was changed`);
      throw e;
    }
    op.step(`${target.name} has received everything up to ${oldPrimary.name}'s shutdown checkpoint`);

    // 4. Promote the target: writes are accepted again.
    try {
      await op.promote(target);
    } catch (e) {
      // The promotion may still finish: the old primary stays stopped and marked a standby.
      throw new PgprovError(`${(e as Error).message}. ${oldPrimary.name} stays stopped and marked a standby, so at most ${target.name} accepts writes; see \`pgprov status\`, and set the inventory's roles to what it shows`);
    }
    const window = op.elapsed() - windowStarts;
    op.step(`promoted ${target.name}; no server accepted writes for ${window.toFixed(2)} s`);
    crashPoint("switchover:promoted");

    // 5. The old primary (a standby already) follows the new one; it holds nothing the new one lacks.
    const inventoryChanges = rewriteRoles(inventory, { [target.name]: "primary", [oldPrimary.name]: "standby" });
    op.step(`inventory ${inventory.file}: ${inventoryChanges.join(", ")}`);

    // 6-8. Every standby points at the new primary, slots follow, and all must stream.
    const summary = await reconfigure(inventory, playbook, op, options.emit);
    op.step(summary.failed ? "the cluster playbook failed: see above" : "every standby streams from the new primary");
    return { newPrimary: target.name, oldPrimary: oldPrimary.name, writeWindowSeconds: window, inventoryChanges, failed: summary.failed };
  } finally {
    await op.close();
  }
}

/**
 * A switchover that gives up before promoting anything starts the old primary again, writable.
 * If that fails too, no server accepts writes: the error says so, keeps both causes, and says how
 * to recover, since the original error alone would hide that the cluster has no primary.
 */
export async function giveBack(
  name: string,
  service: string,
  steps: { removeStandbySignal: () => Promise<void>; start: () => Promise<void> },
  original: Error,
): Promise<void> {
  let removed = false;
  try {
    await steps.removeStandbySignal();
    removed = true;
    await steps.start();
  } catch (e) {
    const state = removed
      ? `${name} is stopped (standby.signal was removed, but PostgreSQL did not start)`
      : `${name} is stopped and still marked a standby (standby.signal could not be removed)`;
    throw new PgprovError(
      `${original.message}. Starting ${name} again as the primary then failed: ${(e as Error).message}. ` +
        `No server accepts writes now: nothing was promoted, and ${state}. To recover: on ${name}, ` +
        `${removed ? "" : "remove standby.signal from its data directory, then "}run \`systemctl start ${service}\` and read its journal if it fails; \`pgprov status\` shows the result`,
    );
  }
}

/** Runs the cluster playbook on the operation's connections: configuration, slots, streaming. */
export async function reconfigure(inventory: Inventory, playbook: Playbook, op: ClusterOperation, emit: Emit, exclude: Host[] = []) {
  return applyCluster(inventory, playbook, {
    reached: op.connections,
    exclude: exclude.map((h) => h.name),
    emit,
  });
}
