import { chmodSync, copyFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { inspect } from "node:util";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadInventory } from "../../src/inventory/inventory.js";
import { yamlFiles } from "./yaml-files.js";

const { dir, write, problems } = yamlFiles("inventory", loadInventory);

describe("inventory", () => {
  it("loads the minimal shape with defaults and resolves paths relative to the file", () => {
    writeFileSync(join(dir, "id_test"), "key");
    const inv = loadInventory(
      write(`ssh:\n  private_key: ./id_test\n  known_hosts: ./kh\nhosts:\n  pg1: { address: 10.0.0.11, role: primary }\n  pg2: { address: 10.0.0.12, role: standby }\n`),
    );
    const c = inv.hosts[0]!.connection;
    expect([c.user.value, c.port.value, c.connectTimeout.value]).toEqual(["root", 22, 10]);
    expect(c.identityFiles[0]!.value).toBe(join(dir, "id_test"));
    expect(c.userKnownHostsFiles.value).toEqual([join(dir, "kh")]);
    expect(inv.hosts.map((h) => h.name)).toEqual(["pg1", "pg2"]);
    expect(inv.primary.name).toBe("pg1");
    expect(inv.standbys.map((h) => h.name)).toEqual(["pg2"]);
  });

  it("rejects unknown keys at their position, with a suggestion", () => {
    expect(problems(`ssh:\n  knwon_hosts: ./kh\nhosts:\n  pg1: { adress: 10.0.0.11, role: primary }\n`)).toEqual([
      `2:3: ssh: unknown key "knwon_hosts" (did you mean "known_hosts"?)`,
      `4:8: hosts.pg1: missing required key "address" (expected string)`,
      `4:10: hosts.pg1: unknown key "adress" (did you mean "address"?)`,
    ]);
  });

  it("says what was expected and what was found", () => {
    expect(problems(`hosts:\n  pg1: { address: 10.0.0.11, role: master }\n`)).toEqual([
      `2:36: hosts.pg1.role: invalid option: expected one of "primary"|"standby"|"backup", found master`,
    ]);
    expect(problems(`ssh:\n  port: "22"\nhosts:\n  pg1: { address: 10.0.0.11, role: primary }\n`)).toEqual([
      `2:9: ssh.port: expected number, received string`,
    ]);
  });

  it("requires exactly one primary and distinct addresses", () => {
    expect(problems(`hosts:\n  pg1: { address: 10.0.0.11, role: standby }\n`)).toEqual([`2:3: hosts: no host has role: primary; exactly one must`]);
    expect(
      problems(`hosts:\n  pg1: { address: 10.0.0.11, role: primary }\n  pg2: { address: 10.0.0.11, role: primary }\n`),
    ).toEqual([
      `3:36: hosts.pg2.role: exactly one host may be the primary, found pg1, pg2`,
      `3:19: hosts.pg2.address: address 10.0.0.11 is already used by host pg1`,
    ]);
  });

  it("reports YAML syntax errors with their position", () => {
    const [first] = problems(`hosts:\n  pg1: { address: 10.0.0.11, role: primary\n`);
    expect(first).toMatch(/^3:1: Flow map/);
  });

  it("reports an unreadable private key at the key's line", () => {
    expect(problems(`ssh:\n  private_key: ./missing\nhosts:\n  pg1: { address: 10.0.0.11, role: primary }\n`)).toEqual([
      `2:16: ssh.private_key: cannot read ${join(dir, "missing")} (ENOENT)`,
    ]);
  });

  it("reads secrets from the environment or a private file, and never prints them", () => {
    process.env.PGPROV_TEST_TOKEN = "tok-from-env";
    writeFileSync(join(dir, "db.secret"), "pw-from-file\n", { mode: 0o600 });
    const inv = loadInventory(
      write(`vars:\n  token: { secret: { env: PGPROV_TEST_TOKEN } }\nhosts:\n  pg1: { address: 10.0.0.11, role: primary, vars: { db: { secret: { file: ./db.secret } } } }\n`),
    );
    expect(inv.secrets.map((s) => s.reveal())).toEqual(["tok-from-env", "pw-from-file"]);
    const text = `${JSON.stringify(inv)} ${inspect(inv, { depth: 9 })} ${String(inv.vars.token)}`;
    expect(text).not.toContain("tok-from-env");
    expect(text).not.toContain("pw-from-file");
  });

  it("refuses a secret that is missing or readable by others, at its line", () => {
    writeFileSync(join(dir, "open.secret"), "pw\n");
    chmodSync(join(dir, "open.secret"), 0o644);
    delete process.env.PGPROV_TEST_UNSET;
    expect(problems(`vars:\n  a: { secret: { env: PGPROV_TEST_UNSET } }\n  b: { secret: { file: ./open.secret } }\n  c: { secret: { value: x } }\nhosts:\n  pg1: { address: 10.0.0.11, role: primary }\n`)).toEqual([
      `2:16: vars.a: the environment variable PGPROV_TEST_UNSET is not set`,
      `3:16: vars.b: ${join(dir, "open.secret")} is readable by others (mode 644); chmod 600 it`,
      `4:16: vars.c.secret: expected { env: VARIABLE } or { file: PATH }`,
    ]);
  });

  it("loads inventory.example.yml, which documents every key", () => {
    const copy = join(mkdtempSync(join(tmpdir(), "pgprov-example-")), "inventory.yml");
    copyFileSync(join(import.meta.dirname, "../../inventory.example.yml"), copy);
    writeFileSync(join(dirname(copy), "id_ed25519"), "not read until connecting");
    writeFileSync(join(dirname(copy), "pg1_key"), "not read until connecting");
    writeFileSync(join(dirname(copy), "ssh_config"), "Host pg*\n  ServerAliveInterval 15\n", { mode: 0o600 });
    process.env.PGPROV_KEY_PASSPHRASE = "example-key-passphrase";
    process.env.APP_TOKEN = "example-token";
    process.env.PGPROV_REPLICATION_PASSWORD = "example-replication-password";
    process.env.APP_DB_PASSWORD = "example-app-password";
    process.env.PGPROV_BACKUP_PASSPHRASE = "example-backup-passphrase";
    const inv = loadInventory(copy);
    expect(inv.hosts.map((h) => h.role)).toEqual(["primary", "standby", "standby", "standby", "standby"]);
    expect(inv.hosts.map((h) => [h.upstream, h.applyDelay])).toEqual([[undefined, undefined], [undefined, undefined], [undefined, undefined], ["pg3", undefined], [undefined, "1h"]]);
    expect(inv.replication.synchronous).toEqual({ mode: "quorum", count: 1, standbys: ["pg2", "pg3"] });
    expect(inv.aptProxy).toBe("http://10.0.0.1:3142/"); // its normal form
    expect(inv.postgresql).toMatchObject({ version: 15, port: 5432, clients: ["10.0.0.0/24"] });
    expect(inv.replication.password?.reveal()).toBe("example-replication-password");
    const [pg1, pg2] = inv.hosts.map((h) => h.connection);
    expect([pg1!.user.value, pg1!.port.value, pg1!.via.length, pg2!.user.value, pg2!.via[0]!.hostname.value]).toEqual(["dba", 2222, 0, "root", "bastion.example"]);
    expect(pg2!.serverAliveInterval.value).toBe(15);
    // Issue 15's keys: roles, databases, access rules, the pooler.
    expect(inv.roles.map((r) => `${r.name}:${r.state}`)).toEqual(["app:present", "app_readers:present", "old_batch:absent"]);
    expect(inv.databases.map((d) => `${d.name}:${d.owner}:${d.extensions.join(",")}`)).toEqual(["billing:app:pg_stat_statements,pgcrypto"]);
    expect(inv.access.map((a) => a.method)).toEqual(["scram-sha-256", "reject", "cert"]);
    expect(inv.pooler).toMatchObject({ poolMode: "transaction", port: 6432 });
  });

  it("names a missing file", () => {
    expect(() => loadInventory(join(dir, "nope.yml"))).toThrow(/nope\.yml:1:1: cannot read: ENOENT/);
  });
});
