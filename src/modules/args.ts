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

export const wholeNumber = z.preprocess((v) => (typeof v === "string" && /^\s*\d+\s*$/.test(v) ? Number(v) : v), z.number().int().nonnegative());
