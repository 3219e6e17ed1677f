/**
 * Reads OpenSSH client configuration files into a tree: each file's lines in order, an Include
 * holding the files it named. Every line of every file reached is checked here, whether or not
 * it will apply to a host, as OpenSSH checks them: bad input stops a run before anything
 * connects, with the file and line. Which lines apply to a host is lookup.ts's business.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { homedir, userInfo } from "node:os";
import { isAbsolute, join } from "node:path";
import { FileError, PgprovError, type SourceProblem } from "../common/errors.js";
import { parseFlag, parsePort, parseTime, splitLine } from "./lexer.js";
import { parseProxyJump, type JumpHop } from "./jump.js";
import { matchPatternList } from "./patterns.js";
import { homePath, otherHomeRefused } from "./expand.js";

export interface Where {
  file: string;
  line: number;
  col: number;
}

/** A criterion of a `Match` line; `negated` for `!host ...`. */
export interface MatchCriterion {
  name: "all" | "host" | "originalhost" | "user" | "localuser";
  negated: boolean;
  patterns: string;
}

export type ConfigNode =
  | { kind: "host"; at: Where; patterns: string[] }
  | { kind: "match"; at: Where; criteria: MatchCriterion[] }
  | { kind: "include"; at: Where; files: ConfigFile[] }
  | { kind: "option"; at: Where; keyword: string; value: OptionValue };

export type OptionValue = string | number | boolean | string[] | JumpHop[];

export interface ConfigFile {
  path: string;
  nodes: ConfigNode[];
}

export interface SshConfig {
  /** The top-level files in the order OpenSSH reads them (the user's, then the system's). */
  files: ConfigFile[];
  /** Lines read but ignored: options unknown to OpenSSH (a typo of an honoured one shows here). */
  warnings: SourceProblem[];
}

export interface LoadOptions {
  /** Home directory for `~` and relative Include paths; OpenSSH uses the password database's. */
  home?: string;
}

/** OpenSSH's READCONF_MAX_DEPTH. */
export const MAX_INCLUDE_DEPTH = 16;

export const USER_CONFIG = "~/.ssh/config";
export const SYSTEM_CONFIG = "/etc/ssh/ssh_config";

/**
 * What OpenSSH reads without `-F`: the user's file, then the system's (`Include` relative to
 * /etc/ssh there); either may be missing.
 */
export function loadDefaultSshConfig(options: LoadOptions = {}): SshConfig {
  const home = options.home ?? defaultHome();
  return loadFiles(
    [
      { path: join(home, ".ssh", "config"), userConf: true, optional: true, checkPerm: true },
      { path: SYSTEM_CONFIG, userConf: false, optional: true, checkPerm: false },
    ],
    home,
  );
}

/** `ssh -F FILE`: only this file (which must exist); relative Includes are under ~/.ssh. */
export function loadSshConfigFile(path: string, options: LoadOptions = {}): SshConfig {
  return loadFiles([{ path, userConf: true, optional: false, checkPerm: false }], options.home ?? defaultHome());
}

/** Parses text as if read from `file`, with Includes resolved on disk. */
export function parseSshConfig(text: string, file: string, options: LoadOptions = {}): SshConfig {
  const reader = new Reader(options.home ?? defaultHome());
  const root = reader.parse(text, file, true, 0);
  return reader.finish([root]);
}

function defaultHome(): string {
  try {
    return userInfo().homedir;
  } catch {
    return homedir();
  }
}

/** How OpenSSH reads a file: `userConf` for Include paths under ~/.ssh, `checkPerm` as its SSHCONF_CHECKPERM. */
interface ReadMode {
  userConf: boolean;
  optional: boolean;
  checkPerm: boolean;
}

function loadFiles(tops: ({ path: string } & ReadMode)[], home: string): SshConfig {
  const reader = new Reader(home);
  const files: ConfigFile[] = [];
  for (const top of tops) {
    const file = reader.read(top.path, top, 0);
    if (file) files.push(file);
  }
  return reader.finish(files);
}

/** A parser returns the value, or `{ error }` saying what is wrong. */
type OptionParser = (args: string[], keyword: string) => OptionValue | { error: string };

