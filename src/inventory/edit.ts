/**
 * Keeping the inventory the source of truth: after a switchover or a failover, the `role:` fields
 * are rewritten in the file itself. The yaml library finds each role's scalar and its place in the
 * text, and only those characters change: comments, key order and layout stay byte for byte.
 * The file is replaced atomically; when the inventory is a symbolic link, its target is (the link
 * stays, and keeps pointing at the file that now holds the new roles).
 */
import { chmodSync, readFileSync, realpathSync, renameSync, statSync, writeFileSync } from "node:fs";
import { isScalar, parseDocument } from "yaml";
import { PgprovError } from "../common/errors.js";
import type { Inventory, Role } from "./inventory.js";

/** Sets each named host's role; returns what changed ("pg1: primary -> standby"), in host order. */
export function rewriteRoles(inventory: Inventory, roles: Record<string, Role>): string[] {
  let text = readFileSync(inventory.file, "utf8");
  const doc = parseDocument(text);
  const changes: string[] = [];
  const edits: { from: number; to: number; role: Role }[] = [];
  for (const host of inventory.hosts) {
    const role = roles[host.name];
    if (!role || role === host.role) continue;
    const node = doc.getIn(["hosts", host.name, "role"], true);
    if (!isScalar(node) || !node.range) throw new PgprovError(`${inventory.file}: cannot find hosts.${host.name}.role to rewrite`);
    edits.push({ from: node.range[0], to: node.range[1], role });
    changes.push(`${host.name}: ${host.role} -> ${role}`);
  }
  if (changes.length === 0) return [];
  for (const edit of edits.sort((a, b) => b.from - a.from)) text = text.slice(0, edit.from) + edit.role + text.slice(edit.to);
  const file = realpathSync(inventory.file);
  const tmp = `${file}.pgprov-${process.pid}`;
  const mode = statSync(file).mode & 0o7777;
  writeFileSync(tmp, text, { mode });
  chmodSync(tmp, mode); // the mode exactly, whatever the umask
  renameSync(tmp, file);
  for (const host of inventory.hosts) if (roles[host.name]) host.role = roles[host.name]!;
  inventory.primary = inventory.hosts.find((h) => h.role === "primary")!;
  inventory.standbys = inventory.hosts.filter((h) => h.role === "standby");
  return changes;
}
