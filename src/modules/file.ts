/**
 * file: a file's content, owner, group and mode; or a directory; or nothing at the path.
 * Content is written atomically (a temporary file in the same directory, then rename), so a
 * reader such as PostgreSQL never sees half a file. The content is compared by checksum on the
 * host and only fetched, for the diff, when it differs. The temporary file (which may hold a
 * secret: a passfile, say) is removed on every exit the shell can see, and one that a killed run
 * left behind (`.pgprov.NAME.XXXXXX`) is found by the next run's check and removed.
 */
import { createHash } from "node:crypto";
import { createTwoFilesPatch } from "diff";
import { z } from "zod";
import { flag } from "./args.js";
import { type Change, noChange } from "../engine/change.js";
import { type Command, type Module, type ProbeOutput, TaskFailure } from "./module.js";
import { heredocBase64, keyValues, shellQuote } from "./shell.js";

/** Larger files are compared by checksum only; their diff is not shown. */
const DIFF_LIMIT_BYTES = 256 * 1024;

const mode = z
  .string({ error: (i) => (typeof i.input === "number" ? "quote the mode as a string, like '0640' (YAML reads 0640 as a decimal number)" : "expected a mode like '0640'") })
  .regex(/^0?[0-7]{3,4}$/, "expected an octal mode like '0640'")
  .transform((m) => m.padStart(4, "0"));

export const fileArgs = z.strictObject({
  path: z.string().regex(/^\/[^\0]*$/, "expected an absolute path"),
  state: z.enum(["file", "directory", "absent"]).default("file"),
  content: z.string().optional(),
  owner: z.string().min(1).optional(),
  group: z.string().min(1).optional(),
  mode: mode.optional(),
  /** false for files whose content must never be shown, even masked (keys, password files). */
  diff: flag.default(true),
});
export type FileArgs = z.output<typeof fileArgs>;

interface FileState {
  type: "absent" | "regular file" | "regular empty file" | "directory" | string;
  owner?: string;
  group?: string;
  mode?: string;
  sha256?: string;
  /** Present only when the content differs from the wanted content and is small. */
  content?: Buffer;
  /** A temporary file of pgprov's beside the path, left by a run killed while writing it. */
  leftover: boolean;
}

interface FileDetail {
  writeContent: boolean;
  exists: boolean;
  /** Remove the temporary files a killed run left beside the path. */
  leftover?: boolean;
}

export function sha256(content: string): string {
  return createHash("sha256").update(content).digest("hex");
}

