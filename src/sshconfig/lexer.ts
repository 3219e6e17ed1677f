/**
 * One line of an OpenSSH client configuration, split the way OpenSSH's readconf.c splits it:
 * a keyword, then `=` or whitespace, then arguments split by `argv_split()` (double or single
 * quotes group, a backslash escapes a quote, a backslash or a space, `#` starts a comment only
 * at the start of an argument).
 *
 * Why not the `ssh-config` npm package (cyjake/ssh-config, 5.3.0, the usual choice): it is well
 * kept, but it parses differently from OpenSSH where it matters to pgprov, and it keeps no line
 * numbers, which every error here must name. Tried on 5.3.0: `HostName=h#x` gives `h` (OpenSSH:
 * `h#x`); `HostName x y` gives `x y` (OpenSSH refuses: extra arguments); `IdentityFile a\\b` keeps
 * both backslashes (OpenSSH: `a\b`); `hostname one` then `HostName two` yields two keys (OpenSSH:
 * keywords are case-insensitive, the first wins); an unclosed quote throws without a line; its
 * `compute()` knows neither Include nor %-tokens, and runs `Match exec` commands and `nslookup`
 * by default. What would be left to use of it is the splitting of a line, which is this file,
 * checked against `ssh -G` itself by test/unit/sshconfig-oracle.test.ts.
 */

export interface SplitLine {
  /** Lower case: OpenSSH's keywords are case-insensitive. */
  keyword: string;
  /** As written, for messages. */
  written: string;
  args: string[];
}

/** Returns undefined for a blank or comment line, a message for one OpenSSH refuses to split. */
export function splitLine(raw: string): SplitLine | undefined | string {
  // OpenSSH strips trailing whitespace (form feed included) before anything else.
  const line = raw.replace(/[ \t\r\n\f]+$/, "");
  const head = /^[ \t\r\n]*([^ \t\r\n=]*)[ \t\r\n]*(=?)[ \t\r\n]*/.exec(line)!;
  const written = head[1]!;
  if (written === "" && head[2] === "") return undefined;
  if (written.startsWith("#")) return undefined;
  if (written === "") return "a line must start with a keyword";
  const rest = line.slice(head[0].length);
  if (rest === "") return `no argument after keyword "${written}"`;
  const args = argvSplit(rest);
  if (args === undefined) return "invalid quotes (a quote is not closed)";
  return { keyword: written.toLowerCase(), written, args };
}

/** OpenSSH's misc.c argv_split(s, ..., terminate_on_comment = 1). */
function argvSplit(s: string): string[] | undefined {
  const args: string[] = [];
  let i = 0;
  while (i < s.length) {
    if (s[i] === " " || s[i] === "\t") {
      i++;
      continue;
    }
    if (s[i] === "#") break;
    let arg = "";
    let quote = "";
    for (; i < s.length; i++) {
      const c = s[i]!;
      const next = s[i + 1];
      if (c === "\\") {
        if (next === "'" || next === '"' || next === "\\" || (quote === "" && next === " ")) i++;
        arg += s[i];
      } else if (quote === "" && (c === " " || c === "\t")) break;
      else if (quote === "" && (c === '"' || c === "'")) quote = c;
      else if (quote !== "" && c === quote) quote = "";
      else arg += c;
    }
    if (quote !== "") return undefined;
    args.push(arg);
  }
  return args;
}

/** OpenSSH's a2port(): a decimal port number 1..65535, nothing else. */
export function parsePort(text: string): number | undefined {
  if (!/^[0-9]+$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

const TIME_UNITS: Record<string, number> = { "": 1, s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** OpenSSH's convtime(): `90`, `90s`, `1m30s`, `2h`, ... in seconds. */
export function parseTime(text: string): number | undefined {
  if (text === "" || !/^([0-9]+[smhdw]?)+$/i.test(text)) return undefined;
  let total = 0;
  for (const [, n, unit] of text.matchAll(/([0-9]+)([smhdw]?)/gi)) total += Number(n) * TIME_UNITS[unit!.toLowerCase()]!;
  return Number.isSafeInteger(total) && total <= 2 ** 31 - 1 ? total : undefined;
}

/** OpenSSH's parse_flag: yes/true, no/false. */
export function parseFlag(text: string): boolean | undefined {
  const t = text.toLowerCase();
  if (t === "yes" || t === "true") return true;
  if (t === "no" || t === "false") return false;
  return undefined;
}
