/**
 * Secrets never reach output: every event the engine emits passes through here first, so no
 * renderer (plain, tree, JSON) can forget to mask one, and the CLI masks whatever else it prints
 * (error messages, the steps of an operation, status) with every secret the process has loaded.
 * Matching is by value, so a secret is masked wherever it turns up: a diff, a command, a remote
 * error message; and in every form pgprov or a template can write it in.
 */
export const MASK = "********";

/**
 * The ways a value gets written: by the template helpers (playbook/template.ts: json, pgquote,
 * pgvalue, pgpass), in a libpq connection string, in a URL (the apt proxy's password), and in
 * shell quotes (modules/shell.ts). A secret is masked in each of these, and in each of these
 * applied to another (a URL-encoded password in shell quotes, say).
 */
const ENCODINGS: readonly ((s: string) => string)[] = [
  (s) => s,
  (s) => JSON.stringify(s).slice(1, -1),
  // pgquote and pgvalue: '' for a quote; with backslashes doubled as well, as a configuration
  // file's escape syntax writes them.
  (s) => s.replace(/'/g, "''"),
  (s) => s.replace(/\\/g, "\\\\").replace(/'/g, "''"),
  // A libpq connection string's quoted value, or a configuration value escaped with backslashes.
  (s) => s.replace(/[\\']/g, "\\$&"),
  // A passfile field.
  (s) => s.replace(/[\\:]/g, "\\$&"),
  (s) => encodeURIComponent(s),
  urlPassword,
  // Shell: inside single quotes, and inside double quotes.
  (s) => s.replace(/'/g, `'\\''`),
  (s) => s.replace(/[\\"$`]/g, "\\$&"),
];

/** A password as the WHATWG URL parser writes it in a URL's userinfo (how the apt proxy is normalised). */
function urlPassword(s: string): string {
  const url = new URL("http://user@host");
  url.password = s;
  return url.password;
}

/** Every form `secret` can take in pgprov's output, longest first. */
export function secretForms(secret: string): string[] {
  const forms = new Set<string>();
  for (const outer of ENCODINGS) for (const inner of ENCODINGS) forms.add(outer(inner(secret)));
  forms.delete("");
  return [...forms].sort((a, b) => b.length - a.length);
}

const MEMO_MAX_LENGTH = 1024;
const MEMO_MAX_ENTRIES = 5_000;

export class Redactor {
  private readonly forms = new Set<string>();
  private pattern?: RegExp;
  /**
   * Texts masked already, with what masking made of them: a run's events repeat the same names,
   * hosts and summaries hundreds of times (every task of every host), and each pass of the
   * pattern (every form of every secret) over them was a tenth of a no-op's CPU on ten hosts.
   */
  private readonly masked = new Map<string, string>();

  constructor(secrets: Iterable<string> = []) {
    for (const secret of secrets) this.add(secret);
  }

  /** Masks `secret` from now on, whatever its length: a short secret is still a secret. */
  add(secret: string): void {
    for (const form of secretForms(secret)) this.forms.add(form);
    this.pattern = undefined;
    this.masked.clear();
  }

  private regex(): RegExp | undefined {
    if (this.forms.size === 0) return undefined;
    // Longest first, so a secret that contains another (or a form longer than the raw value) is
    // masked whole; one pass, so a mask is never masked again.
    this.pattern ??= new RegExp(
      [...this.forms]
        .sort((a, b) => b.length - a.length)
        .map((f) => f.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
        .join("|"),
      "g",
    );
    return this.pattern;
  }

  /** Whether a value holds a secret, in any of the forms above. */
  mentionsSecret(value: unknown): boolean {
    const regex = this.regex();
    if (!regex) return false;
    const walk = (v: unknown): boolean =>
      typeof v === "string"
        ? v.search(regex) >= 0
        : Array.isArray(v)
          ? v.some(walk)
          : v !== null && typeof v === "object" && Object.values(v).some(walk);
    return walk(value);
  }

  /** How many texts the memo holds (for tests). */
  get remembered(): number {
    return this.masked.size;
  }

  text(s: string): string {
    const regex = this.regex();
    if (!regex) return s;
    let masked = this.masked.get(s);
    if (masked === undefined) {
      masked = s.replace(regex, MASK);
      // Only texts that hold no secret (the names, hosts and summaries that repeat), so that the
      // memo never keeps a secret alive; bounded, and long texts (a diff, a script's output) are
      // seldom repeated.
      if (masked === s && s.length <= MEMO_MAX_LENGTH && this.masked.size < MEMO_MAX_ENTRIES) this.masked.set(s, masked);
    }
    return masked;
  }

  /** A deep copy of `value` with every string masked. */
  value<T>(value: T): T {
    if (this.forms.size === 0) return value;
    if (typeof value === "string") return this.text(value) as T;
    if (Array.isArray(value)) return value.map((v) => this.value(v)) as T;
    // A Date holds no secret, and Object.entries would make it {}.
    if (value instanceof Date) return value;
    if (value && typeof value === "object") {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.value(v)])) as T;
    }
    return value;
  }
}

/**
 * Every secret this process has loaded (each Secret adds itself): the CLI masks everything it
 * prints with it, so a message that was built outside the engine's events cannot leak one either.
 */
export const loadedSecrets = new Redactor();

/**
 * A diff of a file whose content holds a secret, with every removed line masked whole: the
 * redactor masks the current secret wherever it appears, but an old one (before a rotation, or
 * changed by hand) it cannot recognise. Only the `---`/`+++` lines before the first hunk are
 * headers; inside a hunk, a line starting with `-` is content, whatever follows the `-`.
 */
export function maskRemovedLines(diff: string): string {
  let inHunk = false;
  return diff
    .split("\n")
    .map((line) => {
      if (line.startsWith("@@")) inHunk = true;
      else if (inHunk && line.startsWith("-")) return line.length > 1 ? `-${MASK}` : line;
      return line;
    })
    .join("\n");
}
