/**
 * One lab host: an overlay root over the shared image, its own network, PID, mount, UTS, IPC and
 * cgroup namespaces, and systemd as its PID 1, reached by SSH on its own address.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { DEPLOY_USER, userIds } from "./image.js";
import { probeTcp } from "./network.js";
import {
  childrenOf,
  isAlive,
  LabError,
  procRef,
  procRoot,
  run,
  sleep,
  SYSTEM_PATH,
  tail,
  waitFor,
  type RunResult,
} from "./proc.js";
import { hostName, labNet, type HostState } from "./state.js";
import { mountsUnder } from "./system.js";

export const BOOT_TIMEOUT_MS = 30_000;

export function planHost(k: number, hostsDir: string, cgroupParent: string): HostState {
  const name = hostName(k);
  const dir = join(hostsDir, name);
  const net = labNet();
  return {
    name,
    address: net.hostAddress(k),
    netns: net.netnsPrefix + name,
    veth: net.vethPrefix + name,
    root: join(dir, "root"),
    upper: join(dir, "upper"),
    work: join(dir, "work"),
    console: join(dir, "console.log"),
    cgroup: join(cgroupParent, name),
    pid: 0,
    startTime: "",
  };
}

export const cgroupParentOf = (cgroup2: string) => join(cgroup2, labNet().cgroupGroup);

// ---- the root filesystem -----------------------------------------------------------------------

/** Mount the host's root: the image read-only below, the host's own upper dir above. */
export async function mountRoot(h: HostState, image: string): Promise<void> {
  for (const d of [h.upper, h.work, h.root]) mkdirSync(d, { recursive: true });
  if (mountsUnder(h.root).some((m) => m.target === h.root)) return; // kept across labKill
  for (const p of [image, h.upper, h.work]) {
    if (/[,:\s]/.test(p)) throw new LabError(`${h.name}: overlay paths may not contain ',', ':' or spaces: ${p}`);
  }
  await run(
    "mount",
    ["-t", "overlay", `pgprov-${h.name}`, "-o", `lowerdir=${image},upperdir=${h.upper},workdir=${h.work}`, h.root],
    { host: h.name },
  );
}

export interface RootFiles {
  hosts: HostState[];
  publicKey: string;
}

/**
 * What makes the host itself, written into its root (so its upper dir) before boot: name,
 * address book, machine id, SSH host keys and authorized keys, apt proxy. Idempotent, so a reboot
 * on the same upper dir keeps its identity (machine id, host keys).
 */
export async function writeHostFiles(h: HostState, files: RootFiles): Promise<void> {
  const at = (p: string) => join(h.root, p);
  writeFileSync(at("etc/hostname"), `${h.name}\n`);
  writeFileSync(
    at("etc/hosts"),
    [
      "127.0.0.1\tlocalhost",
      "::1\tlocalhost ip6-localhost ip6-loopback",
      ...files.hosts.map((o) => `${o.address}\t${o.name}`),
      "",
    ].join("\n"),
  );
  if (readFileSync(at("etc/machine-id"), "utf8").trim() === "") {
    writeFileSync(at("etc/machine-id"), randomBytes(16).toString("hex") + "\n");
  }
  writeFileSync(at("etc/apt/apt.conf.d/01proxy"), `Acquire::http::Proxy "${labNet().aptProxy}";\n`);

  authorize(at("root"), files.publicKey, { uid: 0, gid: 0 });
  authorize(at(`home/${DEPLOY_USER}`), files.publicKey, userIds(h.root, DEPLOY_USER));

  for (const type of HOST_KEY_TYPES) {
    const key = at(`etc/ssh/ssh_host_${type}_key`);
    if (existsSync(key)) continue; // kept across labKill/labBoot: known_hosts stays valid
    await run("ssh-keygen", ["-q", "-t", type, "-N", "", "-C", `root@${h.name}`, "-f", key], { host: h.name });
  }
}

/**
 * SSH host keys each host gets of its own. Not RSA: `ssh-keygen -A` would add a 3072-bit RSA key,
 * about 0.5 s of CPU per host (5 s for a 10-host lab); sshd skips absent default keys silently.
 */
