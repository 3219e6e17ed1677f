/**
 * The variables a host's templates see, from lowest to highest precedence: the inventory's
 * `vars`, the host's `vars`, then pgprov's own (host, hosts, primary, standbys, facts), then
 * values registered by earlier tasks. pgprov's own names cannot be overridden by accident:
 * the playbook loader rejects a `register` that would shadow them.
 */
import type { Host, Inventory } from "../inventory/inventory.js";
import { Secret } from "../inventory/secret.js";
import { FACT_KEYS, type Facts } from "./facts.js";

export const BUILTIN_VARIABLES = ["host", "hosts", "primary", "standbys", "facts"] as const;

function describe(host: Host) {
  return { name: host.name, address: host.address, role: host.role };
}

export function hostVariables(
  inventory: Inventory,
  host: Host,
  facts: Facts | undefined,
  registered: Record<string, unknown>,
): Record<string, unknown> {
  return {
    ...(reveal(inventory.vars) as Record<string, unknown>),
    ...(reveal(host.vars) as Record<string, unknown>),
    host: describe(host),
    hosts: inventory.hosts.map(describe),
    primary: describe(inventory.primary),
    standbys: inventory.standbys.map(describe),
    facts: facts ?? Object.fromEntries(FACT_KEYS.map((k) => [k, ""])),
    ...registered,
  };
}

/** Names every host's templates can use, for checking a playbook before connecting. */
export function variableNames(inventory: Inventory): string[] {
  const perHost = inventory.hosts.map((h) => new Set(Object.keys(h.vars)));
  // A host variable counts only when every host has it: otherwise some host would fail to render.
  const onEveryHost = [...(perHost[0] ?? [])].filter((name) => perHost.every((s) => s.has(name)));
  return [...new Set([...Object.keys(inventory.vars), ...onEveryHost, ...BUILTIN_VARIABLES])];
}

/** Templates render secrets' real values (into files sent on stdin); output masks them again. */
function reveal(value: unknown): unknown {
  if (value instanceof Secret) return value.reveal();
  if (Array.isArray(value)) return value.map(reveal);
  if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, reveal(v)]));
  return value;
}