const one =
  (parse: (arg: string) => OptionValue | undefined, expected: string): OptionParser =>
  (args, keyword) => {
    if (args.length > 1) return { error: `keyword ${keyword} takes one argument, found ${args.length}` };
    const value = parse(args[0]!);
    return value === undefined ? { error: `${keyword}: expected ${expected}, found "${args[0]}"` } : value;
  };
const text = one((a) => (a === "" ? undefined : a), "a value");
const list: OptionParser = (args, keyword) => (args.some((a) => a === "") ? { error: `keyword ${keyword}: empty argument` } : args);
const whole: OptionParser = (args) => args.join(" ");

const STRICT_HOST_KEY_CHECKING = ["yes", "true", "no", "false", "ask", "accept-new", "off"];

/** The options pgprov reads, each checked as OpenSSH checks it. Others are skipped unread. */
const OPTIONS: Record<string, OptionParser> = {
  hostname: text,
  user: text,
  port: one(parsePort, "a port number 1..65535"),
  identityfile: text,
  identitiesonly: one(parseFlag, "yes or no"),
  identityagent: text,
  proxyjump: (args, keyword) => {
    if (args.length > 1) return { error: `keyword ${keyword} takes one argument, found ${args.length}` };
    const hops = parseProxyJump(args[0]!);
    return typeof hops === "string" ? { error: hops } : hops;
  },
  proxycommand: whole,
  userknownhostsfile: list,
  globalknownhostsfile: list,
  connecttimeout: one((a) => (a.toLowerCase() === "none" ? 0 : parseTime(a)), "a time (seconds, or like 1m30s)"),
  serveraliveinterval: one(parseTime, "a time (seconds, or like 1m30s)"),
  serveralivecountmax: one((a) => (/^[0-9]+$/.test(a) ? Number(a) : undefined), "a whole number"),
  stricthostkeychecking: one((a) => (STRICT_HOST_KEY_CHECKING.includes(a.toLowerCase()) ? a.toLowerCase() : undefined), STRICT_HOST_KEY_CHECKING.join(", ")),
  hostkeyalias: text,
  knownhostscommand: whole,
  ignoreunknown: text,
};

/**
 * Every other keyword OpenSSH's client knows (OpenSSH 10, deprecated and unsupported ones
 * included, which OpenSSH accepts with a notice): a keyword outside this list and OPTIONS is a
 * warning, not an error, since a newer OpenSSH may know it.
 */
const OTHER_KEYWORDS = new Set(
  (
    "addkeystoagent addressfamily afstokenpassing batchmode bindaddress bindinterface canonicaldomains " +
    "canonicalizefallbacklocal canonicalizehostname canonicalizemaxdots canonicalizepermittedcnames casignaturealgorithms " +
    "certificatefile challengeresponseauthentication channeltimeout checkhostip cipher ciphers clearallforwardings " +
    "compression compressionlevel connectionattempts controlmaster controlpath controlpersist dsaauthentication " +
    "dynamicforward enableescapecommandline enablesshkeysign escapechar exitonforwardfailure fallbacktorsh " +
    "fingerprinthash forkafterauthentication forwardagent forwardx11 forwardx11timeout forwardx11trusted gatewayports " +
    "globalknownhostsfile2 gssapiauthentication gssapiclientidentity gssapidelegatecredentials gssapikexalgorithms " +
    "gssapikeyexchange gssapirenewalforcesrekey gssapiserveridentity gssapitrustdns hashknownhosts " +
    "hostbasedacceptedalgorithms hostbasedauthentication hostbasedkeytypes hostkeyalgorithms identityfile2 ipqos " +
    "kbdinteractiveauthentication kbdinteractivedevices kerberosauthentication kerberostgtpassing kexalgorithms " +
    "localcommand localforward loglevel logverbose macs nohostauthenticationforlocalhost numberofpasswordprompts " +
    "obscurekeystroketiming passwordauthentication permitlocalcommand permitremoteopen pkcs11provider " +
    "preferredauthentications protocol protocolkeepalives proxyusefdpass pubkeyacceptedalgorithms " +
    "pubkeyacceptedkeytypes pubkeyauthentication refuseconnection rekeylimit remotecommand remoteforward requesttty " +
    "requiredrsasize revokedhostkeys rhostsauthentication rhostsrsaauthentication securitykeyprovider sendenv " +
    "sessiontype setenv setuptimeout skeyauthentication smartcarddevice stdinnull streamlocalbindmask " +
    "streamlocalbindunlink syslogfacility tag tcpkeepalive tisauthentication tunnel tunneldevice updatehostkeys " +
    "useblacklistedkeys usekeychain useprivilegedport userknownhostsfile2 useroaming usersh verifyhostkeydns " +
    "versionaddendum visualhostkey warnweakcrypto xauthlocation"
  ).split(" "),
);

