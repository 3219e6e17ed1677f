/**
 * Names and per-object settings as PostgreSQL takes them, checked before anything connects: a
 * role or database name PostgreSQL (or pg_hba.conf) would read otherwise is refused, and a
 * setting's value is written the way `ALTER ... SET` stores it, so what the server holds can be
 * compared with the inventory.
 */
import { z } from "zod";
import { CONTROL_CHARACTER } from "../common/args.js";
import { sqlIdentifier, sqlLiteral } from "../common/sql.js";

/** Words pg_hba.conf reads in its database and user fields as more than one name. */
const HBA_KEYWORDS = new Set(["all", "sameuser", "samerole", "replication"]);
/** Role names PostgreSQL refuses to create, even quoted. */
const RESERVED_ROLES = new Set(["public", "none", "current_user", "session_user", "current_role"]);

const identifier = (what: string) =>
  z
    .string()
    .regex(/^[a-z_][a-z0-9_$]*$/, `${what}: lower-case letters, digits, _ and $, not starting with a digit`)
    .max(63, `${what} of at most 63 characters (PostgreSQL's NAMEDATALEN)`)
    .refine((n) => !HBA_KEYWORDS.has(n), { error: (i) => `"${String(i.input)}" is a keyword in pg_hba.conf; choose another name` });

export const roleName = identifier("a role name")
  .refine((n) => !n.startsWith("pg_"), "role names starting with pg_ are reserved by PostgreSQL")
  .refine((n) => !RESERVED_ROLES.has(n), { error: (i) => `"${String(i.input)}" is a reserved role name in PostgreSQL` });

export const databaseName = identifier("a database name");

/** PostgreSQL's grammar for a setting's name (guc-file.l): an extension's have one dot. */
export const SETTING_NAME = /^[a-z_][a-z0-9_$]*(\.[a-z_][a-z0-9_$]*)?$/i;

export const settingValue = z.union([
  z.string().refine((v) => !CONTROL_CHARACTER.test(v), "a setting's value cannot hold a line break or another control character"),
  z.number(),
  z.boolean(),
]);
export type SettingValue = z.output<typeof settingValue>;

/** Settings set per role or database: `ALTER ROLE ... SET name = value`. */
export const objectSettings = z.record(z.string().regex(SETTING_NAME, "a setting name: letters, digits, _ and $, at most one dot"), settingValue).default({});

/** Settings whose value is a list of names: each element is a name of its own (search_path = app, public). */
const NAME_LISTS = new Set(["search_path", "temp_tablespaces", "session_preload_libraries", "local_preload_libraries", "shared_preload_libraries"]);

function elements(name: string, value: SettingValue): string[] | undefined {
  if (!NAME_LISTS.has(name.toLowerCase()) || typeof value !== "string") return undefined;
  return value.split(",").map((e) => e.trim().replace(/^"(.*)"$/, "$1")).filter(Boolean);
}

function text(value: SettingValue): string {
  return typeof value === "boolean" ? (value ? "on" : "off") : String(value);
}

/** `name = value` for ALTER ROLE/DATABASE ... SET. */
export function setClause(name: string, value: SettingValue): string {
  const list = elements(name, value);
  return `${name} = ${list ? list.map(sqlLiteral).join(", ") : sqlLiteral(text(value))}`;
}

/** The `name=value` PostgreSQL stores for that clause (pg_db_role_setting.setconfig), to compare. */
export function storedSetting(name: string, value: SettingValue): string {
  const list = elements(name, value);
  return `${name.toLowerCase()}=${list ? list.map((e) => (/^[a-z_][a-z0-9_]*$/.test(e) ? e : sqlIdentifier(e))).join(", ") : text(value)}`;
}

/** The settings that differ from what the server stores (a setting of its own the server has is left alone). */
export function settingsToSet(wanted: Record<string, SettingValue>, stored: readonly string[]): [string, SettingValue][] {
  const have = new Set(stored);
  return Object.entries(wanted).filter(([name, value]) => !have.has(storedSetting(name, value)));
}