const HOST_KEY_TYPES = ["ed25519", "ecdsa"];

function authorize(home: string, publicKey: string, owner: { uid: number; gid: number }): void {
  const dir = join(home, ".ssh");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, "authorized_keys"), publicKey.trim() + "\n", { mode: 0o600 });
  chownSync(dir, owner.uid, owner.gid);
  chownSync(join(dir, "authorized_keys"), owner.uid, owner.gid);
}

/** known_hosts lines for the host: "ADDRESS TYPE KEY", one per host key it has. */
export function knownHostsLines(h: HostState): string[] {
  const dir = join(h.root, "etc/ssh");
  return ["ed25519", "ecdsa", "rsa"]
    .map((t) => join(dir, `ssh_host_${t}_key.pub`))
    .filter(existsSync)
    .map((f) => {
      const [type, key] = readFileSync(f, "utf8").trim().split(/\s+/);
      return `${h.address} ${type} ${key}`;
    });
}

// ---- booting -----------------------------------------------------------------------------------

/**
 * Runs as PID 1 of the host's new PID namespace, inside its mount namespace: gives the root what
 * systemd expects of a container, then becomes systemd. $1 is the host root.
 */
const BOOT_SCRIPT = String.raw`
set -eu
r=$1
mount -t proc -o nosuid,nodev,noexec proc "$r/proc"
# Kernel-wide settings stay the machine's: /proc/sys read-only (the host's systemd-sysctl would
# otherwise set e.g. kernel.pid_max for the whole machine), except /proc/sys/net, which is the
# host's own network namespace. Same as systemd-nspawn.
mount --bind "$r/proc/sys" "$r/proc/sys"
mount -o remount,bind,ro "$r/proc/sys"
mount --bind "$r/proc/sys/net" "$r/proc/sys/net" # a bind starts with its parent's ro flag
mount -o remount,bind,rw "$r/proc/sys/net"
if [ -e "$r/proc/sysrq-trigger" ]; then # absent when the kernel has no magic SysRq
  mount --bind "$r/proc/sysrq-trigger" "$r/proc/sysrq-trigger"
  mount -o remount,bind,ro "$r/proc/sysrq-trigger"
fi
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$r/sys"
# Shows only this host's cgroup (the namespace root), so its systemd manages its own tree.
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$r/sys/fs/cgroup"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$r/run"
# A /dev of its own: never the machine's, whose consoles a getty would take over.
mount -t tmpfs -o mode=0755,nosuid tmpfs "$r/dev"
for d in null zero full random urandom tty; do
  : > "$r/dev/$d"
  mount --bind "/dev/$d" "$r/dev/$d"
done
mkdir -m 0755 "$r/dev/pts"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$r/dev/pts"
ln -s pts/ptmx "$r/dev/ptmx"
mkdir -m 1777 "$r/dev/shm"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$r/dev/shm"
ln -s /proc/self/fd "$r/dev/fd"
ln -s /proc/self/fd/0 "$r/dev/stdin"
ln -s /proc/self/fd/1 "$r/dev/stdout"
ln -s /proc/self/fd/2 "$r/dev/stderr"
exec chroot "$r" /usr/bin/env -i container=other /lib/systemd/systemd --system
`;

/**
 * Runs in the machine's namespaces, then turns into `ip netns exec … unshare …`.
 * $1 cgroup dir, $2 netns, $3 root, $4 boot script.
 *
 * The move into the host's own cgroup must come first: `unshare --cgroup` makes the *current*
 * cgroup the root of the new cgroup namespace, and `ip netns exec` remounts /sys, after which the
 * cgroup2 hierarchy is no longer reachable at its path. Without a cgroup per host, all hosts get
 * the same namespace root, their systemds share one tree and see each other's processes, and a
 * unit whose start fails hangs in "activating".
 */
