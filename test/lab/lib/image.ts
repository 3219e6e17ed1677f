/**
 * The base image: one debootstrapped Debian tree per suite, shared read-only by every host as the
 * lower layer of its overlay root. Built once into a temporary directory and renamed into place
 * when complete, so a half-built image is never reused.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isAlive, LabError, listPids, procCwd, procRef, procRoot, run } from "./proc.js";
import { IMAGE_CACHE, type LabOs } from "./state.js";
import { isUnder, removeTree, unmountUnder } from "./system.js";

/** Bump when the image recipe below changes: a cached image with another stamp is rebuilt. */
const IMAGE_RECIPE = "pgprov-lab-image 1";
const STAMP = "etc/pgprov-lab-image";

/** The recipe's package list, exactly. */
const PACKAGES = ["openssh-server", "sudo", "iproute2", "procps", "ca-certificates", "systemd-sysv", "dbus"];

/**
 * Units that make no sense in a container and would fail or, worse, grab the machine's console.
 */
const MASKED_UNITS = [
  "getty@tty1.service",
  "serial-getty@ttyS0.service",
  "console-getty.service",
  "getty.target",
  "systemd-logind.service",
  "systemd-modules-load.service",
];

/** The user tests may log in as instead of root; sudo needs no password. */
export const DEPLOY_USER = "deploy";

export function imageDir(suite: LabOs): string {
  return join(IMAGE_CACHE, suite);
}

function stampOf(dir: string): string | undefined {
  try {
    return readFileSync(join(dir, STAMP), "utf8").split("\n")[0];
  } catch {
    return undefined;
  }
}

/** The image for `suite`, built first if there is none (or only one from an older recipe). */
export async function ensureImage(suite: LabOs, mirror: string, log: (l: string) => void): Promise<string> {
  const dir = imageDir(suite);
  if (stampOf(dir) === IMAGE_RECIPE) return dir;
  mkdirSync(IMAGE_CACHE, { recursive: true });
  await removeAbandonedBuilds(log);
  if (existsSync(dir)) {
    log(`image ${dir} is from another recipe (${stampOf(dir) ?? "no stamp"}); rebuilding it`);
    const old = join(IMAGE_CACHE, `.old-${suite}-${process.pid}`);
    renameSync(dir, old);
    await removeTree(old);
  }
  const started = Date.now();
  const tmp = join(IMAGE_CACHE, `.build-${suite}-${process.pid}`);
  log(`building the ${suite} image from ${mirror} (debootstrap, about a minute; cached in ${dir})`);
  try {
    await debootstrap(suite, tmp, mirror);
    await customize(tmp, suite, mirror);
  } catch (err) {
    await unmountUnder(tmp, log).catch(() => undefined);
    await removeTree(tmp).catch(() => undefined);
    throw err;
  }
  renameSync(tmp, dir);
  log(`built the ${suite} image in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return dir;
}

/** Temp dirs of builds whose process is gone (killed mid-debootstrap): unmount, then remove. */
async function removeAbandonedBuilds(log: (l: string) => void): Promise<void> {
  for (const name of readdirSync(IMAGE_CACHE)) {
    const m = /^\.(?:build|old)-[a-z]+-(\d+)$/.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid !== process.pid && isAlive(procRef(pid))) continue; // another build in progress
    const path = join(IMAGE_CACHE, name);
    const users = processesUsing(path);
    if (users.length) {
      // e.g. the debootstrap of a run that was killed: it is not ours to end; leave it be.
      log(`leaving ${path} alone: processes ${users.join(" ")} still use it`);
      continue;
    }
    log(`removing abandoned image build ${path}`);
    // debootstrap mounts /proc and /sys inside its target and leaves them there if killed.
    await unmountUnder(path, log);
    await removeTree(path);
  }
}

/** PIDs whose root, working directory or command line is in `dir`. */
function processesUsing(dir: string): number[] {
  return listPids().filter((pid) => {
    if (pid === process.pid) return false;
    const paths = [procRoot(pid), procCwd(pid)];
    if (paths.some((p) => p !== undefined && isUnder(p, dir))) return true;
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").some((a) => isUnder(a, dir));
    } catch {
      return false;
    }
  });
}

/** debootstrap has a script per suite; an older one may lack a newer suite, which `sid`'s serves. */
function suiteScript(suite: string): string[] {
  const scripts = "/usr/share/debootstrap/scripts";
  return existsSync(join(scripts, suite)) ? [] : [join(scripts, "sid")];
}

async function debootstrap(suite: LabOs, target: string, mirror: string): Promise<void> {
  const args = ["--variant=minbase", `--include=${PACKAGES.join(",")}`, suite, target, mirror, ...suiteScript(suite)];
  try {
    await run("debootstrap", args, { timeoutMs: 20 * 60_000 });
  } catch (err) {
    // debootstrap's own log says more than its stderr.
    const logFile = join(target, "debootstrap/debootstrap.log");
    const detail = existsSync(logFile) ? `\n--- ${logFile} (tail) ---\n${readFileSync(logFile, "utf8").split("\n").slice(-15).join("\n")}` : "";
    throw new LabError(`building the ${suite} image failed: ${(err as Error).message}${detail}`);
  }
}

const inImage = (root: string, cmd: string, args: string[]) => run("chroot", [root, cmd, ...args], { host: "image" });

/** What every host shares: masked units, apt sources, the deploy user; no SSH host keys. */
async function customize(root: string, suite: LabOs, mirror: string): Promise<void> {
  await inImage(root, "systemctl", ["mask", "--quiet", ...MASKED_UNITS]);

  // debootstrap writes sources for the suite it installed; written again so it is certain.
  writeFileSync(join(root, "etc/apt/sources.list"), `deb ${mirror} ${suite} main\n`);

  // Each host gets keys of its own (generated into its upper dir before its first boot).
  for (const f of readdirSync(join(root, "etc/ssh"))) {
    if (/^ssh_host_.*_key(\.pub)?$/.test(f)) rmSync(join(root, "etc/ssh", f));
  }

  await inImage(root, "useradd", ["--create-home", "--shell", "/bin/bash", DEPLOY_USER]);
  writeFileSync(join(root, "etc/sudoers.d", DEPLOY_USER), `${DEPLOY_USER} ALL=(ALL) NOPASSWD:ALL\n`, { mode: 0o440 });
  chmodSync(join(root, "etc/sudoers.d", DEPLOY_USER), 0o440);

  // No DNS in the lab: names are in /etc/hosts, apt goes through the proxy. An empty resolver
  // config makes a stray lookup fail at once (127.0.0.1:53 refuses) instead of timing out.
  rmSync(join(root, "etc/resolv.conf"), { force: true });
  writeFileSync(join(root, "etc/resolv.conf"), "# pgprov lab: no DNS; host names are in /etc/hosts\n");

  // Each host gets its own machine id; an empty file means "not set yet" to systemd.
  writeFileSync(join(root, "etc/machine-id"), "");
  await inImage(root, "apt-get", ["clean"]);

  writeFileSync(join(root, STAMP), `${IMAGE_RECIPE}\n${suite} from ${mirror}, built ${new Date().toISOString()}\n`);
}

/** uid and gid of a user in an image's /etc/passwd. */
export function userIds(root: string, user: string): { uid: number; gid: number } {
  const line = readFileSync(join(root, "etc/passwd"), "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${user}:`));
  const f = line?.split(":");
  if (!f) throw new LabError(`user ${user} not found in ${root}/etc/passwd`);
  return { uid: Number(f[2]), gid: Number(f[3]) };
}
