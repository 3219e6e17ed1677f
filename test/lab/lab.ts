/**
 * pgprov's lab: real Debian test hosts on this one Linux machine, each with its own address,
 * filesystem, systemd as PID 1 and an SSH daemon, made of Linux namespaces and an overlay root
 * (recipe: /work/shared/notes/lab.md). Needs root on Linux.
 *
 *   const lab = await labUp({ hosts: 3 });     // pg1..pg3 at 10.231.N.11..13, .lab/inventory.yml (N: see labInstance)
 *   await labExec("pg2", "systemctl is-active ssh");
 *   await labKill("pg2"); await labBoot("pg2"); // fault injection, then recovery
 *   await labDown();                            // leaves nothing behind
 *
 * Everything made is recorded in .lab/state.json as it is made, so `down` (and the next `up`)
 * can undo a run that crashed halfway. Processes are ended only by recorded PID (checked against
 * the recorded start time) or because their root directory is a lab host's.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { startAptCacher, stopAptCacher } from "./lib/aptcache.js";
import {
  cgroupParentOf,
  cgroupPopulated,
  execIn,
  hostRef,
  isBooted,
  killHost,
  knownHostsLines,
  launch,
  mountRoot,
  planHost,
  removeCgroupChildren,
  waitUntilUp,
  writeHostFiles,
} from "./lib/host.js";
import { ensureImage } from "./lib/image.js";
import { createBridge, createHostNetwork, labLinks, labNetns, linkExists, removeNetwork } from "./lib/network.js";
import { isAlive, LabError, listPids, procName, procRef, procRoot, run, sleep, type ProcRef } from "./lib/proc.js";
import {
  DEFAULT_HOSTS,
  MAX_INSTANCES,
  MAX_WORKERS,
  LAB_OSES,
  MAX_HOSTS,
  labNet,
  labPaths,
  readState,
  writeState,
  type HostState,
  type LabOs,
  type LabState,
} from "./lib/state.js";
import { assertLinuxRoot, detectMirror, ensureTools, findCgroup2, isUnder, mountsUnder, removeTree, unmountUnder } from "./lib/system.js";

export type { LabOs } from "./lib/state.js";
export { LabError } from "./lib/proc.js";

export interface LabHost {
  name: string;
  address: string;
  /** The host's systemd (PID 1 inside), as seen from the machine. */
  pid: number;
  /** Its root filesystem (overlay mount point) on the machine. */
  root: string;
}

export interface LabOptions {
  hosts?: number;
  os?: LabOs;
  log?: (line: string) => void;
}

export interface Lab {
  dir: string;
  inventoryPath: string;
  privateKeyPath: string;
  knownHostsPath: string;
  bridgeAddress: string;
  /** The lab's network, for inventories' `clients` (10.231.N.0/24). */
  subnet: string;
  aptProxy: string;
  hosts: LabHost[];
}

const quiet = () => {};
const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

// ---- up ----------------------------------------------------------------------------------------

/** Clear whatever a previous lab left, then boot `hosts` fresh hosts (default 3) and wait for them. */
/**
 * Every host's systemd (and its journald and udevd) takes inotify instances, and all hosts run as
 * the machine's root: Debian's limit of 128 per user is spent by about 40 hosts, and then a host's
 * systemd exits at boot without a word on its console (seen with e2e runs and engineers' labs side
 * by side). Raised once, machine-wide, to a number no lab of this machine reaches.
 */
const INOTIFY_INSTANCES = 8192;
const INOTIFY_LIMIT = "/proc/sys/fs/inotify/max_user_instances";

function ensureInotifyInstances(log: (l: string) => void): void {
  const now = Number(readFileSync(INOTIFY_LIMIT, "utf8").trim());
  if (now >= INOTIFY_INSTANCES) return;
  writeFileSync(INOTIFY_LIMIT, `${INOTIFY_INSTANCES}\n`);
  log(`fs.inotify.max_user_instances: ${now} -> ${INOTIFY_INSTANCES} (every host's systemd needs a few)`);
}

