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
import { loadPlaybook, type Playbook as PlaybookOf } from "../playbook/playbook.js";
import { BUILTIN_VARIABLES, variableNames } from "./variables.js";

export type Playbook = PlaybookOf<Module>;

/** `backup`: the pgBackRest repository host (no PostgreSQL server on it). */
export const CLUSTER_GROUPS = ["primary", "standbys", "backup"] as const;

export function clusterModules(inventory: Inventory) {
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

export function loadClusterPlaybook(file: string, inventory: Inventory): ClusterPlaybook {
  const modules = clusterModules(inventory);
  const playbook = loadPlaybook<Module>(file, {
    modules,
    hostNames: [...inventory.hosts, ...(inventory.backup?.host ? [inventory.backup.host] : [])].map((h) => h.name),
    groups: CLUSTER_GROUPS,
    variables: variableNames(inventory),
    reserved: BUILTIN_VARIABLES,
    factKeys: FACT_KEYS,
  });
  return { ...playbook, modules };
}

/** A host as the engine sees it. */
export function targetOf<H extends Host | BackupHost>(host: H): Target & { host: H } {
  return { name: host.name, address: host.address, groups: [host.role === "primary" ? "primary" : host.role === "backup" ? "backup" : "standbys"], host };
}
