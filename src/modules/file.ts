/**
 * file: a file's content, owner, group and mode; or a directory; or nothing at the path.
 * Content is written atomically (a temporary file in the same directory, then rename), so a
 * reader such as PostgreSQL never sees half a file. The content is compared by checksum on the
 * host and only fetched, for the diff, when it differs.
 */
import { createHash } from "node:crypto";
import { createTwoFilesPatch } from "diff";
import { z } from "zod";
import { flag } from "./args.js";
import { type Change, type Command, noChange } from "../engine/change.js";
import { type Module, type ProbeOutput, type ProbeReader, TaskFailure } from "../engine/module.js";
import { heredocBase64, keyValues, shellQuote } from "../common/shell.js";

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
}

export function sha256(content: string): string {
  return createHash("sha256").update(content).digest("hex");
}

/** What the file reader reads of one path: its state, and its checksum when content is wanted. */
interface FileItem {
  path: string;
  /** The wanted content's checksum; empty when the task manages no content. */
  want: string;
}

/**
 * Every file of a batch in one pass: `[ -e ]` and `[ -f ]` are shell builtins, then one `stat`
 * for all that exist and one `sha256sum` for all regular files whose content is managed. Only a
 * file whose checksum differs is read, for the diff, when it is small.
 */
export const fileReader: ProbeReader<FileItem> = {
  name: "files",
  script(items) {
    const paths = items.map((i) => shellQuote(i.path));
    const hashed = items.flatMap((item, k) => (item.want ? [k] : []));
    return [
      `set --`,
      ...paths.map((p, k) => `if [ -e ${p} ]; then set -- "$@" ${p}; echo "e ${k}"; fi`),
      `echo @stat`,
      `[ $# -eq 0 ] || stat -L --printf '%F\\t%U\\t%G\\t%a\\n' -- "$@"`,
      `set --`,
      ...hashed.map((k) => `[ ! -f ${paths[k]} ] || set -- "$@" ${paths[k]}`),
      `echo @sha`,
      `[ $# -eq 0 ] || sha256sum -- "$@" | {`,
      ...hashed.map((k) =>
        [
          `if [ -f ${paths[k]} ]; then IFS= read -r l; s=\${l#\\\\}; s=\${s%% *}; echo "h ${k} $s"`,
          `  if [ "$s" != "${items[k]!.want}" ] && [ "$(stat -L -c %s ${paths[k]})" -le ${DIFF_LIMIT_BYTES} ]; then echo "c ${k} $(base64 -w0 < ${paths[k]})"; fi; fi`,
        ].join("\n"),
      ),
      `}`,
    ].join("\n");
  },
  split(output, items) {
    const lines = output.stdout.split("\n");
    const statAt = lines.indexOf("@stat");
    const shaAt = lines.indexOf("@sha");
    const existing = lines.slice(0, Math.max(statAt, 0)).flatMap((l) => (/^e \d+$/.test(l) ? [Number(l.slice(2))] : []));
    const statLines = statAt < 0 || shaAt < 0 ? [] : lines.slice(statAt + 1, shaAt).filter(Boolean);
    const sums = shaAt < 0 ? [] : lines.slice(shaAt + 1);
    if (statAt < 0 || shaAt < 0 || statLines.length !== existing.length || output.code !== 0) {
      // A file came or went between the tests and stat: the task fails rather than guess (a rerun reads again).
      const stderr = `the files changed while they were read (or stat failed): ${output.stderr.trim()}`;
      return items.map(() => ({ stdout: "", stderr, code: output.code || 1 }));
    }
    const kv = items.map(() => ["type=absent"]);
    existing.forEach((k, n) => {
      const [type, owner, group, mode] = statLines[n]!.split("\t");
      kv[k] = [`type=${type}`, `owner=${owner}`, `group=${group}`, `mode=${mode}`];
    });
    for (const line of sums) {
      const m = /^([hc]) (\d+) (.*)$/.exec(line);
      if (m) kv[Number(m[2])]!.push(`${m[1] === "h" ? "sha256" : "content"}=${m[3]}`);
    }
    return kv.map((lines) => ({ stdout: `${lines.join("\n")}\n`, stderr: "", code: 0 }));
  },
};

