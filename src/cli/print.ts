/**
 * Everything the CLI prints goes through here, masked with every secret the process has loaded
 * (engine/redact.ts): the engine's events are masked already, but error messages, an operation's
 * steps and status lines are built elsewhere, and may quote a host's stderr.
 */
import { loadedSecrets } from "../common/redact.js";

export function print(text: string): void {
  process.stdout.write(loadedSecrets.text(text));
}

/**
 * One JSON object per line, masked value by value before it is serialised: masking the serialised
 * text would also hit keys and escapes when a secret is short (`e`, `"`, `true`), and break the line.
 * Keys are snake_case in every command's output, whatever the TypeScript names (see jsonKeys).
 */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(jsonKeys(loadedSecrets.value(value)))}\n`);
}

/**
 * pgprov's own keys in snake_case (`lagBytes` -> `lag_bytes`), recursively, so that a script reads
 * one style from status, check, apply and the operations alike. A record keyed by host names (the
 * recap's `hosts`) keeps its keys: they are names from the inventory, not pgprov's.
 */
export function jsonKeys(value: unknown, keyedByName = false): unknown {
  if (Array.isArray(value)) return value.map((v) => jsonKeys(v));
  // A Date is a value, not a record of keys (Object.entries would make it {}).
  if (value instanceof Date) return value.toISOString();
  if (!value || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [keyedByName ? k : snakeCase(k), jsonKeys(v, k === "hosts" && !!v && typeof v === "object" && !Array.isArray(v))]),
  );
}

function snakeCase(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toLowerCase();
}

export function printError(text: string): void {
  process.stderr.write(loadedSecrets.text(text));
}

