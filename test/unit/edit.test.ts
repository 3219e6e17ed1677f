import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { rewriteRoles } from "../../src/inventory/edit.js";
import { loadInventory } from "../../src/inventory/inventory.js";

describe("rewriting roles", () => {
  it("changes only the role fields, and keeps comments, order and layout", () => {
    const file = join(mkdtempSync(join(tmpdir(), "pgprov-edit-")), "inventory.yml");
    const text = [
      "# Production cluster, rack 4.",
      "ssh:",
      "  user: root   # via the bastion",
      "hosts:",
      "  pg1: { address: 10.0.0.11, role: primary }   # the big one",
      "  pg2:",
      "    role: standby  # reads for analytics",
      "    address: 10.0.0.12",
      "",
    ].join("\n");
    writeFileSync(file, text);
    const inventory = loadInventory(file);
    expect(rewriteRoles(inventory, { pg1: "standby", pg2: "primary" })).toEqual(["pg1: primary -> standby", "pg2: standby -> primary"]);
    expect(readFileSync(file, "utf8")).toBe(text.replace("role: primary }", "role: standby }").replace("role: standby  #", "role: primary  #"));
    expect(inventory.primary.name).toBe("pg2");
    expect(loadInventory(file).primary.name).toBe("pg2");
    expect(rewriteRoles(inventory, { pg2: "primary" })).toEqual([]);
  });
});

describe("issue 8 smaller defects: a symlinked inventory", () => {
  it("rewrites the link's target, keeping its mode, and leaves the link a link", () => {
    const dir = mkdtempSync(join(tmpdir(), "pgprov-edit-"));
    mkdirSync(join(dir, "real"));
    const target = join(dir, "real", "inventory.yml");
    writeFileSync(target, "hosts:\n  pg1: { address: 10.0.0.11, role: primary }\n  pg2: { address: 10.0.0.12, role: standby }\n", { mode: 0o640 });
    chmodSync(target, 0o640);
    const link = join(dir, "inventory.yml");
    symlinkSync(join("real", "inventory.yml"), link);
    rewriteRoles(loadInventory(link), { pg1: "standby", pg2: "primary" });
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(loadInventory(target).primary.name).toBe("pg2");
    expect(statSync(target).mode & 0o777).toBe(0o640);
    expect(readdirSync(join(dir, "real"))).toEqual(["inventory.yml"]);
  });
});