const MATCH_CRITERIA = new Set(["all", "host", "originalhost", "user", "localuser"]);
const MATCH_REFUSED: Record<string, string> = {
  exec: "pgprov runs no command from an ssh configuration",
  canonical: "pgprov does not canonicalise host names (CanonicalizeHostname)",
  final: "pgprov does not canonicalise host names (CanonicalizeHostname)",
  localnetwork: "pgprov does not look at the local network's addresses",
  tagged: "pgprov sets no Tag",
  version: "pgprov is not an OpenSSH version",
  sessiontype: "pgprov opens its own sessions",
  command: "pgprov opens its own sessions",
};

class Reader {
  private readonly problems: SourceProblem[] = [];
  private readonly warnings: SourceProblem[] = [];
  private readonly ignoreUnknown: string[] = [];
  private readonly unknown: { at: Where; written: string }[] = [];

  constructor(private readonly home: string) {}

  finish(files: ConfigFile[]): SshConfig {
    if (this.problems.length > 0) throw new FileError(this.problems);
    for (const u of this.unknown) {
      if (this.ignoreUnknown.some((patterns) => matchPatternList(u.written.toLowerCase(), patterns, true) === 1)) continue;
      this.warnings.push({ ...u.at, message: `unknown option "${u.written}" ignored (OpenSSH itself would refuse this file)` });
    }
    return { files, warnings: this.warnings };
  }

  read(path: string, mode: ReadMode, depth: number, from?: Where): ConfigFile | undefined {
    let text: string;
    try {
      // OpenSSH refuses ~/.ssh/config and included files that others can change (they decide
      // where connections go and which keys are offered); a file named with -F it reads as is.
      const st = statSync(path);
      const uid = process.getuid?.() ?? 0;
      if (mode.checkPerm && ((st.uid !== 0 && st.uid !== uid) || (st.mode & 0o022) !== 0)) {
        this.problem(from, `${path}: bad owner or permissions (OpenSSH requires it owned by you or root and not writable by group or others)`);
        return undefined;
      }
      text = readFileSync(path, "utf8");
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT" && mode.optional) return undefined;
      this.problem(from, `cannot read ssh configuration ${path}: ${(e as Error).message}`);
      return undefined;
    }
    return this.parse(text, path, mode.userConf, depth);
  }

  parse(text: string, path: string, userConf: boolean, depth: number): ConfigFile {
    const nodes: ConfigNode[] = [];
    text.split("\n").forEach((raw, i) => {
      const split = splitLine(raw);
      if (split === undefined) return;
      const at: Where = { file: path, line: i + 1, col: raw.search(/\S/) + 1 };
      if (typeof split === "string") return this.problem(at, split);
      const node = this.node(split.keyword, split.written, split.args, at, userConf, depth);
      if (node) nodes.push(node);
    });
    return { path, nodes };
  }

  private node(keyword: string, written: string, args: string[], at: Where, userConf: boolean, depth: number): ConfigNode | undefined {
    if (keyword === "host") {
      if (args.some((a) => a === "")) return this.problem(at, "keyword Host: empty argument");
      return { kind: "host", at, patterns: args };
    }
    if (keyword === "match") {
      const criteria = this.matchCriteria(args, at);
      return criteria && { kind: "match", at, criteria };
    }
    if (keyword === "include") return { kind: "include", at, files: this.include(args, at, userConf, depth) };
    const parse = OPTIONS[keyword];
    if (!parse) {
      if (!OTHER_KEYWORDS.has(keyword)) this.unknown.push({ at, written });
      return undefined;
    }
    const value = parse(args, written);
    if (typeof value === "object" && "error" in value) return this.problem(at, value.error);
    if (keyword === "ignoreunknown") this.ignoreUnknown.push(value as string);
    return { kind: "option", at, keyword, value };
  }

