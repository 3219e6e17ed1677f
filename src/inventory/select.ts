/** Hosts named on the command line: names, or shell-style glob patterns (`pg*`, `db?`, `pg[23]`). */
import { PgprovError } from "../common/errors.js";

/** The inventory's names each pattern matches, in inventory order; a pattern that matches none is an error. */
export function matchHosts(patterns: string[], names: string[], option: string): string[] {
  const chosen = new Set<string>();
  for (const pattern of patterns) {
    const re = globRegExp(pattern);
    const matched = names.filter((n) => re.test(n));
    if (matched.length === 0) {
      throw new PgprovError(`${option}: "${pattern}" matches no host of the inventory (${names.join(", ")})`);
    }
    for (const n of matched) chosen.add(n);
  }
  return names.filter((n) => chosen.has(n));
}

/** `*` any run of characters, `?` one, `[...]` one of a set (`[!...]` none of it); the rest literal. */
export function globRegExp(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*") re += ".*";
    else if (c === "?") re += ".";
    else if (c === "[" && pattern.indexOf("]", i + 2) > i) {
      const end = pattern.indexOf("]", i + 2);
      const body = pattern.slice(i + 1, end);
      const negated = body.startsWith("!");
      re += `[${negated ? "^" : ""}${(negated ? body.slice(1) : body).replace(/[\\\]^]/g, "\\$&")}]`;
      i = end;
    } else re += c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}
