/**
 * Operations that can lose data or make a host unavailable (failover, rejoin, apply --reclone)
 * ask a person at a terminal (stdin, and stderr where the question goes); a script says --yes.
 * Without one and without --yes they refuse before connecting to anything: a cron job never
 * fails over because nobody answered, and a command never waits on a question nobody sees.
 */
import { createInterface } from "node:readline/promises";
import { PgprovError } from "../common/errors.js";
import { printError } from "./print.js";

/** Undefined when no question is to be asked (--yes, or a dry run); refuses when nobody could answer. */
export function confirmation(what: string, options: { yes: boolean; dryRun?: boolean }): ((question: string) => Promise<boolean>) | undefined {
  if (options.yes || options.dryRun) return undefined;
  // The question goes to stderr: redirected to a file, nobody sees it and the command would wait forever.
  const notTerminal = !process.stdin.isTTY ? "stdin is not a terminal" : !process.stderr.isTTY ? "stderr is not a terminal (the question is asked there)" : undefined;
  if (notTerminal) {
    throw new PgprovError(`${what} asks for confirmation, and ${notTerminal}: pass --yes to go ahead without asking${options.dryRun === undefined ? "" : " (--dry-run shows what it would do)"}; nothing was changed`);
  }
  return ask;
}

/** On stderr: stdout is the command's output, JSON lines only under --json. */
async function ask(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    printError("\n");
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}
