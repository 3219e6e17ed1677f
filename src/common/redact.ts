/**
 * Secrets never reach output: every event the engine emits passes through here first, so no
 * renderer (plain, tree, JSON) can forget to mask one. Matching is by value, so a secret is
 * masked wherever it turns up: a diff, a command, a remote error message.
 */
export const MASK = "********";

export class Redactor {
  private readonly secrets: string[];

  constructor(secrets: Iterable<string> = []) {
    // Longest first, so a secret that contains another is masked whole.
    this.secrets = [...new Set(secrets)].filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
  }

  /**
   * Whether a value holds a secret, as written or escaped the ways templates write it (SQL or
   * configuration quotes, JSON, passfile escapes).
   */
  mentionsSecret(value: unknown): boolean {
    if (this.secrets.length === 0) return false;
    const forms = this.secrets.flatMap((secret) => [
      secret,
      JSON.stringify(secret).slice(1, -1),
      secret.replace(/'/g, "''"),
      secret.replace(/[\\:]/g, "\\$&"),
    ]);
    const walk = (v: unknown): boolean =>
      typeof v === "string"
        ? forms.some((f) => v.includes(f))
        : Array.isArray(v)
          ? v.some(walk)
          : v !== null && typeof v === "object" && Object.values(v).some(walk);
    return walk(value);
  }

  text(s: string): string {
    let out = s;
    for (const secret of this.secrets) out = out.split(secret).join(MASK);
    return out;
  }

  /** A deep copy of `value` with every string masked. */
  value<T>(value: T): T {
    if (this.secrets.length === 0) return value;
    if (typeof value === "string") return this.text(value) as T;
    if (Array.isArray(value)) return value.map((v) => this.value(v)) as T;
    if (value && typeof value === "object") {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.value(v)])) as T;
    }
    return value;
  }
}
