/**
 * `npm run bench`: what pgprov's runs cost, measured on lab hosts with the real CLI (process
 * start to exit, as a user waits for it). Prints tables; the README quotes them.
 *
 * 1. The engine: a 30-task playbook (3 plays of 10 tasks, every module but apt's installs),
 *    converged once, then no-op reruns on 1 host and on 10 hosts.
 * 2. The cluster: a cold bootstrap of 3 bare hosts with the bundled playbook (apt cache warm),
 *    broken down into package install, clone and the rest, then no-op reruns.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RunEvent } from "../../src/engine/events.js";
import { labDown, labUp } from "../lab/lab.js";
import { thirtyTaskPlaybook } from "./playbook.js";

const RUNS = 5;
const BIN = join(import.meta.dirname, "../../bin/pgprov.js");
const log = (l: string) => process.stderr.write(`${l}\n`);

interface Run {
  ms: number;
  events: RunEvent[];
  recap: Record<string, { changed: number; commands: number }>;
}

function pgprov(args: string[]): Run {
  const started = performance.now();
  const r = spawnSync(process.execPath, [BIN, ...args, "--json"], { encoding: "utf8" });
  const ms = performance.now() - started;
  if (r.status !== 0) throw new Error(`pgprov ${args.join(" ")} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
  const events = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as RunEvent);
  const last = events.at(-1);
  return { ms, events, recap: last?.type === "recap" ? last.hosts : {} };
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(3)} s`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function table(rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) process.stdout.write(`${r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()}\n`);
  process.stdout.write("\n");
}

/** No-op reruns: the median wall time, and the round trips per host against the plays it ran. */
function noOp(args: string[]): string[] {
  const times: number[] = [];
  let last = pgprov(args);
  for (let i = 0; i < RUNS; i++) {
    last = pgprov(args);
    times.push(last.ms);
  }
  const plays = (host: string) => new Set(last.events.flatMap((e) => (e.type === "host" && e.host === host ? [e.play] : []))).size;
  const trips = Object.entries(last.recap).map(([host, r]) => `${r.commands}/${plays(host)}`);
  const changed = Object.values(last.recap).reduce((n, h) => n + h.changed, 0);
  return [seconds(median(times)), seconds(Math.min(...times)), seconds(Math.max(...times)), [...new Set(trips)].join(" "), String(changed)];
}

/**
 * Freshly booted hosts run their own start-up jobs for a few seconds, and here they share the
 * machine's 2 cores: measuring then would time the boot, not pgprov. A real server booted long ago.
 */
async function settle(): Promise<void> {
  log("letting the hosts' boot-time jobs finish (20 s)");
  await new Promise((r) => setTimeout(r, 20_000));
}

async function engine(): Promise<void> {
  const lab = await labUp({ hosts: 10, log });
  const dir = mkdtempSync(join(tmpdir(), "pgprov-bench-"));
  const playbook = join(dir, "bench.yml");
  writeFileSync(playbook, thirtyTaskPlaybook());
  writeFileSync(join(dir, "bench.conf.hbs"), "# {{ host.name }} ({{ host.address }}), {{ facts.os_id }} {{ facts.os_codename }}\n");
  const converge = pgprov(["apply", lab.inventoryPath, "--playbook", playbook]);
  log(`converged 30 tasks on 10 hosts in ${seconds(converge.ms)}`);
  await settle();
  const rows = [["hosts", "tasks", `no-op run, median of ${RUNS}`, "min", "max", "round trips/plays per host", "changed"]];
  rows.push(["1", "30", ...noOp(["apply", lab.inventoryPath, "--playbook", playbook, "--limit", "pg1"])]);
  rows.push(["10", "30", ...noOp(["apply", lab.inventoryPath, "--playbook", playbook])]);
  table(rows);
}

async function cluster(): Promise<void> {
  const lab = await labUp({ hosts: 3, log });
  const cold = pgprov(["apply", lab.inventoryPath]);
  // Per phase, the slowest host: hosts work in parallel, so that is what the wall clock sees.
  const phase = (match: (task: string) => boolean) =>
    Math.max(0, ...cold.events.flatMap((e) => (e.type === "task" && match(e.task) ? [e.ms] : [])));
  const install = phase((t) => t === "PostgreSQL server and client");
  const clone = phase((t) => t.startsWith("clone the primary"));
  table([
    ["cold bootstrap, 3 hosts", "package install", "clone", "the rest"],
    [seconds(cold.ms), seconds(install), seconds(clone), seconds(cold.ms - install - clone)],
  ]);
  await settle();
  table([["hosts", `no-op run, median of ${RUNS}`, "min", "max", "round trips/plays per host", "changed"], ["3", ...noOp(["apply", lab.inventoryPath])]]);
}

try {
  await engine();
  await cluster();
} finally {
  await labDown({ log });
}
