/**
 * Argument types shared by modules. Templated values arrive as strings ("{{ enabled }}" renders
 * "true"), so booleans and numbers accept their string forms; zod's own coerce would read the
 * string "false" as true.
 */
import { z } from "zod";
import { PgprovError } from "./errors.js";

const TRUE = new Set(["true", "yes", "on", "1"]);
const FALSE = new Set(["false", "no", "off", "0"]);

export const flag = z.preprocess((v) => {
  if (typeof v !== "string") return v;
  const s = v.trim().toLowerCase();
  return TRUE.has(s) ? true : FALSE.has(s) ? false : v;
}, z.boolean());

/** A line break or another control character: never part of a value pgprov writes into a file or a command. */
export const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/;

/**
 * An absolute path in its plain form: each directory named once, no `.`, `..` or `//`, no `/` at
 * the end, no control character. What the file module's checks walk step by step.
 */
export const absolutePath = z
  .string()
  .regex(/^\//, "expected an absolute path")
  .refine((p) => !CONTROL_CHARACTER.test(p), "a path cannot hold a line break or another control character")
  .refine((p) => p.split("/").slice(1).every((c) => c !== "" && c !== "." && c !== ".."), "expected a path without //, . or .. in it, and no / at its end");

/** A systemd unit name; never one that systemctl would read as an option. */
export const unitName = z.string().regex(/^[A-Za-z0-9@:_\\][A-Za-z0-9@:._\\-]*$/, "a systemd unit name");

export const wholeNumber = z.preprocess((v) => (typeof v === "string" && /^\s*\d+\s*$/.test(v) ? Number(v) : v), z.number().int().nonnegative());

/** PostgreSQL's memory units (multiples of 1024, spelt as PostgreSQL spells them). */
const BYTE_UNITS: Record<string, number> = { B: 1, kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };
const BYTE_SIZE = /^\s*(\d+)\s*(B|kB|MB|GB|TB)?\s*$/;
const BYTE_SIZE_EXPECTED = "a whole number of bytes, or one with a unit (kB, MB, GB, TB), such as 16MB";

function byteSize(text: string): number {
  const m = BYTE_SIZE.exec(text);
  return m ? Number(m[1]) * BYTE_UNITS[m[2] ?? "B"]! : Number.NaN;
}

/** "16MB", "512kB", "2 GB", or a whole number of bytes; anything else is refused, naming `option`. */
export function parseByteSize(text: string, option: string): number {
  const bytes = byteSize(text);
  if (!Number.isSafeInteger(bytes)) throw new PgprovError(`${option}: expected ${BYTE_SIZE_EXPECTED}; found "${text}"`);
  return bytes;
}

/** The same in a file the user wrote: a number is bytes. */
export const byteSizeArg = z.union([z.number().int().nonnegative(), z.string()]).transform((v, ctx) => {
  const bytes = typeof v === "number" ? v : byteSize(v);
  if (!Number.isSafeInteger(bytes)) {
    ctx.addIssue({ code: "custom", message: `expected ${BYTE_SIZE_EXPECTED}` });
    return z.NEVER;
  }
  return bytes;
});
