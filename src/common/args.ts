/**
 * Argument types shared by modules. Templated values arrive as strings ("{{ enabled }}" renders
 * "true"), so booleans and numbers accept their string forms; zod's own coerce would read the
 * string "false" as true.
 */
import { z } from "zod";

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
