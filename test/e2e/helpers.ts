/** What the end-to-end tests share: running the real pgprov CLI and reading its --json events. */
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, extname, join } from "node:path";
import pg from "pg";
import { parseDocument } from "yaml";
import type { ClusterEvent } from "../../src/cluster/events.js";
import type { HostRecap } from "../../src/engine/events.js";
import { loadInventory } from "../../src/inventory/inventory.js";
import { type Lab, type LabHost, labExec, labUp } from "../lab/lab.js";

const BIN = join(import.meta.dirname, "../../bin/pgprov.js");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `pgprov ARGS` as a user would (the compiled CLI, no TTY). */
export function pgprov(args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...options.env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`pgprov ${args.join(" ")} did not finish within ${(options.timeoutMs ?? 600_000) / 1000} s\n${stdout}\n${stderr}`));
    }, options.timeoutMs ?? 600_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

export function events(result: CliResult): ClusterEvent[] {
  return result.stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as ClusterEvent);
}

export function recapOf(result: CliResult): Record<string, HostRecap> {
  const last = events(result).at(-1);
  if (last?.type !== "recap") throw new Error(`the last --json line is not the recap:\n${result.stdout}\n${result.stderr}`);
  return last.hosts;
}

/**
 * A private copy of the lab's inventory (with its key and known_hosts) in a temp directory, so a
 * test can change it, and pgprov's state files next to it stay the test's own.
 */
export function inventoryCopy(lab: Lab, edit?: (doc: ReturnType<typeof parseDocument>) => void): string {
  const dir = mkdtempSync(join(tmpdir(), "pgprov-e2e-"));
  copyFileSync(lab.privateKeyPath, join(dir, "id_ed25519"));
  copyFileSync(lab.knownHostsPath, join(dir, "known_hosts"));
  const doc = parseDocument(readFileSync(lab.inventoryPath, "utf8"));
  edit?.(doc);
  const path = join(dir, "inventory.yml");
  writeFileSync(path, doc.toString());
  return path;
}

/** Runs SQL on a lab host as postgres with psql (tests only: pgprov itself uses the pg client). */
export async function psql(host: LabHost | string, query: string): Promise<{ code: number; out: string; err: string }> {
  const r = await labExec(host, `runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 <<'PGPROV_TEST_SQL'\n${query}\nPGPROV_TEST_SQL`);
  return { code: r.code, out: r.stdout.trim(), err: r.stderr.trim() };
}

/** Waits, with a bound, until `check` returns true. */
export async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`gave up after ${timeoutMs / 1000} s waiting for ${what}`);
}

/**
 * Four lab hosts, and a private inventory (through the lab's apt proxy) of the first three: pg4
 * waits outside it until a test adds a standby.
 */
export async function labWithSpareHost(edit?: (doc: ReturnType<typeof parseDocument>, lab: Lab) => void): Promise<{ lab: Lab; hosts: [LabHost, LabHost, LabHost, LabHost]; inventory: string }> {
  const lab = await labUp({ hosts: 4 });
  const inventory = inventoryCopy(lab, (doc) => {
    doc.deleteIn(["hosts", "pg4"]);
    doc.set("apt", { proxy: lab.aptProxy });
    edit?.(doc, lab);
  });
  return { lab, hosts: lab.hosts as [LabHost, LabHost, LabHost, LabHost], inventory };
}

/**
 * A private inventory of the lab's hosts (through its apt proxy; clients allowed from the lab's
 * network), bootstrapped by `pgprov apply`: pg1 the primary, the others its streaming standbys
 * (or as `edit` makes the inventory).
 */