const LAUNCH_SCRIPT = String.raw`
echo $$ > "$1/cgroup.procs" || exit 1
exec ip netns exec "$2" unshare --mount --pid --uts --ipc --cgroup --fork --propagation private /bin/bash -c "$4" pgprov-boot "$3"
`;

/** Start the host; returns once its PID 1 exists (not once it is up: see waitUntilUp). */
export async function launch(h: HostState): Promise<void> {
  prepareCgroup(h);
  const out = openSync(h.console, "a");
  writeFileSync(out, `--- boot ${new Date().toISOString()} ---\n`);
  const child = spawn("/bin/sh", ["-c", LAUNCH_SCRIPT, "pgprov-launch", h.cgroup, h.netns, h.root, BOOT_SCRIPT], {
    detached: true, // setsid: the host outlives the process that ran `up`
    stdio: ["ignore", out, out],
    env: { PATH: SYSTEM_PATH, LANG: "C.UTF-8" },
  });
  child.on("error", () => {}); // a failed spawn leaves no pid: reported just below
  closeSync(out);
  child.unref();
  const launcher = child.pid ? procRef(child.pid) : undefined;
  if (!launcher) throw new LabError(`${h.name}: its launcher (/bin/sh) did not start:\n${consoleTail(h)}`);
  h.launcher = launcher;
  // `unshare --fork`'s child is the host's PID 1: first the boot script, then (exec) systemd.
  const pid = await waitFor(
    `${h.name}: unshare (PID ${launcher.pid}) to fork the host's PID 1`,
    5000,
    10,
    () => {
      if (!isAlive(launcher)) throw new LabError(`${h.name}: its launcher exited before booting:\n${consoleTail(h)}`);
      return childrenOf(launcher.pid)[0];
    },
  );
  const ref = procRef(pid);
  if (!ref) throw new LabError(`${h.name}: its PID 1 (${pid}) exited at once:\n${consoleTail(h)}`);
  // unshare itself is still in the host's cgroup, which its systemd sees as its own root: move it
  // out, so the host's tree holds the host's processes only (inside, it would show up as PID 0).
  const parked = join(dirname(h.cgroup), "launchers");
  mkdirSync(parked, { recursive: true });
  writeFileSync(join(parked, "cgroup.procs"), String(launcher.pid));
  h.pid = ref.pid;
  h.startTime = ref.startTime;
}

export function consoleTail(h: HostState): string {
  try {
    return tail(readFileSync(h.console, "utf8"), 12);
  } catch {
    return "(no console output)";
  }
}

export const hostRef = (h: HostState) => ({ pid: h.pid, startTime: h.startTime });

/** The host's PID 1 runs, and has become the host's own (chrooted) systemd. */
export function isBooted(h: HostState): boolean {
  return isAlive(hostRef(h)) && procRoot(h.pid) === h.root;
}

/**
 * Wait until systemd says the boot is over (`running`, or `degraded`: then log the failed units)
 * and sshd answers on the host's address.
 */
export async function waitUntilUp(h: HostState, log: (l: string) => void): Promise<string> {
  const started = Date.now();
  let seen = "PID 1 not yet chrooted";
  const systemState = await waitFor(
    `${h.name} (PID ${h.pid}) to finish booting: \`systemctl is-system-running\` = running/degraded and sshd answering on ${h.address}:22`,
    BOOT_TIMEOUT_MS,
    200,
    async () => {
      if (!isAlive(hostRef(h))) throw new LabError(`${h.name}: its systemd (PID ${h.pid}) exited during boot:\n${consoleTail(h)}`);
      if (procRoot(h.pid) !== h.root) return undefined;
      // The SSH probe is cheap (no process): only ask systemd once sshd answers.
      if (!(await probeTcp(h.address, 22, 1000, "SSH-"))) {
        seen = "sshd not answering yet";
        return undefined;
      }
      const r = await execIn(h, "systemctl is-system-running", 5000);
      seen = `systemctl is-system-running: ${r.stdout.trim() || r.stderr.trim()}`;
      const state = r.stdout.trim();
      return state === "running" || state === "degraded" ? state : undefined;
    },
    () => seen,
  ).catch(async (err: Error) => {
    throw new LabError(`${err.message}${await bootDiagnostics(h)}`);
  });
  if (systemState === "degraded") {
    const failed = await execIn(h, "systemctl --failed --no-legend --plain | cut -d' ' -f1", 5000);
    log(`${h.name}: degraded; failed units: ${failed.stdout.trim().split("\n").join(", ") || "(none listed)"}`);
  }
  log(`${h.name}: up at ${h.address} in ${((Date.now() - started) / 1000).toFixed(1)} s (${systemState})`);
  return systemState;
}

