/**
 * Where an inventory's secrets come from: an environment variable or a file of mode 0600, never
 * the inventory itself (see common/secret.ts for what a Secret is).
 */
import { readFileSync, statSync } from "node:fs";
import { z } from "zod";
import { Secret } from "../common/secret.js";
import { secretValue } from "../yaml/source.js";

/** Where a secret comes from; a secret written in its place is never echoed in an error. */
export const secretSource = secretValue(
  z.union(
    [z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "an environment variable name") }), z.strictObject({ file: z.string().min(1) })],
    { error: "expected { env: VARIABLE } or { file: PATH }" },
  ),
);
export type SecretSource = z.output<typeof secretSource>;

/** Resolves a source; throws a plain message (the caller adds the position). */
export function readSecret(source: SecretSource, resolvePath: (p: string) => string): Secret {
  if ("env" in source) {
    const value = process.env[source.env];
    if (value === undefined || value === "") throw new Error(`the environment variable ${source.env} is not set`);
    return new Secret(value, `env ${source.env}`);
  }
  const path = resolvePath(source.file);
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (e) {
    throw new Error(`cannot read ${path} (${(e as NodeJS.ErrnoException).code})`);
  }
  // Like ssh with a private key: a secret others can read is refused, not silently used.
  if (mode & 0o077) throw new Error(`${path} is readable by others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`);
  const value = readFileSync(path, "utf8").replace(/\r?\n$/, "");
  if (!value) throw new Error(`${path} is empty`);
  return new Secret(value, `file ${path}`);
}