export async function bootstrapCluster(lab: Lab, edit?: (doc: ReturnType<typeof parseDocument>) => void): Promise<string> {
  const inventory = inventoryCopy(lab, (doc) => {
    doc.set("apt", { proxy: lab.aptProxy });
    // Test clients run on this machine (the bridge address) and, for psql, on the hosts.
    doc.set("postgresql", { clients: [lab.subnet] });
    edit?.(doc);
  });
  const r = await pgprov(["apply", inventory]);
  if (r.code !== 0) throw new Error(`the bootstrap failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  return inventory;
}

/** Each host's role as the inventory file says now. */
export function inventoryRoles(inventory: string): Record<string, string> {
  return Object.fromEntries(loadInventory(inventory).hosts.map((h) => [h.name, h.role]));
}

/** Each host's role as its server says (pg_is_in_recovery). */
export async function liveRoles(hosts: LabHost[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const h of hosts) out[h.name] = (await psql(h, "select pg_is_in_recovery()")).out === "f" ? "primary" : "standby";
  return out;
}

/** A client that commits numbered rows, one at a time, to whichever server accepts writes. */
export class CommittingClient {
  readonly committed: number[] = [];
  private stopped = false;
  private done?: Promise<void>;
  errors = 0;

  /**
   * `inventory`: its cluster's CA (made by apply in .pgprov/) verifies the servers over TLS (issue
   * 10). A function, read when the client connects: a test file makes its client before its
   * beforeAll has bootstrapped the cluster and named the inventory.
   */
  constructor(
    private readonly hosts: () => LabHost[],
    private readonly password: string,
    private readonly inventory?: () => string,
  ) {}

  private ssl(): { ca: string } | undefined {
    const inventory = this.inventory?.();
    if (!inventory) return undefined;
    const ca = join(dirname(inventory), ".pgprov", `${basename(inventory, extname(inventory))}.ca.crt`);
    return existsSync(ca) ? { ca: readFileSync(ca, "utf8") } : undefined;
  }

  start(): void {
    this.done = this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }

  private async writable(): Promise<pg.Client | undefined> {
    // What target_session_attrs=read-write does in libpq: try each host, keep the writable one.
    for (const h of this.hosts()) {
      const ssl = this.ssl();
      const client = new pg.Client({ host: h.address, port: 5432, user: "app", password: this.password, database: "postgres", ...(ssl ? { ssl } : {}), connectionTimeoutMillis: 1000, query_timeout: 2000 });
      client.on("error", () => {});
      try {
        await client.connect();
        const r = await client.query("select pg_is_in_recovery() as r");
        if (r.rows[0].r === false) return client;
      } catch {
        // not this one
      }
      await client.end().catch(() => {});
    }
    return undefined;
  }

  private async loop(): Promise<void> {
    let n = 1;
    let client: pg.Client | undefined;
    while (!this.stopped) {
      client ??= await this.writable();
      if (!client) {
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      try {
        await client.query("insert into numbered (n) values ($1)", [n]);
        this.committed.push(n);
        n++;
      } catch {
        // A failed commit is not counted: it may be retried with the same number.
        this.errors++;
        await client.end().catch(() => {});
        client = undefined;
        const exists = await this.writable().then(async (c) => {
          if (!c) return false;
          const r = await c.query("select count(*)::int as c from numbered where n = $1", [n]);
          await c.end();
          return r.rows[0].c === 1;
        });
        if (exists) {
          // The commit reached the server before the connection broke: it counts.
          this.committed.push(n);
          n++;
        }
      }
    }
    await client?.end().catch(() => {});
  }
}

/** Edits an inventory file in place, keeping its comments and layout. */
export function editInventoryFile(inventory: string, edit: (doc: ReturnType<typeof parseDocument>) => void): void {
  const doc = parseDocument(readFileSync(inventory, "utf8"));
  edit(doc);
  writeFileSync(inventory, doc.toString());
}

/** Runs a shell script inside a lab host (not over SSH); its stdout, trimmed; throws on failure. */
export async function sh(host: LabHost, script: string): Promise<string> {
  const r = await labExec(host, script);
  if (r.code !== 0) throw new Error(`${host.name}: ${script}: exit ${r.code}: ${r.stderr}`);
  return r.stdout.trim();
}

/** Each server's start time: unchanged across a run means it reloaded at most, never restarted. */
export async function startTimes(hosts: LabHost[]): Promise<string[]> {
  return Promise.all(hosts.map(async (h) => (await psql(h, "select pg_postmaster_start_time()")).out));
}
