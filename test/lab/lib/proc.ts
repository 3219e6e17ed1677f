/**
 * Running commands and recognising processes: the lab's only ways of touching the machine.
 *
 * Every command goes through `run` (argument arrays, no shell unless a script is the point), so a
 * failure always names the command, the host it was for and the tail of its stderr. Every process
 * the lab ends is first recognised by PID *and* start time, so a PID the kernel has since handed to
 * someone else is never signalled.
 */
import { spawn } from "node:child_process";
import { readFileSync, readlinkSync, readdirSync } from "node:fs";

/** PATH for everything the lab runs: sbin directories included, whatever the caller's PATH is. */
export const SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export class LabError extends Error {
  override name = "LabError";
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** The lab host the command is for, named in errors. */
  host?: string;
  /** Written to stdin; stdin is closed (not inherited) otherwise. */
  input?: string;
  /** Bound on the command's run time; it is SIGKILLed (it is our own child) when exceeded. */
  timeoutMs?: number;
  /** Full environment; default: the caller's, with SYSTEM_PATH and LC_ALL=C. */
  env?: NodeJS.ProcessEnv;
  /** Resolve with the exit code instead of throwing when it is not 0. */
  allowFail?: boolean;
}

const DEFAULT_TIMEOUT_MS = 120_000;

export function defaultEnv(): NodeJS.ProcessEnv {
  return { ...process.env, PATH: SYSTEM_PATH, LC_ALL: "C" };
}

/** The last lines of a command's output, for error messages. */
export function tail(text: string, lines = 8): string {
  const kept = text.trimEnd().split("\n").slice(-lines).join("\n");
  return kept.length > 2000 ? "…" + kept.slice(-2000) : kept;
}

/** A command line as one would type it, for messages. */
export function showCommand(cmd: string, args: readonly string[]): string {
  const quote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  const shown = [cmd, ...args].map(quote).join(" ");
  return shown.length > 300 ? shown.slice(0, 300) + "…" : shown;
}

function failure(prefix: string, what: string, detail: string): LabError {
  return new LabError(`${prefix}${what}${detail ? `:\n${detail}` : ""}`);
}

/** Run a command to completion and collect its output. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const prefix = opts.host ? `${opts.host}: ` : "";
  const shown = showCommand(cmd, args);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? defaultEnv(),
      stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(failure(prefix, `\`${shown}\` could not be started`, err.message));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(failure(prefix, `\`${shown}\` timed out after ${timeoutMs / 1000} s`, tail(stderr || stdout)));
      } else if (code !== 0 && !opts.allowFail) {
        const how = code === null ? `was killed by ${signal}` : `failed (exit ${code})`;
        reject(failure(prefix, `\`${shown}\` ${how}`, tail(stderr || stdout)));
      } else {
        resolve({ code: code ?? 128, stdout, stderr });
      }
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Poll `probe` until it returns something other than undefined; throw, naming `what`, after
 * `timeoutMs`. `lastSeen` (optional) says what was observed last, for the error message.
 */
export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  intervalMs: number,
  probe: () => Promise<T | undefined> | T | undefined,
  lastSeen?: () => string | undefined,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() >= deadline) {
      const seen = lastSeen?.();
      throw new LabError(`timed out after ${timeoutMs / 1000} s waiting for ${what}${seen ? ` (last seen: ${seen})` : ""}`);
    }
    await sleep(intervalMs);
  }
}

// ---- processes -------------------------------------------------------------------------------

/** A process as recorded by the lab: its PID and its start time (clock ticks since boot). */
export interface ProcRef {
  pid: number;
  startTime: string;
}

interface ProcStat {
  comm: string;
  state: string;
  ppid: number;
  startTime: string;
}

/** /proc/PID/stat, parsed; the command name may itself contain spaces and parentheses. */
function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  const rest = text.slice(close + 2).split(" "); // rest[0] is field 3 (state)
  return { comm: text.slice(open + 1, close), state: rest[0] ?? "?", ppid: Number(rest[1]), startTime: rest[19] ?? "" };
}

export function procRef(pid: number): ProcRef | undefined {
  const stat = procStat(pid);
  return stat ? { pid, startTime: stat.startTime } : undefined;
}

/** True when the recorded process still runs: same PID, same start time, not a zombie. */
export function isAlive(ref: ProcRef | undefined): ref is ProcRef {
  if (!ref || !(ref.pid > 0)) return false;
  const stat = procStat(ref.pid);
  return stat !== undefined && stat.startTime === ref.startTime && stat.state !== "Z" && stat.state !== "X";
}

export function procName(pid: number): string {
  return procStat(pid)?.comm ?? "?";
}

/** Where the process's root directory is, as seen from here (its chroot, for a lab host). */
export function procRoot(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/root`);
  } catch {
    return undefined;
  }
}

export function procCwd(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return undefined;
  }
}

export function listPids(): number[] {
  return readdirSync("/proc")
    .filter((n) => /^\d+$/.test(n))
    .map(Number);
}

/** The children of a process (from /proc/PID/task/*\/children, else by scanning PPids). */
export function childrenOf(pid: number): number[] {
  try {
    const found = new Set<number>();
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").trim();
      for (const c of text ? text.split(/\s+/) : []) found.add(Number(c));
    }
    return [...found];
  } catch {
    return listPids().filter((p) => procStat(p)?.ppid === pid);
  }
}

/** Send a signal to a recorded process, only if it is still that process. */
export function signalRecorded(ref: ProcRef | undefined, signal: NodeJS.Signals): boolean {
  if (!isAlive(ref)) return false;
  try {
    process.kill(ref.pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Ask a recorded process to stop (SIGTERM), then insist (SIGKILL); bounded. */
export async function stopRecorded(ref: ProcRef | undefined, what: string, graceMs = 5000): Promise<void> {
  if (!signalRecorded(ref, "SIGTERM")) return;
  try {
    await waitFor(`${what} (PID ${ref!.pid}) to exit after SIGTERM`, graceMs, 50, () => (isAlive(ref) ? undefined : true));
  } catch {
    signalRecorded(ref, "SIGKILL");
    await waitFor(`${what} (PID ${ref!.pid}) to exit after SIGKILL`, 5000, 50, () => (isAlive(ref) ? undefined : true));
  }
}
