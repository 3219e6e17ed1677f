/**
 * file: a file's content, owner, group and mode; or a directory; or nothing at the path.
 * Content is written atomically (a temporary file in the same directory, then rename), so a
 * reader such as PostgreSQL never sees half a file. The content is compared by checksum on the
 * host and only fetched, for the diff, when it differs (never for a file whose diff is off: a
 * passfile's old password is not even read back).
 *
 * It runs as root in directories other users own (postgres owns /var/lib/postgresql/15 and
 * /etc/postgresql/15/main), so it never follows a symbolic link such a user could have planted:
 * not at the path (refused; removed, for `absent`), not on the way to it (refused, unless root
 * made the link where only root can change it, like /var/run -> /run). The act checks the way
 * again right before acting and then works from inside the directory it checked (`cd`, then
 * names relative to it), so a link swapped in between the check and the act is not followed
 * either: ownership and mode are set on `.` or on a file in a private directory, never by name
 * through a path a user can change.
 *
 * The temporary file (which may hold a secret: a passfile, say) lives in a private directory
 * `.pgprov.NAME.XXXXXX` beside the path, removed on every exit the shell can see; one that a killed
 * run left behind is found by the next run's check, shown by plan, and removed.
 */
import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import { z } from "zod";
import { absolutePath, flag } from "../common/args.js";
import { heredocBase64, keyValues, shellQuote } from "../common/shell.js";
import { type Command, type Decision, noChange, type PlannedChange } from "../engine/change.js";
import { type Module, type ProbeOutput, type ProbeReader, TaskFailure } from "../engine/module.js";

/** Larger files are compared by checksum only; their diff is not shown. */
const DIFF_LIMIT_BYTES = 256 * 1024;

const mode = z
  .string({ error: (i) => (typeof i.input === "number" ? "quote the mode as a string, like '0640' (YAML reads 0640 as a decimal number)" : "expected a mode like '0640'") })
  .regex(/^0?[0-7]{3,4}$/, "expected an octal mode like '0640'")
  .transform((m) => m.padStart(4, "0"));

/** A user or group: a name, or a number. */
const account = z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$/, "a user or group name");

export const fileArgs = z.strictObject({
  path: absolutePath,
  state: z.enum(["file", "directory", "absent"]).default("file"),
  content: z.string().optional(),
  owner: account.optional(),
  group: account.optional(),
  mode: mode.optional(),
  /** false for files whose content must never be shown, even masked (keys, password files). */
  diff: flag.default(true),
});
export type FileArgs = z.output<typeof fileArgs>;

interface FileState {
  type: "absent" | "regular file" | "regular empty file" | "directory" | "symbolic link" | string;
  owner?: string;
  group?: string;
  mode?: string;
  uid?: string;
  gid?: string;
  inode?: string;
  links?: number;
  /** Where a symbolic link at the path points. */
  target?: string;
  /** Why the path cannot be reached safely: a link on the way that a user could have planted. */
  unsafe?: string;
  /** The parent directory's owner (uid) and mode (hex, as stat's %f). */
  dirUid?: string;
  dirMode?: number;
  sha256?: string;
  /** Present only when the content differs from the wanted content and is small. */
  content?: Buffer;
  /** A temporary file of pgprov's beside the path, left by a run killed while writing it. */
  leftover: boolean;
}

interface FileDetail {
  writeContent: boolean;
  exists: boolean;
  /** The file as the probe found it: what a rewrite keeps unless the task says otherwise. */
  current?: { uid?: string; gid?: string; mode?: string; inode?: string };
  /** Remove the temporary files a killed run left beside the path. */
  leftover?: boolean;
}

export function sha256(content: string): string {
  return createHash("sha256").update(content).digest("hex");
}

/**
 * The walk every probe and act of this module starts with: from /, each directory on the way to
 * the path. A symbolic link on the way is followed only when root owns it and the directory that
 * holds it, and no one else may write there; any other stops the walk (pgprov_unsafe says why).
 * Sets pgprov_dir to the real path of the path's directory, or pgprov_missing to the first
 * directory on the way that does not exist yet.
 */
