/**
 * What pgprov remembers between runs, on the control machine (the caller says where: next to the
 * inventory): handlers notified but not yet run (a failed run must not lose them), each host's
 * facts (so a no-op run needs no separate round trip to learn them), and the values each host's
 * tasks registered (the guesses that let a converged run read every play in one round trip; known
 * secrets masked). Written atomically, mode 0600.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Facts } from "./facts.js";

interface StateFile {
  facts: Record<string, { address: string; facts: Facts }>;
  /** play key -> host -> handler names, in notification order. */
  pendingHandlers: Record<string, Record<string, string[]>>;
  /** playbook file -> host -> registered values of the last run. */
  registered: Record<string, Record<string, Record<string, unknown>>>;
}

export class RunState {
  private data: StateFile;

  /**
   * `readOnly` for a --check run: it takes no lock on the hosts, so it may run beside a run that
   * changes them; writing back what it read at its start would undo what that run recorded since
   * (a pending handler). What it learns serves the rest of its own run only.
   */
  constructor(
    readonly path: string,
    private readonly readOnly = false,
  ) {
    const read = existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as Partial<StateFile>) : {};
    this.data = { facts: read.facts ?? {}, pendingHandlers: read.pendingHandlers ?? {}, registered: read.registered ?? {} };
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

  /** What a host's tasks registered in the last run of a playbook: guesses, checked before use. */
  registered(playbook: string, host: string): Record<string, unknown> {
    return this.data.registered[playbook]?.[host] ?? {};
  }

  setRegistered(playbook: string, host: string, values: Record<string, unknown>): void {
    const previous = JSON.stringify(this.data.registered[playbook]?.[host] ?? {});
    if (JSON.stringify(values) === previous) return;
    (this.data.registered[playbook] ??= {})[host] = values;
    this.save();
  }

  private save(): void {
    if (this.readOnly) return;
    mkdirSync(join(this.path, ".."), { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(this.data, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, this.path);
  }
}