export async function labUp(opts: LabOptions = {}): Promise<Lab> {
  const log = opts.log ?? quiet;
  const count = opts.hosts ?? DEFAULT_HOSTS;
  const os = opts.os ?? "bookworm";
  if (!Number.isInteger(count) || count < 1 || count > MAX_HOSTS) {
    throw new LabError(`hosts must be a whole number from 1 to ${MAX_HOSTS}, not ${count}`);
  }
  if (!LAB_OSES.includes(os)) throw new LabError(`os must be one of ${LAB_OSES.join(", ")}, not ${String(os)}`);
  assertLinuxRoot();
  const started = Date.now();

  await ensureTools(log); // before down, which needs ip
  await labDown({ log: (l) => log(`clearing the previous lab: ${l}`) });
  const { mirror, image } = await labPrepare({ os, log });
  const paths = labPaths();
  const cgroup2 = await findCgroup2();
  if (!cgroup2) throw new LabError("no cgroup2 hierarchy is mounted (findmnt -t cgroup2); the hosts' systemd needs one");

  // Recorded before anything is made, and after each step, so a failure halfway can be undone.
  const state: LabState = {
    version: 1,
    os,
    mirror,
    image,
    bridge: labNet().bridge,
    bridgeAddress: labNet().bridgeAddress,
    cgroupParent: cgroupParentOf(cgroup2),
    hosts: [],
  };
  writeState(state);
  mkdirSync(state.cgroupParent, { recursive: true });

  const bootStarted = Date.now();
  await createBridge();
  state.aptCacher = await startAptCacher(mirror, paths.aptDir);
  writeState(state);
  log(`apt proxy: apt-cacher-ng (PID ${state.aptCacher.pid}) at ${labNet().aptProxy}, backend ${mirror}`);

  state.hosts = Array.from({ length: count }, (_, i) => planHost(i + 1, paths.hosts, state.cgroupParent));
  writeState(state);
  for (const h of state.hosts) await createHostNetwork(h); // one at a time: see createHostNetwork
  const publicKey = readFileSync(paths.publicKey, "utf8");
  await Promise.all(
    state.hosts.map(async (h) => {
      await mountRoot(h, image);
      await writeHostFiles(h, { hosts: state.hosts, publicKey });
    }),
  );
  log(`booting ${count} ${os} host${count === 1 ? "" : "s"}: ${state.hosts.map((h) => `${h.name} ${h.address}`).join(", ")}`);
  ensureInotifyInstances(log);
  try {
    await allOrReport(state.hosts.map((h) => launch(h)));
    writeState(state);
    await allOrReport(state.hosts.map((h) => waitUntilUp(h, log)));
  } finally {
    writeState(state);
  }
  log(`hosts up in ${seconds(bootStarted)}`);

  writeFileSync(paths.knownHosts, state.hosts.flatMap(knownHostsLines).join("\n") + "\n");
  writeFileSync(paths.inventory, inventoryText(state, paths));
  log(`lab up in ${seconds(started)}; inventory: ${paths.inventory}`);
  return toLab(state);
}

/**
 * What `up` needs before it boots anything: the tools, the lab's SSH key and the base image for
 * `os` (debootstrapped on first use: about a minute). Nothing is started. Separate so a test
 * suite's global setup can pay for the image once, outside any test's timeout.
 */
export async function labPrepare(opts: { os?: LabOs; log?: (line: string) => void } = {}): Promise<{ mirror: string; image: string }> {
  const log = opts.log ?? quiet;
  const os = opts.os ?? "bookworm";
  if (!LAB_OSES.includes(os)) throw new LabError(`os must be one of ${LAB_OSES.join(", ")}, not ${String(os)}`);
  assertLinuxRoot();
  await ensureTools(log);
  const paths = labPaths();
  mkdirSync(paths.dir, { recursive: true });
  await ensureKeyPair(paths.privateKey, paths.publicKey);
  const mirror = detectMirror();
  return { mirror, image: await ensureImage(os, mirror, log) };
}

/** Wait for all; if any failed, one error naming each failure (not just the first). */
async function allOrReport<T>(work: Promise<T>[]): Promise<T[]> {
  const results = await Promise.allSettled(work);
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed.length === 0) return results.map((r) => (r as PromiseFulfilledResult<T>).value);
  const messages = failed.map((r) => (r.reason instanceof Error ? r.reason.message : String(r.reason)));
  throw new LabError(messages.join("\n") + "\n(`npm run lab -- down` removes what was made; the host's console.log is under .lab/hosts/)");
}

/** The lab's SSH key: made once, kept across up/down (tests and humans may hold on to its path). */
async function ensureKeyPair(privateKey: string, publicKey: string): Promise<void> {
  if (!existsSync(privateKey)) {
    rmSync(publicKey, { force: true });
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "pgprov-lab", "-f", privateKey]);
  } else if (!existsSync(publicKey)) {
    const { stdout } = await run("ssh-keygen", ["-y", "-f", privateKey]);
    writeFileSync(publicKey, stdout);
  }
}