const WALK = String.raw`pgprov_walk() {
  pgprov_dir=/ pgprov_rest=\${1#/} pgprov_hops=0 pgprov_missing= pgprov_unsafe=
  while :; do
    case $pgprov_rest in */*) ;; *) return 0 ;; esac
    pgprov_c=\${pgprov_rest%%/*} pgprov_rest=\${pgprov_rest#*/}
    case $pgprov_c in
      ''|.) continue ;;
      ..) pgprov_dir=\${pgprov_dir%/*} pgprov_dir=\${pgprov_dir:-/}; continue ;;
    esac
    pgprov_next=\${pgprov_dir%/}/$pgprov_c
    if [ -L "$pgprov_next" ]; then
      set -- $(stat -c '%u %U %f' -- "$pgprov_next" "$pgprov_dir")
      if [ "$1" != 0 ] || [ "$4" != 0 ] || [ $((0x$6 & 0x12)) != 0 ]; then
        pgprov_unsafe="$pgprov_next is a symbolic link to $(readlink -- "$pgprov_next") (owned by $2) in $pgprov_dir (owned by $5$([ $((0x$6 & 0x12)) = 0 ] || echo ', writable by others'))"
        return 1
      fi
      pgprov_hops=$((pgprov_hops + 1))
      if [ $pgprov_hops -gt 40 ]; then pgprov_unsafe="$pgprov_next: too many levels of symbolic links"; return 1; fi
      pgprov_t=$(readlink -- "$pgprov_next")
      case $pgprov_t in /*) pgprov_dir=/ ;; esac
      pgprov_rest=$pgprov_t/$pgprov_rest
      continue
    fi
    if [ ! -d "$pgprov_next" ]; then pgprov_missing=$pgprov_next; return 0; fi
    pgprov_dir=$pgprov_next
  done
}`.replace(/\\\$/g, "$");

/**
 * Into the directory the walk found, and check that it is still that directory (a `cd` follows
 * links). dash's `cd -P` sets PWD from getcwd() right after the chdir (and `pwd -P` would only
 * print that same value, in a process of its own): no process for a check made for every path.
 */
const ENTER_DIRECTORY = `cd -P -- "$pgprov_dir" && [ "$PWD" = "$pgprov_dir" ]`;

/** What the file reader reads of one path: its state, and its checksum when content is wanted. */
interface FileItem {
  path: string;
  /** The wanted content's checksum; empty when the task manages no content. */
  want: string;
  /** Look for the temporary files a killed write left (a task that writes content). */
  leftovers: boolean;
  /** Read the content back for a diff when it differs (never for a file whose diff is off). */
  diff: boolean;
}

/**
 * Every file of a batch in one section, at the cost of one `stat` and one `sha256sum` for the whole
 * set. First each path is walked and checked with shell builtins alone (the walk, the `cd` into
 * the checked directory, the leftover glob, `[ -L ]`: a process only for a link at the path, which
 * the task then refuses or removes); then one `stat` reads every path that exists (and the
 * directory of each file) and one `sha256sum` hashes every regular file, both by the real path
 * the walk found (root's links resolved, no link a user could plant); then each path's state is
 * printed, `@@k` before it.
 *
 * Why the one stat and one hash by real path are as safe as the per-file reads from inside each
 * checked directory they replace: between the walk and them, a user who can change a directory
 * on the way could swap in a link, and then they read a file elsewhere. What they read is only
 * compared, never shown: a checksum that differs plans a write, whose act walks and checks the
 * way again and writes by rename inside the checked directory (a link there is replaced, never
 * followed); a checksum that matches, or attributes that do, describe a state that user could
 * have made at the path anyway; an attribute change is made only on the inode the probe read, in
 * the checked directory (see fileCommand). What would be shown, the content for a diff, is still
 * read with dd's nofollow from inside the directory walked and checked again right then, and only
 * for a file whose checksum differs. (A swapped link to a pipe would make sha256sum wait: the
 * probe's bound ends it, and the run fails without changing anything.)
 */
