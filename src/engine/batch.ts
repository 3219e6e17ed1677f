/**
 * Many small remote steps, one round trip: a batch is one shell script made of sections, each
 * with its own stdout, stderr and exit code, split apart again on the control machine. The
 * markers carry a random nonce, so no output a section prints can be mistaken for one.
 */
import { randomBytes } from "node:crypto";

export interface Section {
  script: string;
  /** Run with `set -e`, and stop the batch when this section fails (acts do; probes do not). */
  stopOnFailure?: boolean;
  /** Killed after this long (exit code 124, as coreutils' timeout reports it). */
  timeoutSeconds?: number;
}

/** The exit code of a section that ran out of time. */
export const TIMED_OUT = 124;

export interface SectionResult {
  /** False when an earlier section stopped the batch before this one. */
  ran: boolean;
  code: number;
  stdout: string;
  stderr: string;
}

export function newNonce(): string {
  return randomBytes(6).toString("hex");
}

/**
 * No section is ever written to a file: the script travels on the remote shell's stdin and stays
 * in its memory, and a section with a time limit reaches `sh` through a here-document on a file
 * descriptor (a pipe in dash), so a run killed at any moment leaves no script (which may hold a
 * secret) on the host. Each section's stderr goes to the channel's stderr between markers of its
 * own, so no temporary file is needed for it either.
 */
export function buildBatch(sections: Section[], nonce: string): string {
  const lines: string[] = [];
  sections.forEach((section, i) => {
    // An empty subshell is a syntax error in sh, which would sink the whole batch.
    const script = section.script.trim() ? section.script : ":";
    const body = section.stopOnFailure ? `set -e\n${script}` : script;
    lines.push(`printf '@@${nonce}:${i}:out\\n'; printf '@@${nonce}:${i}:err\\n' >&2`);
    if (section.timeoutSeconds) {
      // coreutils' timeout needs a program to run: `sh` reads the section from fd 3, which it
      // opens anew, so the section closes fd 3 first and no command it runs can read itself.
      lines.push(`timeout -k 5 ${section.timeoutSeconds} sh /dev/fd/3 </dev/null 3<<'PGPROV_SECTION_${nonce}'\nexec 3<&-\n${body}\nPGPROV_SECTION_${nonce}`);
    } else {
      // A subshell keeps a section's `exit`, `cd` and variables to itself; stdin is closed so no
      // command can read what follows.
      lines.push(`(\n${body}\n) </dev/null`);
    }
    lines.push(`__pgprov_rc=$?`, `printf '\\n@@${nonce}:${i}:end:%s\\n' "$__pgprov_rc"; printf '\\n@@${nonce}:${i}:end\\n' >&2`);
    if (section.stopOnFailure) lines.push(`[ "$__pgprov_rc" -eq 0 ] || exit "$__pgprov_rc"`);
  });
  return lines.join("\n");
}

export function parseBatch(output: { stdout: string; stderr: string }, nonce: string, count: number): SectionResult[] {
  const results: SectionResult[] = [];
  let from = 0;
  let errFrom = 0;
  for (let i = 0; i < count; i++) {
    const start = output.stdout.indexOf(`@@${nonce}:${i}:out\n`, from);
    if (start < 0) break;
    const outStart = start + `@@${nonce}:${i}:out\n`.length;
    // This section's stderr, between its two markers there (all that came, if the shell died).
    const errStart = output.stderr.indexOf(`@@${nonce}:${i}:err\n`, errFrom);
    const errEnd = errStart < 0 ? -1 : output.stderr.indexOf(`\n@@${nonce}:${i}:end\n`, errStart);
    const stderr = errStart < 0 ? "" : output.stderr.slice(errStart + `@@${nonce}:${i}:err\n`.length, errEnd < 0 ? undefined : errEnd);
    if (errEnd >= 0) errFrom = errEnd;
    const endMarker = output.stdout.indexOf(`\n@@${nonce}:${i}:end:`, outStart);
    if (endMarker < 0) {
      // The connection or the shell died inside this section.
      results.push({ ran: true, code: -1, stdout: output.stdout.slice(outStart), stderr });
      break;
    }
    const rcLineEnd = output.stdout.indexOf("\n", endMarker + 1);
    const code = Number(output.stdout.slice(endMarker + `\n@@${nonce}:${i}:end:`.length, rcLineEnd));
    results.push({ ran: true, code, stdout: output.stdout.slice(outStart, endMarker), stderr });
    from = rcLineEnd;
  }
  while (results.length < count) results.push({ ran: false, code: -1, stdout: "", stderr: "" });
  return results;
}