function inventoryText(state: LabState, paths: ReturnType<typeof labPaths>): string {
  const rel = (p: string) => "./" + relative(dirname(paths.inventory), p);
  const n = state.hosts.length;
  return [
    `# Written by \`npm run lab -- up\`: ${n} ${state.os} test host${n === 1 ? "" : "s"} on this machine.`,
    "ssh:",
    "  user: root",
    `  private_key: ${rel(paths.privateKey)}`,
    `  known_hosts: ${rel(paths.knownHosts)}`,
    "hosts:",
    ...state.hosts.map((h, i) => `  ${h.name}: { address: ${h.address}, role: ${i === 0 ? "primary" : "standby"} }`),
    "",
  ].join("\n");
}

function toLab(state: LabState): Lab {
  const paths = labPaths();
  return {
    dir: paths.dir,
    inventoryPath: paths.inventory,
    privateKeyPath: paths.privateKey,
    knownHostsPath: paths.knownHosts,
    bridgeAddress: state.bridgeAddress,
    aptProxy: labNet().aptProxy,
    subnet: labNet().subnet,
    hosts: state.hosts.map((h) => ({ name: h.name, address: h.address, pid: h.pid, root: h.root })),
  };
}

/** The lab as recorded in its state file, or undefined when there is none. */
export function readLab(): Lab | undefined {
  const state = readState();
  return state ? toLab(state) : undefined;
}

// ---- down --------------------------------------------------------------------------------------

/**
 * labDown for each instance a test run's workers may have used (PGPROV_LAB + 1..3, see
 * labInstance) that left anything: for the run's teardown, which cannot know which workers booted
 * a lab. Instance PGPROV_LAB itself (a lab booted by hand) and other runs' instances are not touched.
 */
export async function labDownAll(opts: { log?: (l: string) => void } = {}): Promise<void> {
  const saved = process.env.PGPROV_LAB;
  const worker = process.env.VITEST_POOL_ID;
  delete process.env.VITEST_POOL_ID;
  try {
    const base = Number(saved ?? 0);
    for (let n = base + 1; n <= Math.min(base + MAX_WORKERS, MAX_INSTANCES - 1); n++) {
      process.env.PGPROV_LAB = String(n);
      if (existsSync(labPaths().state) || (await labLeftovers()).length) await labDown(opts);
    }
  } finally {
    if (saved === undefined) delete process.env.PGPROV_LAB;
    else process.env.PGPROV_LAB = saved;
    if (worker !== undefined) process.env.VITEST_POOL_ID = worker;
  }
}

/** End every host and remove everything of the lab's (recorded, or found by name); then check. */
export async function labDown(opts: { log?: (l: string) => void } = {}): Promise<void> {
  const log = opts.log ?? quiet;
  assertLinuxRoot();
  const paths = labPaths();
  const state = readState();
  if (!state && existsSync(paths.state)) log(`${paths.state} is unreadable; going by names only`);

  await stopHosts(state, paths.hosts, log);
  await refuseForeignProcesses(await cgroupParents(state), paths.hosts);
  const netns = labNetns().length;
  const links = labLinks().length;
  await removeNetwork(log);
  if (netns + links) log(`removed ${netns} network namespace(s), ${links} link(s)`);
  const mounted = mountsUnder(paths.hosts).length;
  await unmountUnder(paths.hosts, log);
  if (mounted) log(`unmounted ${mounted} mount(s) under ${paths.hosts}`);
  await removeCgroups(await cgroupParents(state), log);
  if (isAlive(state?.aptCacher)) {
    log(`stopping apt-cacher-ng (PID ${state!.aptCacher!.pid})`);
    await stopAptCacher(state!.aptCacher);
  }
  await removeTree(paths.hosts);
  await removeTree(paths.aptDir);
  for (const f of [paths.state, paths.inventory, paths.knownHosts]) rmSync(f, { force: true });

  const left = await labLeftovers();
  if (left.length) throw new LabError(`the lab could not be removed completely; still present:\n  ${left.join("\n  ")}`);
}

/**
 * SIGKILL every host's PID 1 (the kernel ends the rest of its PID namespace) and any process whose
 * root is under the lab's hosts dir; then wait, bounded, until none is left.
 */
