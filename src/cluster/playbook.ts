/**
 * The cluster's playbooks: the modules bound to the inventory (PostgreSQL's port, the apt proxy),
 * the hosts as the engine's targets with their groups (`primary`, `standbys`), and loading a
 * playbook against them.
 */
import type { Module } from "../engine/module.js";
import { FACT_KEYS } from "../engine/facts.js";
import type { Target } from "../engine/targets.js";
import type { BackupHost, Host, Inventory } from "../inventory/inventory.js";
import { genericModules } from "../modules/index.js";
import { tlsCertificate } from "../modules/certificate.js";
import { postgresModules } from "../postgres/index.js";
import { loadPlaybook, type Playbook as PlaybookOf, playbookFromSnapshot, type PlaybookScope, snapshotPlaybook, type PlaybookSnapshot } from "../playbook/playbook.js";
import { BUNDLED_SNAPSHOT } from "./playbook-snapshot.js";
import { BUILTIN_VARIABLES, variableNames } from "./variables.js";

export type Playbook = PlaybookOf<Module>;

/** `backup`: the pgBackRest repository host (no PostgreSQL server on it). */
export const CLUSTER_GROUPS = ["primary", "standbys", "backup"] as const;

export function clusterModules(inventory: Pick<Inventory, "aptProxy" | "postgresql" | "tls">) {
  return {
    ...genericModules(inventory.aptProxy ? { apt: { proxy: inventory.aptProxy } } : {}),
    ...postgresModules({ port: inventory.postgresql.port }),
    // The CA as the run has it: loaded with the inventory, or made when apply starts.
    tls_certificate: tlsCertificate(() => inventory.tls.authority),
  };
}

export type ClusterModules = ReturnType<typeof clusterModules>;

/** A cluster playbook: the modules and names it may use are the inventory's. */
export interface ClusterPlaybook extends Playbook {
  modules: ClusterModules;
}

function scope(modules: Record<string, Module>, hostNames: string[], variables: string[]): PlaybookScope<Module> {
  return { modules, hostNames, groups: CLUSTER_GROUPS, variables, reserved: BUILTIN_VARIABLES, factKeys: FACT_KEYS };
}

export function loadClusterPlaybook(file: string, inventory: Inventory, snapshot: PlaybookSnapshot | undefined = BUNDLED_SNAPSHOT): ClusterPlaybook {
  const modules = clusterModules(inventory);
  const hostNames = [...inventory.hosts, ...(inventory.backup?.host ? [inventory.backup.host] : [])].map((h) => h.name);
  const bound = scope(modules, hostNames, variableNames(inventory));
  const playbook = (snapshot && playbookFromSnapshot(snapshot, file, bound)) || loadPlaybook(file, bound);
  return { ...playbook, modules };
}

/**
 * The snapshot of a cluster playbook that any inventory binds (scripts/build.mjs makes the
 * bundled playbook's): pgprov's own variables only, hosts named by group only.
 */
export function snapshotClusterPlaybook(file: string): PlaybookSnapshot {
  const modules = clusterModules({ postgresql: { port: 5432 } as Inventory["postgresql"], tls: { enabled: false } as Inventory["tls"] });
  return snapshotPlaybook(file, scope(modules, [], [...BUILTIN_VARIABLES]));
}

/** A host as the engine sees it. */
export function targetOf<H extends Host | BackupHost>(host: H): Target & { host: H } {
  return { name: host.name, address: host.address, groups: [host.role === "primary" ? "primary" : host.role === "backup" ? "backup" : "standbys"], host };
}
