/**
 * Everything the CLI prints goes through here, masked with every secret the process has loaded
 * (engine/redact.ts): the engine's events are masked already, but error messages, an operation's
 * steps and status lines are built elsewhere, and may quote a host's stderr.
 */
import { loadedSecrets } from "../common/redact.js";

export function print(text: string): void {
  process.stdout.write(loadedSecrets.text(text));
}

export function printError(text: string): void {
  process.stderr.write(loadedSecrets.text(text));
}