/** What a host that did not come up says about itself, for the error message. */
async function bootDiagnostics(h: HostState): Promise<string> {
  if (!isBooted(h)) return `\n--- ${h.console} ---\n${consoleTail(h)}`;
  const r = await execIn(
    h,
    "echo \"is-system-running: $(systemctl is-system-running)\"; echo \"ssh.service: $(systemctl is-active ssh.service)\"; " +
      "systemctl list-jobs --no-legend --no-pager | head -5; systemctl --failed --no-legend --plain --no-pager",
    5000,
  ).catch((e: Error) => ({ stdout: e.message, stderr: "", code: 1 }));
  return `\n--- inside ${h.name} ---\n${tail(r.stdout + r.stderr, 12)}`;
}

/** Environment for commands run inside a host: none of the caller's. */
const HOST_ENV = { PATH: SYSTEM_PATH, HOME: "/root", LANG: "C.UTF-8", TERM: "dumb", DEBIAN_FRONTEND: "noninteractive" };

/**
 * Run a shell command inside a host by entering all its namespaces and its root (nsenter; not via
 * SSH, so it works with sshd broken, which is the point for fault injection).
 */
export async function execIn(h: HostState, command: string, timeoutMs: number): Promise<RunResult> {
  if (!isBooted(h)) throw new LabError(`${h.name}: not running (its PID 1 ${h.pid || "-"} is gone or not yet booted)`);
  return run("nsenter", ["-t", String(h.pid), "-a", "-r", "-w", "/bin/bash", "-c", command], {
    host: h.name,
    env: HOST_ENV,
    timeoutMs,
    allowFail: true,
  });
}

// ---- ending ------------------------------------------------------------------------------------

/** Whether any process is still in the cgroup subtree (cgroup.events "populated" covers it all). */
export function cgroupPopulated(dir: string): boolean {
  try {
    return /^populated 1$/m.test(readFileSync(join(dir, "cgroup.events"), "utf8"));
  } catch {
    return false;
  }
}

/** SIGKILL the host's PID 1 (the kernel then kills its whole PID namespace); wait until all gone. */
export async function killHost(h: HostState): Promise<void> {
  const ref = hostRef(h);
  if (isAlive(ref)) process.kill(ref.pid, "SIGKILL");
  await waitFor(
    `${h.name}: its processes to end after SIGKILL to its PID 1 (${h.pid})`,
    10_000,
    25,
    () => (!isAlive(ref) && !cgroupPopulated(h.cgroup) ? true : undefined),
  );
  // unshare, its parent, exits with it; give it a moment, then make sure.
  for (let i = 0; i < 20 && isAlive(h.launcher); i++) await sleep(25);
  if (isAlive(h.launcher)) process.kill(h.launcher.pid, "SIGKILL");
}

/** Sub-cgroups a previous boot's systemd made, deepest first: a new boot starts from an empty one. */
function prepareCgroup(h: HostState): void {
  mkdirSync(h.cgroup, { recursive: true });
  removeCgroupChildren(h.cgroup);
}

/** rmdir every cgroup below `dir`, deepest first; true when none is left. */
export function removeCgroupChildren(dir: string): boolean {
  let clean = true;
  let entries: string[];
  try {
    entries = readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  } catch {
    return true;
  }
  for (const name of entries) {
    const sub = join(dir, name);
    if (!removeCgroupChildren(sub)) clean = false;
    try {
      rmdirSync(sub);
    } catch {
      clean = false;
    }
  }
  return clean;
}
