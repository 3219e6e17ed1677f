/**
 * command: the escape hatch, a shell command. It must say how a rerun knows it is done, so that
 * it too is idempotent:
 * - `creates: PATH`: done when PATH exists; `removes: PATH`: done when PATH is gone;
 * - `unless: CMD`: done when CMD exits 0;
 * - `changed_when: false`: the command only reads. It runs in the check batch, also under
 *   --check, and never reports a change (use it with `register`);
 * - `changed_when: true`: runs every time and says so (for handlers, or deliberate reruns).
 */
import { z } from "zod";
import { flag, wholeNumber } from "../common/args.js";
import { noChange } from "../engine/change.js";
import { type Module, TaskFailure } from "../engine/module.js";
import { keyValues, shellQuote } from "../common/shell.js";

export const commandArgs = z
  .strictObject({
    cmd: z.string().min(1),
    creates: z.string().min(1).optional(),
    removes: z.string().min(1).optional(),
    unless: z.string().min(1).optional(),
    changed_when: flag.optional(),
    chdir: z.string().min(1).optional(),
    /** Seconds the command may take. */
    timeout: wholeNumber.refine((n) => n > 0, "expected a positive number").default(120),
  })
  .refine((a) => a.creates ?? a.removes ?? a.unless ?? a.changed_when !== undefined, {
    message: "a command needs creates, removes, unless or changed_when, so that a rerun knows whether it is done",
  });
export type CommandArgs = z.output<typeof commandArgs>;

function withDir(args: CommandArgs, script: string): string {
  return args.chdir ? `cd ${shellQuote(args.chdir)} && ${script}` : script;
}

export const command: Module<CommandArgs> = {
  name: "command",
  args: commandArgs,

  probe(args) {
    if (args.changed_when === false) return withDir(args, args.cmd);
    return [
      args.creates ? `[ -e ${shellQuote(args.creates)} ] && echo creates=present` : "",
      args.removes ? `[ -e ${shellQuote(args.removes)} ] || echo removes=absent` : "",
      args.unless ? `(${withDir(args, args.unless)}) >/dev/null 2>&1 && echo unless=passed` : "",
      "true",
    ]
      .filter(Boolean)
      .join("\n");
  },

  decide(args, state) {
    if (args.changed_when === false) {
      if (state.code !== 0) {
        throw new TaskFailure(`the command exited ${state.code}`, { command: args.cmd, code: state.code, stderr: state.stderr });
      }
      return noChange("a read-only command (changed_when: false)", state.stdout);
    }
    const s = keyValues(state.stdout);
    if (s.creates === "present") return noChange(`${args.creates} exists`);
    if (s.removes === "absent") return noChange(`${args.removes} does not exist`);
    if (s.unless === "passed") return noChange(`unless: \`${args.unless}\` succeeded`);
    const run = { script: withDir(args, args.cmd), display: args.cmd, timeoutMs: args.timeout * 1000 };
    return { changes: [{ action: "run", summary: `run: ${args.cmd.split("\n")[0]}`, commands: [run] }] };
  },
};
