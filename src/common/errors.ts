/**
 * The one error type pgprov shows to users. Its message is complete and readable on its own
 * (what is wrong, and where), so the CLI prints it without a stack trace.
 */
export class PgprovError extends Error {
  override readonly name: string = "PgprovError";
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}

/**
 * A host's error without its leading "host NAME: ", for a report that already says which host
 * (a status row, a check finding, a ping line).
 */
export function withoutHostPrefix(message: string): string {
  return message.replace(/^host \S+: /, "");
}

/** Errors in a file the user wrote (inventory, playbook): each line is `file:line:col: message`. */
export class FileError extends PgprovError {
  override readonly name = "FileError";
  /** `others`: problems that name their place in their own words (a ProxyJump cycle), after the positioned ones. */
  constructor(
    readonly problems: SourceProblem[],
    readonly others: string[] = [],
  ) {
    super([...problems.map(formatProblem), ...others].join("\n"));
  }
}

export interface SourceProblem {
  file: string;
  line: number;
  col: number;
  message: string;
}

export function formatProblem(p: SourceProblem): string {
  return `${p.file}:${p.line}:${p.col}: ${p.message}`;
}
