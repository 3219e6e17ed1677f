/**
 * A secret from the inventory: read from an environment variable or a file, never written in
 * the inventory itself. It cannot become text by accident: toString, JSON and util.inspect all
 * give the mask, so logging an inventory or an event never leaks it. Only `reveal()` gives the
 * value, for the few places that must send it to a host (on stdin, never in arguments). Every
 * Secret made is masked in all the CLI prints (see redact.ts).
 */
import { inspect } from "node:util";
import { loadedSecrets, MASK } from "./redact.js";

export class Secret {
  readonly #value: string;

  constructor(value: string, readonly source: string) {
    this.#value = value;
    loadedSecrets.add(value);
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return MASK;
  }

  toJSON(): string {
    return MASK;
  }

  [inspect.custom](): string {
    return `Secret(${this.source})`;
  }
}
