import { endedCaWarning, type Inventory, loadInventory } from "../inventory/inventory.js";
import { printError } from "./print.js";

/**
 * The inventory, with what pgprov read but does not honour (an ssh option that would weaken host
 * key checking, an option unknown to OpenSSH) said on stderr, each with its file and line; and
 * pgprov's own CA once it has ended (it loads, for apply to renew it, so every command says so).
 */
export function loadInventoryWarning(file: string): Inventory {
  const inventory = loadInventory(file);
  for (const w of inventory.ssh.warnings) printError(`pgprov: warning: ${w.file}:${w.line}: ${w.message}\n`);
  const ended = endedCaWarning(inventory);
  if (ended) printError(`pgprov: warning: ${ended}\n`);
  return inventory;
}
