/**
 * The inventory file's schema. Every key is documented in inventory.example.yml; keys not listed
 * here are rejected (with a suggestion), so a typo never silently falls back to a default.
 */
import { isIP } from "node:net";
import { z } from "zod";
import { secretValue } from "../yaml/source.js";
import { closest } from "../yaml/suggest.js";
import { SETTINGS_BY_VERSION } from "./pg-settings.js";
import { secretSource } from "./secret.js";
import { slotName } from "./slots.js";

export const hostName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, "a host name: letters, digits, '_', '-', '.'");

const address = z
  .string()
  .min(1)
  .refine((a) => isIP(a) !== 0 || /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(a), {
    message: "expected an IP address or a DNS name",
  });

/** Template variables; names must be usable in `{{ name }}`. */
export const variables = z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "a variable name: letters, digits and _"), z.unknown());

export const hostSchema = z.strictObject({
  address,
  role: z.enum(["primary", "standby"]),
  vars: variables.default({}),
});

export const aptSchema = z.strictObject({
  /** For networks without direct access; may carry a password, so never echoed in an error. */
  proxy: secretValue(z.url({ protocol: /^https?$/, error: "expected an http:// or https:// URL" })).optional(),
});

export const sshSchema = z.strictObject({
  user: z.string().regex(/^[a-z_][a-z0-9_-]*\$?$/, "a Unix user name").default("root"),
  port: z.number().int().min(1).max(65535).default(22),
  private_key: z.string().min(1).optional(),
  known_hosts: z.string().min(1).optional(),
  connect_timeout: z.number().positive().max(300).default(10).describe("seconds"),
});

/** Settings pgprov derives itself: set by hand they would break replication or be overwritten. */
export const MANAGED_SETTINGS = new Set([
  "listen_addresses",
  "port",
  "wal_level",
  "hot_standby",
  "max_wal_senders",
  "max_replication_slots",
  "primary_conninfo",
  "primary_slot_name",
  "wal_log_hints",
  "hba_file",
  "ident_file",
  "data_directory",
]);

const settingValue = z.union([z.string(), z.number(), z.boolean()]);

const cidr = z.string().refine((c) => {
  const [addr, bits, ...rest] = c.split("/");
  const family = isIP(addr ?? "");
  const max = family === 4 ? 32 : 128;
  return rest.length === 0 && family !== 0 && bits !== undefined && /^\d+$/.test(bits) && Number(bits) <= max;
}, "expected a network like 10.0.0.0/24");

export const postgresqlSchema = z.strictObject({
  /** Default: the one the host's Debian release ships (bookworm 15, trixie 17). */
  version: z
    .number()
    .int()
    .refine((v) => v in SETTINGS_BY_VERSION, `expected one of ${Object.keys(SETTINGS_BY_VERSION).join(", ")}`)
    .optional(),
  port: z.number().int().min(1).max(65535).default(5432),
  settings: z.record(z.string(), settingValue).default({}),
  clients: z.array(cidr).default([]),
  /** Where the primary archives WAL (archive_command); a directory on each host by default. */
  archive_directory: z.string().regex(/^\/[A-Za-z0-9_.\/-]+$/, "an absolute path of letters, digits, _ . / -").optional(),
});

export const replicationSchema = z.strictObject({
  user: z.string().regex(/^[a-z_][a-z0-9_]*$/, "a role name: lower-case letters, digits and _").default("replicator"),
  /** Default: generated once and kept next to the inventory (mode 0600). */
  password: secretSource.optional(),
  slots: z.boolean().default(true),
});

export const inventorySchema = z
  .strictObject({
    ssh: sshSchema.default(sshSchema.parse({})),
    apt: aptSchema.default({}),
    postgresql: postgresqlSchema.default(postgresqlSchema.parse({})),
    replication: replicationSchema.default(replicationSchema.parse({})),
    vars: variables.default({}),
    hosts: z.record(hostName, hostSchema).refine((h) => Object.keys(h).length > 0, "at least one host is required"),
  })
  .superRefine((inv, ctx) => {
    const names = Object.keys(inv.hosts);
    const primaries = names.filter((n) => inv.hosts[n]!.role === "primary");
    if (primaries.length !== 1) {
      ctx.addIssue({
        code: "custom",
        path: ["hosts", ...(primaries.length > 1 ? [primaries[1]!, "role"] : [])],
        message:
          primaries.length === 0
            ? "no host has role: primary; exactly one must"
            : `exactly one host may be the primary, found ${primaries.join(", ")}`,
      });
    }
    const known = inv.postgresql.version ? SETTINGS_BY_VERSION[inv.postgresql.version]! : new Set(Object.values(SETTINGS_BY_VERSION).flatMap((s) => [...s]));
    for (const name of Object.keys(inv.postgresql.settings)) {
      const path = ["postgresql", "settings", name];
      if (MANAGED_SETTINGS.has(name)) {
        ctx.addIssue({ code: "custom", path, message: `${name} is managed by pgprov (derived from the inventory); remove it here` });
      } else if (!name.includes(".") && !known.has(name)) {
        // Names with a dot belong to extensions (pg_stat_statements.max): PostgreSQL accepts them.
        const suggestion = closest(name, known);
        ctx.addIssue({
          code: "custom",
          path,
          message: `unknown PostgreSQL setting "${name}"${inv.postgresql.version ? ` (PostgreSQL ${inv.postgresql.version})` : ""}${suggestion ? ` (did you mean "${suggestion}"?)` : ""}`,
        });
      }
    }
    const slots = new Map<string, string>();
    for (const name of names) {
      const slot = slotName(name);
      const other = slots.get(slot);
      if (other) ctx.addIssue({ code: "custom", path: ["hosts", name], message: `hosts ${other} and ${name} would share the replication slot ${slot}; rename one` });
      slots.set(slot, name);
    }
    const seen = new Map<string, string>();
    for (const name of names) {
      const a = inv.hosts[name]!.address;
      const other = seen.get(a);
      if (other) ctx.addIssue({ code: "custom", path: ["hosts", name, "address"], message: `address ${a} is already used by host ${other}` });
      seen.set(a, name);
    }
  });

export type InventoryFile = z.output<typeof inventorySchema>;