export const file: Module<FileArgs, FileDetail> = {
  name: "file",
  args: fileArgs,

  probe(args) {
    const p = shellQuote(args.path);
    const want = args.content !== undefined ? sha256(args.content) : "";
    return [
      `if [ -e ${p} ]; then`,
      `  stat -L --printf 'type=%F\nowner=%U\ngroup=%G\nmode=%a\nsize=%s\n' ${p}`,
      `  if [ -f ${p} ]; then s=$(sha256sum < ${p}); s=\${s%% *}; echo "sha256=$s"`,
      // The content only for a diff: a file whose content must not be shown (a passfile's old
      // password) is not even read back.
      args.diff ? `    if [ "$s" != "${want}" ] && [ $(stat -L -c %s ${p}) -le ${DIFF_LIMIT_BYTES} ]; then echo "content=$(base64 -w0 < ${p})"; fi` : "",
      `  fi`,
      `else echo type=absent; fi`,
      args.state === "file" ? `for f in ${temporaryFiles(args.path)}; do [ ! -e "$f" ] || { echo leftover=1; break; }; done` : "",
    ]
      .filter(Boolean)
      .join("\n");
  },

  decide(args, state) {
    const current = parseFileState(state);
    const path = args.path;
    const isFile = current.type === "regular file" || current.type === "regular empty file";

    if (args.state === "absent") {
      if (current.type === "absent") return noChange(`${path} is absent`);
      return { changes: [{ action: "delete", summary: `remove ${path} (${current.type})` }], detail: { writeContent: false, exists: true } };
    }
    if (args.state === "directory") {
      if (current.type !== "absent" && current.type !== "directory") throw new TaskFailure(`${path} exists and is a ${current.type}, not a directory`);
      if (current.type === "absent") {
        return { changes: [{ action: "create", summary: `create directory ${path}${attributeText(args)}` }], detail: { writeContent: false, exists: false } };
      }
      const changes = attributeChanges(args, current);
      return changes.length ? { changes, detail: { writeContent: false, exists: true } } : noChange(`${path} is a directory${attributeText(args)}`);
    }

    if (current.type !== "absent" && !isFile) throw new TaskFailure(`${path} exists and is a ${current.type}, not a regular file`);
    const leftover: Change[] = current.leftover ? [{ action: "delete", summary: `remove the temporary file a killed run left beside ${path}` }] : [];
    if (current.type === "absent") {
      const change: Change = { action: "create", summary: `create ${path}${attributeText(args)}` };
      if (args.diff && args.content !== undefined) change.diff = unifiedDiff(path, "", args.content);
      return { changes: [...leftover, change], detail: { writeContent: true, exists: false, leftover: current.leftover } };
    }
    const changes: Change[] = [...leftover];
    const contentDiffers = args.content !== undefined && current.sha256 !== sha256(args.content);
    if (contentDiffers) {
      const change: Change = { action: "update", summary: `content of ${path}` };
      if (args.diff && current.content) change.diff = unifiedDiff(path, current.content.toString("utf8"), args.content!);
      changes.push(change);
    }
    changes.push(...attributeChanges(args, current));
    if (changes.length === 0) return noChange(`${path} is as wanted`);
    return { changes, detail: { writeContent: contentDiffers, exists: true, leftover: current.leftover } };
  },

  act(args, decision): Command[] {
    const p = shellQuote(args.path);
    const detail = decision.detail!;
    const owner = args.owner || args.group ? `${args.owner ?? ""}${args.group ? `:${args.group}` : ""}` : undefined;
    const setAttributes = (target: string) =>
      [owner ? `chown ${shellQuote(owner)} ${target}` : "", args.mode ? `chmod ${args.mode} ${target}` : ""].filter(Boolean).join("\n");

    if (args.state === "absent") {
      // rmdir, not rm -r: removing a directory that still holds files is never what a rerun should do.
      return [{ script: `if [ -d ${p} ] && [ ! -L ${p} ]; then rmdir ${p}; else rm -f ${p}; fi`, display: `remove ${args.path}` }];
    }
    if (args.state === "directory") {
      return [{ script: [`mkdir -p ${p}`, setAttributes(p)].filter(Boolean).join("\n"), display: `mkdir -p ${args.path}` }];
    }
    const removeLeftover = detail.leftover ? `rm -f -- ${temporaryFiles(args.path)}` : "";
    if (!detail.writeContent) {
      const script = [removeLeftover, setAttributes(p)].filter(Boolean).join("\n");
      return [{ script, display: [removeLeftover, setAttributes(args.path)].filter(Boolean).join("\n") }];
    }

    const script = [
      removeLeftover,
      // Removed however the shell ends: a signal exits, and the exit removes it.
      `tmp=$(mktemp ${temporaryFiles(args.path, "XXXXXX")})`,
      `trap 'rm -f "$tmp"' EXIT`,
      `trap 'exit 1' HUP INT PIPE TERM`,
      args.content !== undefined ? heredocBase64(args.content, `"$tmp"`) : `: > "$tmp"`,
      // Keep what the file had, unless the task says otherwise; a new file gets 0644 like umask
      // 022. mktemp made it 0600: a wanted mode is set straight from there, never via 0644.
      detail.exists ? `chown --reference=${p} "$tmp"` : "",
      args.mode ? "" : detail.exists ? `chmod --reference=${p} "$tmp"` : `chmod 0644 "$tmp"`,
      setAttributes(`"$tmp"`),
      `mv -f "$tmp" ${p}`,
    ].filter(Boolean);
    return [{ script: script.join("\n"), display: `write ${args.path} (atomically: temporary file, then rename)` }];
  },
};

export function parseFileState(state: ProbeOutput): FileState {
  const kv = keyValues(state.stdout);
  return {
    type: kv.type ?? "absent",
    owner: kv.owner,
    group: kv.group,
    mode: kv.mode?.padStart(4, "0"),
    sha256: kv.sha256,
    content: kv.content !== undefined ? Buffer.from(kv.content, "base64") : undefined,
    leftover: kv.leftover === "1",
  };
}

function attributeChanges(args: FileArgs, current: FileState): Change[] {
  const parts: string[] = [];
  if (args.owner && args.owner !== current.owner) parts.push(`owner ${current.owner} -> ${args.owner}`);
  if (args.group && args.group !== current.group) parts.push(`group ${current.group} -> ${args.group}`);
  if (args.mode && args.mode !== current.mode) parts.push(`mode ${current.mode} -> ${args.mode}`);
  return parts.length ? [{ action: "update", summary: `${parts.join(", ")} of ${args.path}` }] : [];
}

function attributeText(args: FileArgs): string {
  const parts = [args.owner && `owner ${args.owner}`, args.group && `group ${args.group}`, args.mode && `mode ${args.mode}`].filter(Boolean);
  return parts.length ? ` (${parts.join(", ")})` : "";
}

/**
 * The temporary files of pgprov's beside `path`: a shell pattern (`??????`, what mktemp's XXXXXX
 * becomes), or with `random` the mktemp template. Named after the file, so that each file task
 * finds its own leftovers only.
 */
function temporaryFiles(path: string, random = "??????"): string {
  const name = path.slice(path.lastIndexOf("/") + 1).slice(0, 200);
  return `${shellQuote(`${dirnameOf(path).replace(/\/$/, "")}/.pgprov.${name}.`)}${random}`;
}

function dirnameOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/")) || "/";
}

export function unifiedDiff(path: string, before: string, after: string): string {
  return createTwoFilesPatch(path, path, before, after, "on the host", "wanted", { context: 3 })
    .split("\n")
    .slice(1) // drop the "Index:"/"=====" header jsdiff adds
    .filter((l) => !/^={5,}$/.test(l))
    .join("\n")
    .trimEnd();
}