async function stopHosts(state: LabState | undefined, hostsDir: string, log: (l: string) => void): Promise<void> {
  const recorded = (state?.hosts ?? []).filter((h) => isAlive(hostRef(h)));
  await Promise.all((state?.hosts ?? []).map((h) => killHost(h).catch(() => undefined)));
  if (recorded.length) log(`stopped ${recorded.map((h) => `${h.name} (PID ${h.pid})`).join(", ")}`);
  // Hosts not (or no longer) in the state file: found by their root directory.
  const strays = processesRootedUnder(hostsDir);
  for (const pid of strays) signal(pid, "SIGKILL");
  if (strays.length) log(`killed ${strays.length} unrecorded process(es) with their root under ${hostsDir}: ${strays.join(" ")}`);

  const deadline = Date.now() + 10_000;
  while (processesRootedUnder(hostsDir).length || (state?.hosts ?? []).some((h) => isAlive(hostRef(h)) || isAlive(h.launcher))) {
    if (Date.now() > deadline) {
      throw new LabError(`host processes still running 10 s after SIGKILL: ${processesRootedUnder(hostsDir).join(" ")}`);
    }
    for (const pid of processesRootedUnder(hostsDir)) signal(pid, "SIGKILL");
    await sleep(50);
  }
}

/**
 * After our hosts are gone, a process still in the lab's cgroups is someone else's, typically a
 * lab run from another directory (PGPROV_LAB_DIR): stop before pulling its network away.
 */
async function refuseForeignProcesses(parents: string[], hostsDir: string): Promise<void> {
  const foreign = parents.flatMap(cgroupProcesses).filter((pid) => isAlive(procRef(pid)));
  if (foreign.length === 0) return;
  const roots = [...new Set(foreign.map((pid) => procRoot(pid) ?? "?"))];
  throw new LabError(
    `processes ${foreign.slice(0, 10).join(" ")} are in the lab's cgroups but not under ${hostsDir} ` +
      `(their roots: ${roots.slice(0, 3).join(", ")}); another lab directory's hosts? Run down with its PGPROV_LAB_DIR`,
  );
}

/** PIDs in a cgroup and all below it. */
function cgroupProcesses(dir: string): number[] {
  if (!existsSync(dir)) return [];
  const own = readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number);
  const subdirs = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory());
  return [...own, ...subdirs.flatMap((e) => cgroupProcesses(join(dir, e.name)))];
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* gone already */
  }
}

/** PIDs whose root directory is inside the lab's hosts dir: lab host processes, and only those. */
function processesRootedUnder(hostsDir: string): number[] {
  return listPids().filter((pid) => pid !== process.pid && isUnder(procRoot(pid) ?? "/", hostsDir));
}

async function cgroupParents(state: LabState | undefined): Promise<string[]> {
  const cgroup2 = await findCgroup2();
  const found = [state?.cgroupParent, cgroup2 ? cgroupParentOf(cgroup2) : undefined].filter((p): p is string => !!p);
  return [...new Set(found)];
}

/** rmdir the lab's cgroups, deepest first, once their processes are gone (retried for 5 s). */
async function removeCgroups(parents: string[], log: (l: string) => void): Promise<void> {
  for (const parent of parents.filter((p) => existsSync(p))) {
    const deadline = Date.now() + 5000;
    for (;;) {
      const clean = removeCgroupChildren(parent);
      if (clean) {
        try {
          rmdirSync(parent); // cgroup dirs hold only kernel files: rmdir, never rm -r
        } catch {
          /* retried below */
        }
        if (!existsSync(parent)) break;
      }
      if (Date.now() > deadline) {
        const busy = cgroupPopulated(parent) ? " (it still has processes)" : "";
        throw new LabError(`could not remove cgroup ${parent}${busy}`);
      }
      await sleep(50);
    }
    log(`removed cgroup ${parent}`);
  }
}

// ---- leftovers ---------------------------------------------------------------------------------

