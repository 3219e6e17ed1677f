/**
 * What a run costs: wall time (what the user waits for), and CPU time, which the machine's other
 * load changes far less: the tool's own (the process and the children it waited for) and the
 * hosts' (the lab hosts' cgroups: every process on them, the tool's checks included).
 */
import { spawnSync, type SpawnSyncOptions } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { cpus, freemem, loadavg, release, totalmem } from "node:os";
import { readState } from "../lab/lib/state.js";

export interface Timed {
  code: number;
  stdout: string;
  stderr: string;
  /** Wall time, process start to exit. */
  ms: number;
  /** CPU of the command and every descendant it waited for (user + system). */
  cpuMs: number;
}

const CLOCK_TICKS = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;

/**
 * Runs a command to completion. A shell waits for it and reports its children's CPU times
 * (/proc/self/stat cutime + cstime) on fd 3: no dependency on /usr/bin/time.
 */
export function timed(command: string, args: string[], options: SpawnSyncOptions = {}): Timed {
  const wrapper = `"$@"; rc=$?; cat /proc/$$/stat >&3; exit $rc`;
  const started = performance.now();
  const r = spawnSync("sh", ["-c", wrapper, "sh", command, ...args], {
    ...options,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
    stdio: ["ignore", "pipe", "pipe", "pipe"],
  });
  const ms = performance.now() - started;
  if (r.error) throw r.error;
  // After the command name (in parentheses), fields from 3 on: cutime and cstime are 16 and 17.
  const stat = String(r.output[3] ?? "");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const cpuMs = ((Number(fields[13]) || 0) + (Number(fields[14]) || 0)) * (1000 / CLOCK_TICKS);
  return { code: r.status ?? 1, stdout: String(r.stdout), stderr: String(r.stderr), ms, cpuMs };
}

/** CPU used so far by every host of the lab in `labDir` (their cgroup v2 cpu.stat), in ms. */
export function hostsCpuMs(labDir: string): number {
  return (readState(labDir)?.hosts ?? []).reduce((sum, h) => {
    try {
      const usage = /^usage_usec (\d+)$/m.exec(readFileSync(join(h.cgroup, "cpu.stat"), "utf8"));
      return sum + Number(usage?.[1] ?? 0) / 1000;
    } catch {
      return sum;
    }
  }, 0);
}

export function machine(): string {
  const os = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readFileSync("/etc/os-release", "utf8"))?.[1] ?? "unknown OS";
  const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;
  return `${cpus().length} cores (${cpus()[0]?.model.trim() ?? "?"}), ${gib(totalmem())} memory (${gib(freemem())} free), ${os}, Linux ${release()}, Node ${process.version}`;
}

export const load = () => loadavg().map((l) => l.toFixed(1)).join(" ");

export const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function table(rows: string[][], write: (s: string) => void): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  for (const r of rows) write(`${r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()}\n`);
  write("\n");
}
