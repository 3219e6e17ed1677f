/**
 * `npm run bench`: what a no-op run costs. Boots 10 lab hosts, converges a 30-task playbook
 * (3 plays of 10 tasks, every module but apt's installs), then times no-op reruns of the real CLI
 * (process start to exit, as a user waits for it) on 1 host and on 10 hosts, and reads the round
 * trips per host from the --json recap. Prints a table; the README quotes it.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { labDown, labUp } from "../lab/lab.js";
import { thirtyTaskPlaybook } from "./playbook.js";

const RUNS = 5;
const BIN = join(import.meta.dirname, "../../bin/pgprov.js");


function pgprov(args: string[]): { ms: number; recap: Record<string, { changed: number; commands: number }>; code: number } {
  const started = performance.now();
  const r = spawnSync(process.execPath, [BIN, ...args, "--json"], { encoding: "utf8" });
  const ms = performance.now() - started;
  const last = r.stdout.trim().split("\n").at(-1) ?? "{}";
  const recap = (JSON.parse(last) as { hosts?: Record<string, { changed: number; commands: number }> }).hosts ?? {};
  if (r.status !== 0) throw new Error(`pgprov ${args.join(" ")} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return { ms, recap, code: r.status ?? -1 };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const log = (l: string) => process.stderr.write(`${l}\n`);
  const bootStarted = performance.now();
  const lab = await labUp({ hosts: 10, log });
  log(`10 hosts up in ${((performance.now() - bootStarted) / 1000).toFixed(1)} s`);
  try {
    const dir = mkdtempSync(join(tmpdir(), "pgprov-bench-"));
    const playbook = join(dir, "bench.yml");
    writeFileSync(playbook, thirtyTaskPlaybook());
    writeFileSync(join(dir, "bench.conf.hbs"), "# {{ host.name }} ({{ host.address }}), {{ facts.os_id }} {{ facts.os_codename }}\n");

    const converge = pgprov(["apply", lab.inventoryPath, "--playbook", playbook]);
    log(`converged 30 tasks on 10 hosts in ${(converge.ms / 1000).toFixed(2)} s`);

    const rows: string[][] = [["hosts", "tasks", "no-op run, median of " + RUNS, "min", "max", "round trips per host", "changed"]];
    for (const hosts of [1, 10]) {
      const limit = hosts === 1 ? ["--limit", "pg1"] : [];
      const times: number[] = [];
      let last = pgprov(["apply", lab.inventoryPath, "--playbook", playbook, ...limit]);
      for (let i = 0; i < RUNS; i++) {
        last = pgprov(["apply", lab.inventoryPath, "--playbook", playbook, ...limit]);
        times.push(last.ms);
      }
      const trips = [...new Set(Object.values(last.recap).map((h) => h.commands))].join("/");
      const changed = Object.values(last.recap).reduce((n, h) => n + h.changed, 0);
      rows.push([String(hosts), "30", `${(median(times) / 1000).toFixed(3)} s`, `${(Math.min(...times) / 1000).toFixed(3)} s`, `${(Math.max(...times) / 1000).toFixed(3)} s`, trips, String(changed)]);
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const r of rows) process.stdout.write(`${r.map((c, i) => c.padEnd(widths[i]!)).join("  ")}\n`);
  } finally {
    await labDown({ log });
  }
}

await main();
