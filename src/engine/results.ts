/**
 * What each task read, typed by its module: `results.of(pgDataDirectory)` is a map from host name
 * to what that module's `decide` returned as its value. Code above the engine finds the reads it
 * relies on by module, not by a name a playbook happens to register, and gets them typed.
 */
import type { Module } from "./module.js";

export class RunResults {
  private readonly values = new Map<Module, Map<string, unknown>>();

  /** The last value each host's tasks of `module` returned. */
  of<Value>(module: Module<any, Value>): ReadonlyMap<string, Value> {
    // Only record() writes here, under the module that produced the value: the type holds.
    return (this.values.get(module) ?? new Map()) as ReadonlyMap<string, Value>;
  }

  record<Value>(module: Module<any, Value>, host: string, value: Value): void {
    let byHost = this.values.get(module);
    if (!byHost) this.values.set(module, (byHost = new Map()));
    byHost.set(host, value);
  }
}
