/**
 * apt-cacher-ng on the bridge address: the hosts' only way to packages (they have no route out).
 * The lab runs it itself as a detached daemon (no systemd on the machine) and records its PID;
 * its cache is Debian's default one, so packages fetched once stay for the next run.
 */
import { closeSync, chownSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { isAlive, LabError, procRef, showCommand, stopRecorded, SYSTEM_PATH, tail, waitFor, type ProcRef } from "./proc.js";
import { probeTcp } from "./network.js";
import { APT_PROXY_PORT, IMAGE_CACHE, labNet, type LabState } from "./state.js";

const DAEMON = "/usr/sbin/apt-cacher-ng";
const CONF_DIR = "/etc/apt-cacher-ng";
const USER = "apt-cacher-ng";

/**
 * apt-cacher-ng maps requests for any known Debian mirror to the URLs in backends_debian; its
 * packaged default there does not resolve on every network ("503 Host not found"), the machine's
 * own mirror does.
 */
function pointBackendAt(mirror: string): void {
  const file = join(CONF_DIR, "backends_debian");
  const content = `# Written by pgprov's test lab (test/lab): the Debian mirror this machine's apt uses.\n${mirror}/\n`;
  if (!existsSync(file) || readFileSync(file, "utf8") !== content) writeFileSync(file, content);
}

/** uid/gid of the package's system user; undefined if there is none. */
function daemonUser(): { uid: number; gid: number } | undefined {
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${USER}:`));
  const f = line?.split(":");
  return f ? { uid: Number(f[2]), gid: Number(f[3]) } : undefined;
}

export async function startAptCacher(mirror: string, dir: string): Promise<NonNullable<LabState["aptCacher"]>> {
  const address = labNet().bridgeAddress;
  if (await probeTcp(address, APT_PROXY_PORT, 500)) {
    throw new LabError(
      `something already answers on ${address}:${APT_PROXY_PORT} (a system apt-cacher-ng listening on all addresses?); ` +
        `the lab needs that port on its bridge address for its own proxy`,
    );
  }
  pointBackendAt(mirror);
  const user = daemonUser();
  mkdirSync(dir, { recursive: true });
  if (user) chownSync(dir, user.uid, user.gid); // its control socket lives here
  const logPath = join(dir, "daemon.log");
  const out = openSync(logPath, "a");
  // Instance 0 keeps Debian's default cache. Other instances (labs running side by side) each get
  // a cache of their own: two daemons writing one cache could interleave a download.
  const { instance } = labNet();
  const cacheDir = instance === 0 ? undefined : join(IMAGE_CACHE, "..", "apt-cacher-ng", String(instance));
  if (cacheDir) {
    mkdirSync(cacheDir, { recursive: true });
    if (user) chownSync(cacheDir, user.uid, user.gid);
  }
  const settings = [
    ...(cacheDir ? [`CacheDir=${cacheDir}`, `LogDir=${dir}`] : []),
    "ForeGround=1", // we detach it ourselves and keep its real PID
    `BindAddress=${address}`, // the lab's address only, never the machine's others
    `Port=${APT_PROXY_PORT}`,
    `SocketPath=${join(dir, "socket")}`, // not the system service's socket
  ];
  const daemon = [DAEMON, "-c", CONF_DIR, ...settings];
  // As the package's user (setpriv execs, so the PID stays), so the shared cache keeps its owner.
  const argv = user ? ["setpriv", `--reuid=${user.uid}`, `--regid=${user.gid}`, "--init-groups", ...daemon] : daemon;
  const child = spawn(argv[0]!, argv.slice(1), {
    detached: true, // its own session: it outlives the process that ran `up`
    stdio: ["ignore", out, out],
    env: { PATH: SYSTEM_PATH, LANG: "C.UTF-8" },
  });
  child.on("error", () => {}); // a failed spawn leaves no pid: reported just below
  closeSync(out);
  child.unref();
  const ref: ProcRef | undefined = child.pid ? procRef(child.pid) : undefined;
  if (!ref) throw new LabError(`\`${showCommand(argv[0]!, argv.slice(1))}\` did not start:\n${tail(readFileSync(logPath, "utf8"))}`);
  await waitFor(
    `apt-cacher-ng (PID ${ref.pid}) to accept connections on ${address}:${APT_PROXY_PORT}`,
    10_000,
    50,
    async () => {
      if (!isAlive(ref)) throw new LabError(`apt-cacher-ng exited at start:\n${tail(readFileSync(logPath, "utf8"))}`);
      return (await probeTcp(address, APT_PROXY_PORT, 500)) ? true : undefined;
    },
  );
  return { ...ref, log: logPath, socketDir: dir };
}

export async function stopAptCacher(ref: ProcRef | undefined): Promise<void> {
  await stopRecorded(ref, "apt-cacher-ng");
}