  private matchCriteria(args: string[], at: Where): MatchCriterion[] | undefined {
    const criteria: MatchCriterion[] = [];
    for (let i = 0; i < args.length; i++) {
      const word = args[i]!;
      const negated = word.startsWith("!");
      const name = (negated ? word.slice(1) : word).toLowerCase();
      if (name in MATCH_REFUSED) return this.problem(at, `Match ${name} is not supported: ${MATCH_REFUSED[name]}; pgprov honours Match all, host, originalhost, user and localuser`);
      if (!MATCH_CRITERIA.has(name)) return this.problem(at, `unknown Match criterion "${word}"`);
      if (name === "all") {
        criteria.push({ name, negated, patterns: "" });
        continue;
      }
      const patterns = args[++i];
      if (patterns === undefined || patterns === "") return this.problem(at, `Match ${name} needs a pattern`);
      criteria.push({ name: name as MatchCriterion["name"], negated, patterns });
    }
    if (criteria.length === 0) return this.problem(at, "Match needs a criterion (all, host, originalhost, user, localuser)");
    return criteria;
  }

  private include(args: string[], at: Where, userConf: boolean, depth: number): ConfigFile[] {
    if (depth + 1 > MAX_INCLUDE_DEPTH) {
      this.problem(at, `Include nested more than ${MAX_INCLUDE_DEPTH} deep (a file that includes itself?)`);
      return [];
    }
    const files: ConfigFile[] = [];
    for (const arg of args) {
      if (arg === "") {
        this.problem(at, "keyword Include: empty argument");
        continue;
      }
      if (arg.startsWith("~") && !userConf) {
        this.problem(at, `Include ${arg}: "~" is not allowed in the system configuration`);
        continue;
      }
      const expanded = homePath(arg, this.home);
      if (expanded === undefined) {
        this.problem(at, `Include ${otherHomeRefused(arg)}`);
        continue;
      }
      const pattern = isAbsolute(expanded) ? expanded : join(userConf ? join(this.home, ".ssh") : "/etc/ssh", expanded);
      for (const path of glob(pattern)) {
        const file = this.read(path, { userConf, optional: true, checkPerm: true }, depth + 1, at);
        if (file) files.push(file);
      }
    }
    return files;
  }

  /** Collected, to report every bad line at once; a top-level file that cannot be read stops at once. */
  private problem(at: Where | undefined, message: string): undefined {
    if (!at) throw new PgprovError(message);
    this.problems.push({ ...at, message });
    return undefined;
  }
}

/**
 * glob(3) as OpenSSH's Include uses it: `*`, `?` and `[...]` within one path component, a
 * leading `.` matched only explicitly, results sorted; no match is no file, not an error.
 */
export function glob(pattern: string): string[] {
  const parts = pattern.split("/").filter((p, i) => p !== "" || i === 0);
  let paths = [parts[0] === "" ? "/" : parts[0]!];
  for (const part of parts.slice(1)) {
    const next: string[] = [];
    for (const dir of paths) {
      if (!/[*?[]/.test(part)) {
        next.push(join(dir, part));
        continue;
      }
      const re = globComponent(part);
      let entries: string[];
      try {
        entries = readdirSync(dir);
      } catch {
        continue;
      }
      for (const e of entries.sort()) if (re.test(e) && (!e.startsWith(".") || part.startsWith("."))) next.push(join(dir, e));
    }
    paths = next;
  }
  return paths.filter((p) => existsSync(p));
}

function globComponent(part: string): RegExp {
  let re = "";
  for (let i = 0; i < part.length; i++) {
    const c = part[i]!;
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "[" && part.indexOf("]", i + 2) > 0) {
      const end = part.indexOf("]", i + 2);
      let body = part.slice(i + 1, end);
      if (body.startsWith("!")) body = `^${body.slice(1)}`;
      re += `[${body.replace(/\\/g, "\\\\")}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\\]]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}
