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

export function buildBatch(sections: Section[], nonce: string): string {
  const lines = [
    `__pgprov_d=$(mktemp -d) || exit 90`,
    `trap 'rm -rf "$__pgprov_d"' EXIT`,
    // A shell killed by a signal runs no EXIT trap; the host ends a script with TERM when its
    // connection is gone (see transport/remote-shell.sh), and the directory must go too.
    `trap 'exit 143' TERM; trap 'exit 130' INT; trap 'exit 129' HUP`,
    `__pgprov_err="$__pgprov_d/stderr"`,
  ];
  sections.forEach((section, i) => {
    // An empty subshell is a syntax error in sh, which would sink the whole batch.
    const script = section.script.trim() ? section.script : ":";
    const body = section.stopOnFailure ? `set -e\n${script}` : script;
    lines.push(`printf '@@${nonce}:${i}:out\\n'`);
    if (section.timeoutSeconds) {
      // coreutils' timeout needs a program to run: the section goes into a file of mode 0600 in
      // a private directory (never into an argument), and `sh` runs it.
      lines.push(
        `(umask 077 && cat > "$__pgprov_d/${i}.sh") <<'PGPROV_SECTION_${nonce}'\n${body}\nPGPROV_SECTION_${nonce}`,
        `timeout -k 5 ${section.timeoutSeconds} sh "$__pgprov_d/${i}.sh" 2>"$__pgprov_err" </dev/null`,
      );
    } else {
      // A subshell keeps a section's `exit`, `cd` and variables to itself; stdin is closed so no
      // command can read what follows.
      lines.push(`(\n${body}\n) 2>"$__pgprov_err" </dev/null`);
    }
    lines.push(
      `__pgprov_rc=$?`,
      `printf '\\n@@${nonce}:${i}:err:%s\\n' "$__pgprov_rc"`,
      // Most sections print no stderr: test first, and spare a process per section.
      `[ ! -s "$__pgprov_err" ] || cat "$__pgprov_err"`,
      `printf '\\n@@${nonce}:${i}:end\\n'`,
    );
    if (section.stopOnFailure) lines.push(`[ "$__pgprov_rc" -eq 0 ] || exit "$__pgprov_rc"`);
  });
  return lines.join("\n");
}

export function parseBatch(output: string, nonce: string, count: number): SectionResult[] {
  const results: SectionResult[] = [];
  let from = 0;
  for (let i = 0; i < count; i++) {
    const start = output.indexOf(`@@${nonce}:${i}:out\n`, from);
    if (start < 0) {
      results.push({ ran: false, code: -1, stdout: "", stderr: "" });
      continue;
    }
    const outStart = start + `@@${nonce}:${i}:out\n`.length;
    const errMarker = output.indexOf(`\n@@${nonce}:${i}:err:`, outStart);
    const endMarker = errMarker < 0 ? -1 : output.indexOf(`\n@@${nonce}:${i}:end\n`, errMarker);
    if (errMarker < 0 || endMarker < 0) {
      // The connection or the shell died inside this section.
      results.push({ ran: true, code: -1, stdout: output.slice(outStart), stderr: "" });
      break;
    }
    const rcLineEnd = output.indexOf("\n", errMarker + 1);
    const code = Number(output.slice(errMarker + `\n@@${nonce}:${i}:err:`.length, rcLineEnd));
    results.push({ ran: true, code, stdout: output.slice(outStart, errMarker), stderr: output.slice(rcLineEnd + 1, endMarker) });
    from = endMarker;
  }
  while (results.length < count) results.push({ ran: false, code: -1, stdout: "", stderr: "" });
  return results;
}
