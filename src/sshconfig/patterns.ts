/** OpenSSH's match.c: the patterns of `Host` and `Match` lines. */

/** match_pattern(): `*` any run, `?` one character, nothing else special; case-sensitive. */
export function matchPattern(text: string, pattern: string): boolean {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[\\s\\S]*").replace(/\?/g, "[\\s\\S]");
  return new RegExp(`^${re}$`).test(text);
}

/**
 * match_pattern_list(): a comma-separated list where `!pattern` excludes. 1 when a pattern
 * matches and none excluded, -1 when an excluding one matched, 0 otherwise.
 */
export function matchPatternList(text: string, list: string, lowercase: boolean): -1 | 0 | 1 {
  const subject = lowercase ? text.toLowerCase() : text;
  let result: 0 | 1 = 0;
  for (const raw of list.split(",")) {
    const negated = raw.startsWith("!");
    const pattern = lowercase ? raw.slice(negated ? 1 : 0).toLowerCase() : raw.slice(negated ? 1 : 0);
    if (matchPattern(subject, pattern)) {
      if (negated) return -1;
      result = 1;
    }
  }
  return result;
}

/**
 * A `Host` line: its arguments are patterns (not comma lists), any matching one selects the
 * block and any matching `!pattern` excludes the host whatever else matches.
 */
export function matchHostLine(host: string, patterns: string[]): boolean {
  let matched = false;
  for (const raw of patterns) {
    const negated = raw.startsWith("!");
    if (matchPattern(host, negated ? raw.slice(1) : raw)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}
