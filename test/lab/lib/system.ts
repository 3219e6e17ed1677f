/**
 * Facts about the machine the lab runs on: is it usable, which tools are there, where is its
 * Debian mirror and its cgroup2 hierarchy, what is mounted where; and removing directories safely.
 */
import { accessSync, constants, existsSync, readFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { LabError, run, SYSTEM_PATH } from "./proc.js";

/** Refuse clearly on anything but Linux as root: namespaces, mounts and cgroups need both. */
export function assertLinuxRoot(): void {
  if (process.platform !== "linux") {
    throw new LabError(`the lab needs Linux (namespaces, overlayfs, cgroup2); this is ${process.platform}`);
  }
  if (process.getuid?.() !== 0) {
    throw new LabError("the lab needs root (it creates network namespaces, mounts and cgroups); run it with sudo");
  }
}

/** Binaries the lab runs, and the Debian package that provides each. */
const TOOLS: Record<string, string> = {
  debootstrap: "debootstrap",
  "apt-cacher-ng": "apt-cacher-ng",
  ip: "iproute2",
  "ssh-keygen": "openssh-client",
  ssh: "openssh-client",
  // Essential on Debian (util-linux, mount, coreutils); listed so their absence is reported.
  nsenter: "util-linux",
  unshare: "util-linux",
  setpriv: "util-linux",
  findmnt: "util-linux",
  mount: "mount",
  chroot: "coreutils",
};
const INSTALLED_BY_LAB = ["debootstrap", "apt-cacher-ng", "iproute2", "openssh-client"];

function onPath(binary: string): boolean {
  return SYSTEM_PATH.split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, binary), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Install the Debian packages the lab needs when one of their binaries is missing. */
export async function ensureTools(log: (l: string) => void): Promise<void> {
  const missing = Object.keys(TOOLS).filter((b) => !onPath(b));
  if (missing.length === 0) return;
  const installable = missing.filter((b) => INSTALLED_BY_LAB.includes(TOOLS[b]!));
  if (installable.length < missing.length) {
    const other = missing.filter((b) => !installable.includes(b));
    throw new LabError(`missing ${other.join(", ")} (packages ${[...new Set(other.map((b) => TOOLS[b]))].join(", ")}); install them first`);
  }
  log(`installing ${INSTALLED_BY_LAB.join(" ")} (missing: ${missing.join(", ")})`);
  const env = { ...process.env, PATH: SYSTEM_PATH, DEBIAN_FRONTEND: "noninteractive" };
  await run("apt-get", ["update"], { env, timeoutMs: 300_000 });
  await run("apt-get", ["install", "-y", ...INSTALLED_BY_LAB], { env, timeoutMs: 600_000 });
  const still = Object.keys(TOOLS).filter((b) => !onPath(b));
  if (still.length) throw new LabError(`still missing after apt-get install: ${still.join(", ")}`);
}

/**
 * The Debian mirror this machine's apt uses: `URIs:` in debian.sources (not the security
 * archive), else the first `deb http…` line of sources.list. Taken from the machine rather than
 * written into the code, so the lab works wherever apt works.
 */
export function detectMirror(): string {
  const deb822 = "/etc/apt/sources.list.d/debian.sources";
  if (existsSync(deb822)) {
    for (const stanza of readFileSync(deb822, "utf8").split(/\n\s*\n/)) {
      const uris = /^URIs:\s*(.+)$/m.exec(stanza)?.[1]?.trim().split(/\s+/) ?? [];
      const suites = /^Suites:\s*(.+)$/m.exec(stanza)?.[1] ?? "";
      const uri = uris.find((u) => /^https?:\/\//.test(u));
      if (uri && !/security/.test(uri) && !/-security/.test(suites)) return uri.replace(/\/+$/, "");
    }
  }
  const legacy = "/etc/apt/sources.list";
  if (existsSync(legacy)) {
    for (const line of readFileSync(legacy, "utf8").split("\n")) {
      const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(https?:\/\/\S+)/.exec(line);
      if (m && !/security/.test(m[1]!)) return m[1]!.replace(/\/+$/, "");
    }
  }
  throw new LabError(`no Debian mirror found in ${deb822} (URIs:) or ${legacy} (deb http…)`);
}

/** Where the machine's cgroup2 hierarchy is mounted (/sys/fs/cgroup, or …/unified on hybrid). */
export async function findCgroup2(): Promise<string | undefined> {
  const { stdout } = await run("findmnt", ["-n", "-o", "TARGET", "-t", "cgroup2"], { allowFail: true });
  return stdout.split("\n").map((l) => l.trim()).find(Boolean);
}

export interface Mount {
  id: number;
  target: string;
  fstype: string;
  source: string;
}

/** Mounts in this process's mount namespace, from /proc/self/mountinfo. */
export function mounts(): Mount[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [left, right = ""] = line.split(" - ");
      const f = left!.split(" ");
      const r = right.split(" ");
      return { id: Number(f[0]), target: unescape(f[4] ?? ""), fstype: r[0] ?? "", source: unescape(r[1] ?? "") };
    });
}

export const isUnder = (path: string, dir: string) => path === dir || path.startsWith(dir.endsWith("/") ? dir : dir + "/");

export function mountsUnder(dir: string): Mount[] {
  return mounts().filter((m) => isUnder(m.target, dir));
}

/**
 * `rm -rf` that cannot reach through a mount: refuses while anything is mounted below `dir`
 * (a bind of /dev there would otherwise take the machine's device nodes with it), and passes
 * --one-file-system as a second guard.
 */
export async function removeTree(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  const busy = mountsUnder(dir);
  if (busy.length) {
    throw new LabError(`not removing ${dir}: still mounted below it: ${busy.map((m) => m.target).join(", ")}`);
  }
  await run("rm", ["-rf", "--one-file-system", "--", dir], { timeoutMs: 300_000 });
}

/** Unmount everything below `dir`, deepest (most recently mounted) first; bounded retries. */
export async function unmountUnder(dir: string, log: (l: string) => void): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const list = mountsUnder(dir).sort((a, b) => b.target.length - a.target.length || b.id - a.id);
    if (list.length === 0) return;
    const m = list[0]!;
    const res = await run("umount", [m.target], { allowFail: true });
    if (res.code === 0) continue;
    if (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    // Still busy after 5 s: detach it, so nothing of it stays reachable under the lab's tree.
    log(`${m.target} still busy (${res.stderr.trim()}); detaching it (umount -l)`);
    await run("umount", ["-l", m.target]);
  }
}
