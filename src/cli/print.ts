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
 */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(loadedSecrets.value(value))}\n`);
}

export function printError(text: string): void {
  process.stderr.write(loadedSecrets.text(text));
}

