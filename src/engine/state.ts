/**
 * What pgprov remembers between runs, on the control machine, next to the inventory:
 * handlers notified but not yet run (a failed run must not lose them) and each host's facts
 * (so a no-op run needs no separate round trip to learn them). Written atomically, mode 0600.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Inventory, stateFile } from "../inventory/inventory.js";
import type { Facts } from "./facts.js";

interface StateFile {
  facts: Record<string, { address: string; facts: Facts }>;
  /** play key -> host -> handler names, in notification order. */
  pendingHandlers: Record<string, Record<string, string[]>>;
}

export class RunState {
  private data: StateFile;

  constructor(readonly path: string) {
    this.data = existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as StateFile) : { facts: {}, pendingHandlers: {} };
    this.data.facts ??= {};
    this.data.pendingHandlers ??= {};
  }

  static forInventory(inventory: Inventory): RunState {
    return new RunState(stateFile(inventory, "state.json"));
  }

  facts(host: string, address: string): Facts | undefined {
    const entry = this.data.facts[host];
    return entry?.address === address ? entry.facts : undefined;
  }

  setFacts(host: string, address: string, facts: Facts): void {
    this.data.facts[host] = { address, facts };
    this.save();
  }

  pendingHandlers(playKey: string, host: string): string[] {
    return this.data.pendingHandlers[playKey]?.[host] ?? [];
  }

  /** Records a notification at once, before anything else can fail. */
  addPendingHandler(playKey: string, host: string, handler: string): void {
    const play = (this.data.pendingHandlers[playKey] ??= {});
    const list = (play[host] ??= []);
    if (!list.includes(handler)) {
      list.push(handler);
      this.save();
    }
  }

  handlerDone(playKey: string, host: string, handler: string): void {
    const list = this.data.pendingHandlers[playKey]?.[host];
    if (!list?.includes(handler)) return;
    this.data.pendingHandlers[playKey]![host] = list.filter((h) => h !== handler);
    if (this.data.pendingHandlers[playKey]![host]!.length === 0) delete this.data.pendingHandlers[playKey]![host];
    if (Object.keys(this.data.pendingHandlers[playKey]!).length === 0) delete this.data.pendingHandlers[playKey];
    this.save();
  }

  private save(): void {
    mkdirSync(join(this.path, ".."), { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(this.data, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, this.path);
  }
}