export const file: Module<FileArgs> = {
  name: "file",
  args: fileArgs,

  probe: (args) => ({ reader: fileReader, item: { path: args.path, want: args.content !== undefined && args.state === "file" ? sha256(args.content) : "" } }),

  decide(args, state) {
    if (state.code !== 0) throw new TaskFailure(`cannot read ${args.path}: ${state.stderr.trim()}`, { code: state.code, stderr: state.stderr });
    const current = parseFileState(state);
    const path = args.path;
    const isFile = current.type === "regular file" || current.type === "regular empty file";

    if (args.state === "absent") {
      if (current.type === "absent") return noChange(`${path} is absent`);
      // rmdir, not rm -r: removing a directory that still holds files is never what a rerun should do.
      const p = shellQuote(path);
      const remove = { script: `if [ -d ${p} ] && [ ! -L ${p} ]; then rmdir ${p}; else rm -f ${p}; fi`, display: `remove ${path}` };
      return { changes: [{ action: "delete", summary: `remove ${path} (${current.type})`, commands: [remove] }] };
    }
    if (args.state === "directory") {
      if (current.type !== "absent" && current.type !== "directory") throw new TaskFailure(`${path} exists and is a ${current.type}, not a directory`);
      if (current.type === "absent") {
        const mkdir = { script: [`mkdir -p ${shellQuote(path)}`, setAttributes(args, shellQuote(path))].filter(Boolean).join("\n"), display: `mkdir -p ${path}` };
        return { changes: [{ action: "create", summary: `create directory ${path}${attributeText(args)}`, commands: [mkdir] }] };
      }
      const changes = attributeChanges(args, current);
      return changes.length ? { changes } : noChange(`${path} is a directory${attributeText(args)}`);
    }

    if (current.type !== "absent" && !isFile) throw new TaskFailure(`${path} exists and is a ${current.type}, not a regular file`);
    if (current.type === "absent") {
      const change: Change = { action: "create", summary: `create ${path}${attributeText(args)}`, commands: [writeFile(args, false)] };
      if (args.diff && args.content !== undefined) change.diff = unifiedDiff(path, "", args.content);
      return { changes: [change] };
    }
    const changes: Change[] = [];
    const contentDiffers = args.content !== undefined && current.sha256 !== sha256(args.content);
    if (contentDiffers) {
      const change: Change = { action: "update", summary: `content of ${path}`, commands: [writeFile(args, true)] };
      if (args.diff && current.content) change.diff = unifiedDiff(path, current.content.toString("utf8"), args.content!);
      changes.push(change);
    }
    // A file written anew gets its wanted owner and mode in the same command (see writeFile).
    changes.push(...attributeChanges(args, current).map((c) => (contentDiffers ? { ...c, commands: [] } : c)));
    if (changes.length === 0) return noChange(`${path} is as wanted`);
    return { changes };
  },
};

function setAttributes(args: FileArgs, target: string): string {
  const owner = args.owner || args.group ? `${args.owner ?? ""}${args.group ? `:${args.group}` : ""}` : undefined;
  return [owner ? `chown ${shellQuote(owner)} ${target}` : "", args.mode ? `chmod ${args.mode} ${target}` : ""].filter(Boolean).join("\n");
}

/** The content, written atomically: a temporary file in the same directory, then rename. */
function writeFile(args: FileArgs, exists: boolean): Command {
  const p = shellQuote(args.path);
  const script = [
    `tmp=$(mktemp ${shellQuote(dirnameOf(args.path))}/.pgprov.XXXXXX)`,
    `trap 'rm -f "$tmp"' EXIT`,
    args.content !== undefined ? heredocBase64(args.content, `"$tmp"`) : `: > "$tmp"`,
    // Keep what the file had, unless the task says otherwise; a new file gets 0644 like umask
    // 022. mktemp made it 0600: a wanted mode is set straight from there, never via 0644.
    exists ? `chown --reference=${p} "$tmp"` : "",
    args.mode ? "" : exists ? `chmod --reference=${p} "$tmp"` : `chmod 0644 "$tmp"`,
    setAttributes(args, `"$tmp"`),
    `mv -f "$tmp" ${p}`,
  ].filter(Boolean);
  return { script: script.join("\n"), display: `write ${args.path} (atomically: temporary file, then rename)` };
}

export function parseFileState(state: ProbeOutput): FileState {
  const kv = keyValues(state.stdout);
  return {
    type: kv.type ?? "absent",
    owner: kv.owner,
    group: kv.group,
    mode: kv.mode?.padStart(4, "0"),
    sha256: kv.sha256,
    content: kv.content !== undefined ? Buffer.from(kv.content, "base64") : undefined,
  };
}

function attributeChanges(args: FileArgs, current: FileState): Change[] {
  const parts: string[] = [];
  if (args.owner && args.owner !== current.owner) parts.push(`owner ${current.owner} -> ${args.owner}`);
  if (args.group && args.group !== current.group) parts.push(`group ${current.group} -> ${args.group}`);
  if (args.mode && args.mode !== current.mode) parts.push(`mode ${current.mode} -> ${args.mode}`);
  const commands = [{ script: setAttributes(args, shellQuote(args.path)), display: setAttributes(args, args.path) }];
  return parts.length ? [{ action: "update", summary: `${parts.join(", ")} of ${args.path}`, commands }] : [];
}

function attributeText(args: FileArgs): string {
  const parts = [args.owner && `owner ${args.owner}`, args.group && `group ${args.group}`, args.mode && `mode ${args.mode}`].filter(Boolean);
  return parts.length ? ` (${parts.join(", ")})` : "";
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