export const fileReader: ProbeReader<FileItem> = {
  name: "files",
  script: (items) =>
    [
      WALK,
      `NL='
'`,
      `TAB='\t'`,
      // $1: the path; $2: ./ and its last component; $3: the prefix of the temporary directories
      // to look for (see temporaryPrefix), or nothing. Sets pgprov_o to what it found, and
      // pgprov_f to the real path of a regular file or directory, for the stat (and pgprov_h for
      // the checksum when the name would not come back from sha256sum as it is).
      `pgprov_look() {`,
      `  pgprov_o= pgprov_f= pgprov_h=`,
      `  pgprov_walk "$1" || { pgprov_o="unsafe=$pgprov_unsafe"; return; }`,
      `  if [ -n "$pgprov_missing" ]; then pgprov_o=type=absent; return; fi`,
      `  ${ENTER_DIRECTORY} || { pgprov_o="unsafe=$pgprov_dir changed while pgprov read it"; return; }`,
      `  if [ -n "$3" ]; then for f in ./"$3"??????; do [ ! -e "$f" ] || { pgprov_o=leftover=1; break; }; done; fi`,
      `  if [ -L "$2" ]; then pgprov_o="$pgprov_o$NL$(stat --printf 'type=symbolic link\\nowner=%U\\n' -- "$2"; echo "target=$(readlink -- "$2")")"; return; fi`,
      `  [ -e "$2" ] || { pgprov_o="$pgprov_o\${NL}type=absent"; return; }`,
      `  pgprov_f=\${pgprov_dir%/}/\${2#./}`,
      // sha256sum escapes such a name in its output: this rare file is hashed on its own, here.
      `  case $pgprov_f in *\\\\*) [ ! -f "$2" ] || { pgprov_h=$(dd if="$2" iflag=nofollow,nonblock status=none | sha256sum); pgprov_h=\${pgprov_h%% *}; } ;; esac`,
      `}`,
      // Takes the next record of the one stat (pgprov_s, a line each: the name, then the fields)
      // when it is the one of path $1; none when that path was gone by then. Sets r to its fields,
      // and pgprov_x when it is a regular file. Only short strings meet a pattern: dash matches
      // patterns against long ones slowly.
      `pgprov_take() {`,
      `  r= pgprov_x=`,
      `  [ -n "$1" ] || return 0`,
      `  l=\${pgprov_s%%"$NL"*}`,
      `  case $l in "$1$TAB"*) r=\${l#"$1$TAB"}; pgprov_s=\${pgprov_s#*"$NL"} ;; *) return 0 ;; esac`,
      `  case $r in "regular file$TAB"*|"regular empty file$TAB"*) pgprov_x=1 ;; esac`,
      `}`,
      // The same for the one sha256sum's lines (the checksum, two spaces, the name): sets h.
      `pgprov_sum() {`,
      `  h=`,
      `  l=\${pgprov_sums%%"$NL"*}`,
      `  case $l in *"  $1") h=\${l%"  $1"}; pgprov_sums=\${pgprov_sums#*"$NL"} ;; esac`,
      `}`,
      // $1: what pgprov_look found; $2: the stat's fields, or nothing; $3: the real path of its
      // directory; $4: the checksum. Prints the path's state, and sets s, h and pgprov_regular for
      // pgprov_content.
      `pgprov_print() {`,
      `  s= h=$4 pgprov_regular=`,
      `  [ -z "$1" ] || echo "$1"`,
      `  [ -n "$2" ] || return 0`,
      `  d=$3 pgprov_ifs=$IFS; IFS=$TAB; set -f; set -- $2; IFS=$pgprov_ifs; set +f`,
      `  s="type=$1\${NL}owner=$2\${NL}group=$3\${NL}mode=$4\${NL}uid=$5\${NL}gid=$6\${NL}inode=$7\${NL}links=$8\${NL}size=$9"`,
      `  echo "$s"`,
      `  case $s in "type=regular file$NL"*|"type=regular empty file$NL"*) pgprov_regular=1 ;; *) return 0 ;; esac`,
      // Who may change the directory matters only for a file with more than one name.
      `  case $s in *"\${NL}links=1\${NL}"*) ;; *) stat --printf 'dir_uid=%u\\ndir_mode=%f\\n' -- "$d" ;; esac`,
      `  [ -z "$h" ] || echo "sha256=$h"`,
      `}`,
      // $1: the path; $2: ./ and its last component; $3: the wanted checksum. After pgprov_print
      // (what it set): the content, for a diff, of a regular file that differs and is small, read
      // with dd's nofollow from inside its directory, walked and checked again now.
      `pgprov_content() {`,
      `  [ -n "$pgprov_regular" ] && [ "$h" != "$3" ] || return 0`,
      `  z=\${s##*"\${NL}size="}`,
      `  case $z in ''|*[!0-9]*) return 0 ;; esac`,
      `  [ "$z" -le ${DIFF_LIMIT_BYTES} ] || return 0`,
      `  pgprov_walk "$1" && [ -z "$pgprov_missing" ] && ${ENTER_DIRECTORY} || { echo "unsafe=$1 changed while pgprov read it"; return 0; }`,
      `  echo "content=$(dd if="$2" iflag=nofollow,nonblock status=none | base64 -w0)"`,
      `}`,
      `set --`,
      ...items.map((item, k) =>
        [
          `pgprov_look ${shellQuote(item.path)} ${shellQuote(`./${basenameOf(item.path)}`)} ${shellQuote(item.leftovers ? temporaryPrefix(item.path) : "")}`,
          `pgprov_o${k}=$pgprov_o pgprov_f${k}=$pgprov_f pgprov_d${k}=$pgprov_dir pgprov_h${k}=$pgprov_h`,
          `[ -z "$pgprov_f" ] || set -- "$@" "$pgprov_f"`,
        ].join("; "),
      ),
      // Every path that exists in one stat (which never follows a link at the path it is given).
      `pgprov_s=; [ $# = 0 ] || pgprov_s=$(stat --printf '%n\\t%F\\t%U\\t%G\\t%a\\t%u\\t%g\\t%i\\t%h\\t%s\\n' -- "$@" 2>/dev/null)$NL`,
      // Every regular file (as the stat saw it) in one sha256sum.
      `set --`,
      ...items.map((_item, k) => `pgprov_take "$pgprov_f${k}"; pgprov_r${k}=$r; [ -z "$pgprov_x" ] || [ -n "$pgprov_h${k}" ] || set -- "$@" "$pgprov_f${k}"`),
      `pgprov_sums=; [ $# = 0 ] || pgprov_sums=$(sha256sum -- "$@" 2>/dev/null)$NL`,
      ...items.map((item, k) =>
        [
          `[ -z "$pgprov_r${k}" ] || [ -n "$pgprov_h${k}" ] || { pgprov_sum "$pgprov_f${k}"; pgprov_h${k}=$h; }`,
          `echo @@${k}; pgprov_print "$pgprov_o${k}" "$pgprov_r${k}" "$pgprov_d${k}" "$pgprov_h${k}"`,
          // The content only for a diff: a file whose content must not be shown is not even read back.
          ...(item.diff && item.want ? [`pgprov_content ${shellQuote(item.path)} ${shellQuote(`./${basenameOf(item.path)}`)} ${shellQuote(item.want)}`] : []),
        ].join("; "),
      ),
      `echo @@end`,
    ].join("\n"),
  split(output, items) {
    return items.map((_item, k) => {
      const start = output.stdout.indexOf(`@@${k}\n`);
      const end = output.stdout.indexOf(`@@${k + 1 === items.length ? "end" : k + 1}\n`, start);
      if (start < 0 || end < 0) return { stdout: "", stderr: output.stderr, code: output.code || 1 };
      return { stdout: output.stdout.slice(start + `@@${k}\n`.length, end), stderr: "", code: 0 };
    });
  },
};

