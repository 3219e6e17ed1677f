/**
 * The gaps left of issues 13, 14 and 15, on one bootstrapped cluster with pgbouncer: a jump host
 * that cannot be reached is reported once, as the jump host; a clone shows its progress on a
 * terminal; a confirmation prompt is asked on stderr, never on stdout, and refused when stderr is
 * no terminal; status shows each pgbouncer's pools; a pooler removed from the inventory is stopped
 * and disabled where pgprov configured it (a person's own pgbouncer keeps running), its role NOLOGIN.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { parseDocument } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Lab, type LabHost, labDown, labExec, labUp } from "../lab/lab.js";
import { bootstrapCluster, events, inventoryCopy, pgprov, psql } from "./helpers.js";

const BIN = join(import.meta.dirname, "../../bin/pgprov.js");
const APP_PASSWORD = "reaching-more-app-1";
let lab: Lab;
let inventory: string;
let hosts: LabHost[];
const byName = (name: string) => hosts.find((h) => h.name === name)!;
const ENV = { PGPROV_APP_PASSWORD: APP_PASSWORD };
// Every pgprov this file runs reads the app role's password from here.
process.env.PGPROV_APP_PASSWORD = APP_PASSWORD;

/** Runs `pgprov ARGS` under a pseudo-terminal (script(1)), `input` typed at it; stdout of script. */
function underTerminal(command: string, input = "", timeoutMs = 600_000): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("script", ["-qfec", `stty cols 200 rows 50; ${command}`, "/dev/null"], { env: { ...process.env, ...ENV, CI: "", NO_COLOR: "1" }, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    // Typed once the prompt had time to appear; script passes it to the terminal.
    if (input) setTimeout(() => child.stdin.write(input), 3_000);
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${command} did not finish within ${timeoutMs / 1000} s\n${out}`));
    }, timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      child.stdin.destroy();
      resolve({ code: code ?? -1, out });
    });
  });
}

beforeAll(async () => {
  lab = await labUp({ hosts: 3 });
  hosts = lab.hosts;
  inventory = await bootstrapCluster(lab, (doc) => {
    doc.set("roles", { app: { password: { env: "PGPROV_APP_PASSWORD" } } });
    doc.set("pooler", { pool_mode: "transaction", default_pool_size: 5, port: 6432 });
  });
});
afterAll(async () => {
  await labDown();
});

/** A copy of the cluster's inventory with another ssh section (same hosts, same secrets' files). */
function withSsh(ssh: Record<string, unknown>): string {
  return inventoryCopy(lab, (doc) => {
    const current = parseDocument(readFileSync(inventory, "utf8"));
    for (const key of ["apt", "postgresql", "hosts"]) doc.set(key, current.get(key));
    doc.set("ssh", ssh);
  });
}

describe("issue 13: a jump host that cannot be reached", () => {
  it("issue 13: a jump host that refuses is reported once, as the jump host, with the hosts behind it", async () => {
    const pg1 = byName("pg1");
    const file = withSsh({ private_key: "./id_ed25519", known_hosts: "./known_hosts", proxy_jump: "root@pg1:2299", config: false });
    const r = await pgprov(["ping", file], { env: { SSH_AUTH_SOCK: "" } });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^pg1 .* ok /m);
    expect(r.stdout.match(/connection refused/g), r.stdout).toHaveLength(1);
    expect(r.stdout).toMatch(new RegExp(`jump host pg1 \\(${pg1.address}:2299, user root\\): connection refused at ${pg1.address}:2299.*; not reached behind it: pg2, pg3`));
    for (const h of ["pg2", "pg3"]) expect(r.stdout).toMatch(new RegExp(`^${h} .*UNREACHABLE +via root@${pg1.address}:2299: behind jump host pg1, which cannot be reached`, "m"));

    const apply = await pgprov(["apply", file, "--json"], { env: { SSH_AUTH_SOCK: "", ...ENV } });
    expect(apply.code).toBe(1);
    const failures = events(apply).filter((e) => e.type === "failure");
    expect(failures, apply.stdout).toHaveLength(1);
    expect(failures[0]).toMatchObject({ host: "jump host pg1", hosts: ["pg2", "pg3"] });
    expect((failures[0] as { message: string }).message).toMatch(/^jump host pg1 \(.*\): connection refused/);
  });

  it("issue 13: a jump host that refuses the user (auth) is reported once too", async () => {
    const file = withSsh({ private_key: "./id_ed25519", known_hosts: "./known_hosts", proxy_jump: "nobody@pg1", config: false });
    const r = await pgprov(["status", file], { env: { SSH_AUTH_SOCK: "", ...ENV } });
    expect(r.code).toBe(1);
    expect(r.stdout.match(/refused user nobody/g), r.stdout + r.stderr).toHaveLength(1);
    expect(r.stdout).toMatch(/jump host pg1 .*refused user nobody.*; not reached behind it: pg2, pg3/);
  });
});

describe("issue 14: terminals", () => {
  it("issue 14: the confirmation of apply --reclone is asked on stderr, never on stdout; with stderr not a terminal it refuses naming --yes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pgprov-confirm-"));
    // stdout to a file: what the terminal shows is stderr alone.
    const stdout = join(dir, "stdout");
    const r = await underTerminal(`node ${BIN} apply ${inventory} --reclone pg3 --json > ${stdout}`, "n\n", 60_000);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toContain("[y/N]");
    const out = readFileSync(stdout, "utf8");
    expect(out).not.toContain("[y/N]");
    for (const l of out.split("\n").filter(Boolean)) expect(() => JSON.parse(l), `not JSON: ${l}`).not.toThrow();
    // stderr to a file: nobody would see the question, and the command would wait forever.
    const stderr = join(dir, "stderr");
    const started = Date.now();
    const refused = await underTerminal(`node ${BIN} apply ${inventory} --reclone pg3 2> ${stderr}`, "", 60_000);
    expect(refused.code, refused.out).toBe(1);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(readFileSync(stderr, "utf8")).toMatch(/apply --reclone asks for confirmation, and stderr is not a terminal \(the question is asked there\): pass --yes/);
  });

  it("issue 14: a clone shows pg_basebackup's bytes copied on a terminal; without one, no progress line", async () => {
    // Some data, so that the clone takes long enough to be seen.
    const fill = await labExec(byName("pg1"), `runuser -u postgres -- psql -XAtq -c "create table filler as select g, repeat('x', 500) as pad from generate_series(1, 200000) g"`);
    expect(fill.code, fill.stderr).toBe(0);
    // An empty data directory is cloned without asking.
    const emptied = async () => expect((await labExec(byName("pg3"), "systemctl stop postgresql@15-main && rm -rf /var/lib/postgresql/15/main/*")).code).toBe(0);
    await emptied();
    const r = await underTerminal(`node ${BIN} apply ${inventory}`);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/pg3 · clone the primary[^\n]* · \d+ s · [\d.]+ [kM]B of [\d.]+ MB copied \(\d+%\)/);
    await emptied();
    const plain = await pgprov(["apply", inventory], { env: ENV });
    expect(plain.code, plain.stdout + plain.stderr).toBe(0);
    expect(plain.stdout).toMatch(/pg3 +changed +clone the primary/);
    expect(plain.stdout).not.toMatch(/copied|· \d+ s/);
  });
});

describe("issue 15: pgbouncer in status, and removed", () => {
  it("issue 15: status shows each pgbouncer's pools, also in --json", async () => {
    const ca = readFileSync(inventory.replace(/inventory\.yml$/, ".pgprov/inventory.ca.crt"), "utf8");
    const client = new pg.Client({ host: byName("pg1").address, port: 6432, user: "app", password: APP_PASSWORD, database: "postgres", ssl: { ca }, connectionTimeoutMillis: 20_000 });
    await client.connect();
    try {
      // Held in a transaction: in transaction mode, the server connection stays the client's.
      await client.query("begin; select 1");
      const r = await pgprov(["status", inventory], { env: ENV });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      for (const h of hosts) expect(r.stdout).toMatch(new RegExp(`^pgbouncer ${h.name}:`, "m"));
      expect(r.stdout).toMatch(/^pgbouncer pg1: .*postgres\/app: 1 client active, 0 waiting; 1 server active/m);
      const json = await pgprov(["status", inventory, "--json"], { env: ENV });
      const lines = json.stdout.trim().split("\n").map((l) => JSON.parse(l) as { type: string; host?: string; pooler?: { pools: Record<string, unknown>[] } });
      const pg1 = lines.find((e) => e.type === "status" && e.host === "pg1")!;
      expect(pg1.pooler?.pools).toEqual(expect.arrayContaining([expect.objectContaining({ database: "postgres", user: "app", cl_active: 1, sv_active: 1 })]));
    } finally {
      await client.query("rollback").catch(() => {});
      await client.end();
    }
  });

  it("issue 15: removing pooler: from the inventory stops and disables pgbouncer on the next apply, and plan says so", async () => {
    const doc = parseDocument(readFileSync(inventory, "utf8"));
    doc.delete("pooler");
    writeFileSync(inventory, doc.toString());
    const plan = await pgprov(["plan", inventory], { env: ENV });
    expect(plan.code, plan.stdout + plan.stderr).toBe(2);
    expect(plan.stdout.match(/stop pgbouncer/g), plan.stdout).toHaveLength(hosts.length);
    expect(plan.stdout.match(/disable pgbouncer/g), plan.stdout).toHaveLength(hosts.length);
    const r = await pgprov(["apply", inventory], { env: ENV });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (const h of hosts) {
      const state = await labExec(h, "systemctl is-active pgbouncer; systemctl is-enabled pgbouncer");
      expect(state.stdout.split("\n").slice(0, 2)).toEqual(["inactive", "disabled"]);
    }
    const again = await pgprov(["plan", inventory], { env: ENV });
    expect(again.code, again.stdout).toBe(0);
    // Its role's lookup function hands out SCRAM verifiers: the role cannot log in any more.
    expect((await psql(byName("pg1"), "select rolcanlogin from pg_roles where rolname = 'pgprov_pgbouncer'")).out).toBe("f");
  });

  it("issue 15: without a pooler in the inventory, a pgbouncer pgprov did not configure keeps running after apply", async () => {
    // A person's own pgbouncer on pg2 (its own settings, not pgprov's), running and enabled.
    const own = "[databases]\n* = host=127.0.0.1 port=5432\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = 6433\nauth_type = trust\nauth_file = /etc/pgbouncer/userlist.txt\nunix_socket_dir = /var/run/postgresql\n";
    const pg2 = byName("pg2");
    const started = await labExec(pg2, `printf '${own}' > /etc/pgbouncer/pgbouncer.ini && systemctl enable --now pgbouncer 2>&1 && systemctl is-active pgbouncer`);
    expect(started.code, started.stdout + started.stderr).toBe(0);
    const plan = await pgprov(["plan", inventory], { env: ENV });
    expect(plan.code, plan.stdout + plan.stderr).toBe(0);
    const r = await pgprov(["apply", inventory], { env: ENV });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const state = await labExec(pg2, "systemctl is-active pgbouncer; systemctl is-enabled pgbouncer");
    expect(state.stdout.split("\n").slice(0, 2)).toEqual(["active", "enabled"]);
  });
});
