/**
 * The inventory file's schema. Every key is documented in inventory.example.yml; keys not listed
 * here are rejected (with a suggestion), so a typo never silently falls back to a default.
 */
import { isIP } from "node:net";
import { z } from "zod";

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
  /** For networks without direct access: passed to apt on its command line, never written to the host. */
  proxy: z.url({ protocol: /^https?$/, error: "expected an http:// or https:// URL" }).optional(),
});

export const sshSchema = z.strictObject({
  user: z.string().regex(/^[a-z_][a-z0-9_-]*\$?$/, "a Unix user name").default("root"),
  port: z.number().int().min(1).max(65535).default(22),
  private_key: z.string().min(1).optional(),
  known_hosts: z.string().min(1).optional(),
  connect_timeout: z.number().positive().max(300).default(10).describe("seconds"),
});

export const inventorySchema = z
  .strictObject({
    ssh: sshSchema.default(sshSchema.parse({})),
    apt: aptSchema.default({}),
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
    const seen = new Map<string, string>();
    for (const name of names) {
      const a = inv.hosts[name]!.address;
      const other = seen.get(a);
      if (other) ctx.addIssue({ code: "custom", path: ["hosts", name, "address"], message: `address ${a} is already used by host ${other}` });
      seen.set(a, name);
    }
  });

export type InventoryFile = z.output<typeof inventorySchema>;