export const file: Module<FileArgs> = {
  name: "file",
  args: fileArgs,

  probe: (args) => ({
    reader: fileReader,
    item: { path: args.path, want: args.content !== undefined ? sha256(args.content) : "", leftovers: args.state === "file", diff: args.diff },
  }),

  decide(args, state) {
    if (state.code !== 0) throw new TaskFailure(`cannot read ${args.path}: ${state.stderr.trim()}`, { code: state.code, stderr: state.stderr });
    const current = parseFileState(state);
    const path = args.path;
    if (current.unsafe !== undefined) {
      throw new TaskFailure(`refusing ${path}: ${current.unsafe}; pgprov follows only links that only root can change`);
    }
    if (current.type === "symbolic link") {
      const link = `a symbolic link to ${current.target ?? "?"}`;
      if (args.state === "absent") {
        return carriedByFirst([{ action: "delete", summary: `remove ${path} (${link})` }], fileCommand(args, { writeContent: false, exists: true }));
      }
      throw new TaskFailure(
        `${path} is ${link} (owned by ${current.owner ?? "?"}), which pgprov did not create: it never follows one. Remove the link (or point the task at its target), then rerun`,
      );
    }
    const isFile = current.type === "regular file" || current.type === "regular empty file";
    const rootOnlyDirectory = current.dirUid === "0" && ((current.dirMode ?? 0) & 0o22) === 0;
    if (isFile && (current.links ?? 1) > 1 && !rootOnlyDirectory && args.state !== "absent") {
      // Another name of the same file may be one pgprov must never change (/etc/shadow, say).
      throw new TaskFailure(
        `${path} has ${current.links} hard links, in a directory a user other than root can change: another of its names may be a file pgprov must not touch. Make it a file of its own, then rerun`,
      );
    }
    const detail = (writeContent: boolean): FileDetail => ({
      writeContent,
      exists: current.type !== "absent",
      current: { uid: current.uid, gid: current.gid, mode: current.mode, inode: current.inode },
      leftover: current.leftover,
    });

    if (args.state === "absent") {
      if (current.type === "absent") return noChange(`${path} is absent`);
      return carriedByFirst([{ action: "delete", summary: `remove ${path} (${current.type})` }], fileCommand(args, detail(false)));
    }
    if (args.state === "directory") {
      if (current.type !== "absent" && current.type !== "directory") throw new TaskFailure(`${path} exists and is a ${current.type}, not a directory`);
      if (current.type === "absent") return carriedByFirst([{ action: "create", summary: `create directory ${path}${attributeText(args)}` }], fileCommand(args, detail(false)));
      const changes = attributeChanges(args, current);
      return changes.length ? carriedByFirst(changes, fileCommand(args, detail(false))) : noChange(`${path} is a directory${attributeText(args)}`);
    }

    if (current.type !== "absent" && !isFile) throw new TaskFailure(`${path} exists and is a ${current.type}, not a regular file`);
    const leftover: PlannedChange[] = current.leftover ? [{ action: "delete", summary: `remove the temporary file a killed run left beside ${path}` }] : [];
    if (current.type === "absent") {
      const change: PlannedChange = { action: "create", summary: `create ${path}${attributeText(args)}` };
      if (args.diff && args.content !== undefined) change.diff = unifiedDiff(path, "", args.content);
      return carriedByFirst([...leftover, change], fileCommand(args, detail(true)));
    }
    const changes: PlannedChange[] = [...leftover];
    const contentDiffers = args.content !== undefined && current.sha256 !== sha256(args.content);
    if (contentDiffers) {
      const change: PlannedChange = { action: "update", summary: `content of ${path}` };
      if (args.diff && current.content) change.diff = unifiedDiff(path, current.content.toString("utf8"), args.content!);
      changes.push(change);
    }
    changes.push(...attributeChanges(args, current));
    if (changes.length === 0) return noChange(`${path} is as wanted`);
    return carriedByFirst(changes, fileCommand(args, detail(contentDiffers)));
  },
};

