/**
 * The hosts a run works on, as the engine sees them: a name, an address, and the groups a play
 * may select them by. The cluster layer makes them from the inventory (groups `primary` and
 * `standbys`); the engine knows no group by name but `all`.
 */
import type { Play, Playbook, TaskModule } from "../playbook/playbook.js";
import type { Module } from "./module.js";

export interface Target {
  name: string;
  address: string;
  groups: readonly string[];
}

export interface Selection {
  /** Only these hosts (names), for plays that change anything. */
  limit?: string[];
  /** Hosts not touched at all, not even read: known to be down (a failed primary, fenced). */
  exclude?: string[];
}

/** The hosts a play names: `all`, a group, or a host's name. */
export function selectTargets<T extends Target>(play: Play<TaskModule>, targets: readonly T[]): T[] {
  return targets.filter((t) => play.hosts.some((sel) => sel === "all" || sel === t.name || t.groups.includes(sel)));
}

/** The hosts a play runs on: its selection, within --limit (unless it only reads), less excluded ones. */
export function playTargets<T extends Target>(play: Play<Module>, targets: readonly T[], selection: Selection): T[] {
  return selectTargets(play, targets).filter(
    (t) => !selection.exclude?.includes(t.name) && (isReadOnly(play) || !selection.limit || selection.limit.includes(t.name)),
  );
}

/** Every host some play of the run touches: the ones to connect to. */
export function hostsUsed<T extends Target>(targets: readonly T[], playbook: Playbook<Module>, selection: Selection): T[] {
  return targets.filter((t) => playbook.plays.some((p) => playTargets(p, targets, selection).includes(t)));
}

/** A play of read-only tasks (the cluster's safety reads) runs on all its hosts, whatever --limit says. */
export function isReadOnly(play: Play<Module>): boolean {
  return play.tasks.length > 0 && play.tasks.every((t) => t.module.readOnly === true);
}
