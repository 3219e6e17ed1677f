/**
 * The cluster's playbooks: the modules bound to the inventory (PostgreSQL's port, the apt proxy),
 * the hosts as the engine's targets with their groups (`primary`, `standbys`), and loading a
 * playbook against them.
 */
import type { Module } from "../engine/module.js";
import { FACT_KEYS } from "../engine/facts.js";
import type { Target } from "../engine/targets.js";
import type { Host, Inventory } from "../inventory/inventory.js";
import { genericModules } from "../modules/index.js";
import { tlsCertificate } from "../modules/certificate.js";
import { postgresModules } from "../postgres/index.js";
import { loadPlaybook, type Playbook as PlaybookOf } from "../playbook/playbook.js";
import { BUILTIN_VARIABLES, variableNames } from "./variables.js";

export type Playbook = PlaybookOf<Module>;

export const CLUSTER_GROUPS = ["primary", "standbys"] as const;

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
    hostNames: inventory.hosts.map((h) => h.name),
    groups: CLUSTER_GROUPS,
    variables: variableNames(inventory),
    reserved: BUILTIN_VARIABLES,
    factKeys: FACT_KEYS,
  });
  return { ...playbook, modules };
}

/** A host as the engine sees it. */
export function targetOf(host: Host): Target & { host: Host } {
  return { name: host.name, address: host.address, groups: [host.role === "primary" ? "primary" : "standbys"], host };
}