/**
 * A task of this module changes its path with one command, whatever it changes (a file written
 * anew gets its owner and mode, and loses a killed run's leftovers, in the same script): the
 * first change carries it, the others are carried out by it.
 */
function carriedByFirst(changes: PlannedChange[], command: Command): Decision {
  return { changes: changes.map((c, k) => ({ ...c, commands: k === 0 ? [command] : [] })) };
}

/** The one command that makes the path what the task wants, from the state `detail` describes. */
function fileCommand(args: FileArgs, detail: FileDetail): Command {
  const name = basenameOf(args.path);
  const here = shellQuote(`./${name}`);
  const refuse = (why: string) => `{ echo ${shellQuote(`refusing ${args.path}: ${why}`)} >&2; exit 1; }`;
  // A rewrite keeps what the file had, unless the task says otherwise; a new file gets 0644 like umask 022.
  const keep = detail.writeContent && detail.exists ? detail.current ?? {} : {};
  const user = args.owner ?? keep.uid;
  const group = args.group ?? keep.gid;
  const fileMode = args.mode ?? (keep.mode ? keep.mode : detail.writeContent ? "0644" : undefined);
  const setAttributes = (target: string) =>
    [user !== undefined || group !== undefined ? `chown -h ${shellQuote(`${user ?? ""}${group !== undefined ? `:${group}` : ""}`)} ${target}` : "", fileMode ? `chmod ${fileMode} ${target}` : ""]
      .filter(Boolean)
      .join("\n");
  const walk = [
    WALK,
    `pgprov_walk ${shellQuote(args.path)} || { echo ${shellQuote(`refusing ${args.path}: `)}"$pgprov_unsafe; pgprov follows only links that only root can change" >&2; exit 1; }`,
  ];
  const enter = `${ENTER_DIRECTORY} || ${refuse("a directory on the way changed while pgprov was changing it")}`;
  if (args.state !== "absent") {
    // Directories on the way that do not exist yet are made by root; the walk then checks them too.
    walk.push(`if [ -n "$pgprov_missing" ]; then mkdir -p -- ${shellQuote(dirnameOf(args.path))}; ${walk[1]}; fi`);
  }
  // A private directory (root's, mode 0700) beside the path: what happens inside it no one else can touch.
  // Named after the path, so the next run's check of this path finds what a killed run left.
  const privateDirectory = [
    `pgprov_tmp=$(mktemp -d ${temporaryDirectories(args.path, "XXXXXX")}) || { echo ${shellQuote(`cannot make a temporary directory beside ${args.path}`)}" (in $pgprov_dir)" >&2; exit 1; }`,
    `cd -P -- "$pgprov_tmp" && [ "$PWD" = "\${pgprov_dir%/}/\${pgprov_tmp#./}" ] && [ "$(stat -c %u:%a .)" = 0:700 ] || ${refuse("its directory changed while pgprov was changing it")}`,
    `trap 'rm -f f; cd .. && rmdir -- "$pgprov_tmp"' EXIT`,
    // A signal exits, and the exit removes it (dash runs no EXIT trap on a signal of its own).
    `trap 'exit 1' HUP INT PIPE TERM`,
  ];
  // rm never follows a link, and a leftover directory is root's own 0700 one.
  const removeLeftovers = detail.leftover ? `rm -rf -- ${temporaryDirectories(args.path)}` : "";

  if (args.state === "absent") {
    return {
      // rmdir, not rm -r: removing a directory that still holds files is never what a rerun should do.
      script: [...walk, `[ -z "$pgprov_missing" ] || exit 0`, enter, `if [ -d ${here} ] && [ ! -L ${here} ]; then rmdir -- ${here}; else rm -f -- ${here}; fi`].join("\n"),
      display: `remove ${args.path}`,
    };
  }
  if (args.state === "directory") {
    const script = [
      ...walk,
      enter,
      `[ -e ${here} ] || [ -L ${here} ] || mkdir -- ${here}`,
      `[ -d ${here} ] && [ ! -L ${here} ] || ${refuse("it is not a directory (a symbolic link, or replaced since it was read)")}`,
      `cd -P -- ${here} && [ "$PWD" = "\${pgprov_dir%/}/"${shellQuote(name)} ] || ${refuse("it changed while pgprov was changing it")}`,
      setAttributes("."),
    ];
    return { script: script.filter(Boolean).join("\n"), display: `mkdir ${args.path}${attributeText(args)}` };
  }
  if (!detail.writeContent) {
    // A second name for the file, in the private directory: its attributes are the file's, and
    // no one can swap it for a link there.
    const script = [
      ...walk,
      enter,
      // Before the private directory is made: the glob would take it too.
      removeLeftovers,
      ...privateDirectory,
      `ln -P -- ../${shellQuote(name)} f`,
      `[ -f f ] && [ ! -L f ] && [ "$(stat -c %i f)" = ${shellQuote(detail.current?.inode ?? "")} ] || ${refuse("it changed since it was read (replaced, or now a symbolic link); rerun")}`,
      setAttributes("f"),
    ];
    return { script: script.join("\n"), display: `set${attributeText(args)} on ${args.path}` };
  }
  const script = [
    ...walk,
    enter,
    // Before the private directory is made: the glob would take it too.
    removeLeftovers,
    ...privateDirectory,
    args.content !== undefined ? heredocBase64(args.content, "f") : `: > f`,
    setAttributes("f"),
    `mv -fT f ../${shellQuote(name)}`,
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
    uid: kv.uid,
    gid: kv.gid,
    inode: kv.inode,
    links: kv.links !== undefined ? Number(kv.links) : undefined,
    target: kv.target,
    unsafe: kv.unsafe,
    dirUid: kv.dir_uid,
    dirMode: kv.dir_mode !== undefined ? parseInt(kv.dir_mode, 16) : undefined,
    sha256: kv.sha256,
    content: kv.content !== undefined ? Buffer.from(kv.content, "base64") : undefined,
    leftover: kv.leftover === "1",
  };
}