/** Everything of the lab's still present, one human-readable line each; [] when clean. */
export async function labLeftovers(): Promise<string[]> {
  const paths = labPaths();
  const state = readState();
  const found: string[] = [];

  const recorded = new Set<number>();
  const noteProcess = (ref: ProcRef | undefined, what: string) => {
    if (!isAlive(ref)) return;
    recorded.add(ref.pid);
    found.push(`process ${ref.pid} (${procName(ref.pid)}): ${what}`);
  };
  for (const h of state?.hosts ?? []) {
    noteProcess(hostRef(h), `${h.name}'s systemd`);
    noteProcess(h.launcher, `${h.name}'s launcher`);
  }
  noteProcess(state?.aptCacher, "the lab's apt-cacher-ng");
  for (const pid of processesRootedUnder(paths.hosts).filter((p) => !recorded.has(p))) {
    found.push(`process ${pid} (${procName(pid)}): root under ${paths.hosts}`);
  }
  for (const pid of unrecordedAptCachers(paths.aptDir).filter((p) => !recorded.has(p))) {
    found.push(`process ${pid} (apt-cacher-ng): started by a lab (socket under ${paths.aptDir}) but not recorded; stop it by hand`);
  }

  for (const ns of labNetns()) found.push(`network namespace ${ns}`);
  for (const link of labLinks()) found.push(link === labNet().bridge ? `bridge ${link}` : `veth ${link}`);
  for (const m of mountsUnder(paths.hosts)) found.push(`mount (${m.fstype}) on ${m.target}`);
  for (const parent of await cgroupParents(state)) {
    if (existsSync(parent)) found.push(`cgroup ${parent}${cgroupPopulated(parent) ? " (with processes)" : ""}`);
  }
  if (existsSync(paths.hosts)) found.push(`directory ${paths.hosts}`);
  if (existsSync(paths.state)) found.push(`state file ${paths.state}`);
  return found;
}

/** apt-cacher-ng processes whose command line names this lab's socket dir. Reported, not killed. */
function unrecordedAptCachers(aptDir: string): number[] {
  return listPids().filter((pid) => {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      return argv.some((a) => a.endsWith("apt-cacher-ng")) && argv.includes(`SocketPath=${join(aptDir, "socket")}`);
    } catch {
      return false;
    }
  });
}

// ---- single hosts: exec, kill, boot ------------------------------------------------------------

function recordedHost(host: LabHost | string): { state: LabState; h: HostState } {
  const state = readState();
  if (!state) throw new LabError("no lab is up (no state file); run `npm run lab -- up`");
  const name = typeof host === "string" ? host : host.name;
  const h = state.hosts.find((x) => x.name === name);
  if (!h) throw new LabError(`no host ${name} in the lab (hosts: ${state.hosts.map((x) => x.name).join(", ")})`);
  return { state, h };
}

/**
 * Run a shell command (bash -c) inside a host, as root, through its namespaces rather than SSH:
 * for tests to inspect a host or inject faults. Never throws for a non-zero exit; throws when the
 * host is not running or the command exceeds `timeoutMs` (default 10 min).
 */
export async function labExec(
  host: LabHost | string,
  command: string,
  opts: { timeoutMs?: number } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const { h } = recordedHost(host);
  return execIn(h, command, opts.timeoutMs ?? 600_000);
}

/** SIGKILL a host's PID 1 (power cut). Its network and root stay, for labBoot or labDown. */
export async function labKill(host: string): Promise<void> {
  assertLinuxRoot();
  const { state, h } = recordedHost(host);
  await killHost(h);
  writeState(state);
}

/** Boot a killed host again on the same root (its upper dir kept) and address; wait until it is up. */
export async function labBoot(host: string, opts: { log?: (l: string) => void } = {}): Promise<void> {
  assertLinuxRoot();
  const { state, h } = recordedHost(host);
  if (isAlive(hostRef(h))) throw new LabError(`${h.name} is running (PID ${h.pid}); labKill it first`);
  if (!linkExists(labNet().bridge)) throw new LabError(`the lab's bridge ${labNet().bridge} is gone; run \`npm run lab -- up\``);
  await createHostNetwork(h); // no-op unless something removed it
  await mountRoot(h, state.image);
  await writeHostFiles(h, { hosts: state.hosts, publicKey: readFileSync(labPaths().publicKey, "utf8") });
  try {
    await launch(h);
  } finally {
    writeState(state);
  }
  await waitUntilUp(h, opts.log ?? quiet);
}

/**
 * Cut a host off the network (its veth's bridge end down), as a pulled cable or a dead switch
 * port would: the host runs on, and every connection to it goes silent. labMend puts it back.
 */
export async function labCut(host: string): Promise<void> {
  assertLinuxRoot();
  await run("ip", ["link", "set", recordedHost(host).h.veth, "down"]);
}

export async function labMend(host: string): Promise<void> {
  assertLinuxRoot();
  await run("ip", ["link", "set", recordedHost(host).h.veth, "up"]);
}

/** For `status`: whether the lab's apt-cacher-ng runs. */
export function labAptProxyRunning(): boolean {
  return isAlive(readState()?.aptCacher);
}

/** For `status`: each recorded host and whether it runs. */
export function labHostsStatus(): { name: string; address: string; pid: number; running: boolean }[] {
  return (readState()?.hosts ?? []).map((h) => ({ name: h.name, address: h.address, pid: h.pid, running: isBooted(h) }));
}