function attributeChanges(args: FileArgs, current: FileState): PlannedChange[] {
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

function dirnameOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/")) || "/";
}

/**
 * The private directories a write of `path` makes beside it (relative: the act and the probe work
 * inside the path's directory), as a glob by default: each task finds its own leftovers only.
 */
function temporaryDirectories(path: string, random = "??????"): string {
  return `${shellQuote(`./${temporaryPrefix(path)}`)}${random}`;
}

/** Their names up to the random part (six characters). */
function temporaryPrefix(path: string): string {
  return `.pgprov.${basenameOf(path).slice(0, 200)}.`;
}

function basenameOf(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

// jsdiff is required on the first diff, not imported: most runs change no file, and every run
// pays for what it loads at start (decide is synchronous, so this cannot be an import()).
const requireOnFirstDiff = createRequire(import.meta.url);

export function unifiedDiff(path: string, before: string, after: string): string {
  const { createTwoFilesPatch } = requireOnFirstDiff("diff") as typeof import("diff");
  return createTwoFilesPatch(path, path, before, after, "on the host", "wanted", { context: 3 })
    .split("\n")
    .slice(1) // drop the "Index:"/"=====" header jsdiff adds
    .filter((l) => !/^={5,}$/.test(l))
    .join("\n")
    .trimEnd();
}
