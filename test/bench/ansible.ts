/**
 * Ansible beside pgprov: ansible-core from Debian, an inventory for a lab, the hosts' one
 * prerequisite (python3) and runs of test/bench/ansible/cluster.yml.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Lab } from "../lab/lab.js";
import { labExec } from "../lab/lab.js";
import { timed, type Timed } from "./measure.js";

const DIR = join(import.meta.dirname, "ansible");
export const ANSIBLE_PLAYBOOK = join(DIR, "cluster.yml");

/** ansible-core from the machine's Debian (bookworm: 2.14), installed when missing; its version. */
export function ensureAnsible(log: (l: string) => void): string {
  const version = () => spawnSync("ansible-playbook", ["--version"], { encoding: "utf8" });
  let v = version();
  if (v.error || v.status !== 0) {
    log("ansible-playbook not found: apt-get install ansible-core (without recommends: the core alone, no collections)");
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    const r = spawnSync("apt-get", ["install", "-y", "-q", "--no-install-recommends", "ansible-core"], { encoding: "utf8", env, timeout: 900_000 });
    if (r.status !== 0) throw new Error(`apt-get install ansible-core failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
    v = version();
    if (v.status !== 0) throw new Error(`ansible-playbook --version failed after installing ansible-core:\n${v.stderr}`);
  }
  return /core ([\d.]+)/.exec(v.stdout)?.[1] ?? v.stdout.split("\n")[0]!;
}

/**
 * Ansible runs modules with Python on the managed host; the lab's hosts are Debian minbase without
 * it. Installed here, outside any timed run, leaving apt's package lists as the image had them
 * (so Ansible's apt task refreshes them exactly when pgprov's does on the other set).
 */
export async function preparePython(lab: Lab): Promise<void> {
  const script = [
    "set -e",
    "export DEBIAN_FRONTEND=noninteractive",
    "rm -rf /var/lib/apt/lists.bench && cp -a /var/lib/apt/lists /var/lib/apt/lists.bench",
    "install() { apt-get install -y -q --no-install-recommends python3 python3-apt >/dev/null; }",
    "install || { apt-get update -q >/dev/null && install; }",
    "rm -rf /var/lib/apt/lists && mv /var/lib/apt/lists.bench /var/lib/apt/lists",
    "rm -f /var/cache/apt/archives/*.deb",
    "python3 --version",
  ].join("\n");
  await Promise.all(
    lab.hosts.map(async (h) => {
      const r = await labExec(h.name, script, { timeoutMs: 600_000 });
      if (r.code !== 0) throw new Error(`${h.name}: installing python3 failed (exit ${r.code}): ${r.stderr.trim()}`);
    }),
  );
}

export interface AnsibleSet {
  inventory: string;
  /** ANSIBLE_HOME: its temp files and SSH control sockets, apart from the user's ~/.ansible. */
  home: string;
  forks: number;
}

/** An inventory for `lab` (first host the primary, as in the lab's own), in `dir`. */
export function ansibleInventory(lab: Lab, dir: string): AnsibleSet {
  mkdirSync(dir, { recursive: true });
  const [primary, ...standbys] = lab.hosts;
  const line = (h: Lab["hosts"][number], role: string) =>
    `        ${h.name}: { ansible_host: ${h.address}, role: ${role}, slot: pgprov_${h.name} }`;
  const text = [
    "all:",
    "  vars:",
    "    ansible_user: root",
    `    ansible_ssh_private_key_file: ${lab.privateKeyPath}`,
    // Host keys checked against the lab's known_hosts, as pgprov checks them.
    `    ansible_ssh_common_args: -o UserKnownHostsFile=${lab.knownHostsPath} -o StrictHostKeyChecking=yes`,
    `    replication_password: ${randomBytes(18).toString("base64url")}`,
    "  children:",
    "    primary:",
    "      hosts:",
    line(primary!, "primary"),
    "    standbys:",
    "      hosts:",
    ...standbys.map((h) => line(h, "standby")),
    "",
  ].join("\n");
  const inventory = join(dir, "inventory.yml");
  writeFileSync(inventory, text, { mode: 0o600 });
  return { inventory, home: join(dir, "ansible-home"), forks: lab.hosts.length };
}

export interface AnsibleRun extends Timed {
  output: string;
  /** PLAY RECAP, per host. */
  recap: Record<string, { ok: number; changed: number; unreachable: number; failed: number }>;
}

export function ansiblePlaybook(set: AnsibleSet): AnsibleRun {
  const env = {
    ...process.env,
    ANSIBLE_CONFIG: join(DIR, "ansible.cfg"),
    ANSIBLE_HOME: set.home,
    ANSIBLE_SSH_CONTROL_PATH_DIR: join(set.home, "cp"),
    ANSIBLE_NOCOLOR: "1",
  };
  const r = timed("ansible-playbook", ["-i", set.inventory, "-f", String(set.forks), ANSIBLE_PLAYBOOK], { env, cwd: DIR });
  const recap: AnsibleRun["recap"] = {};
  for (const m of r.stdout.matchAll(/^(\S+)\s*: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)/gm)) {
    recap[m[1]!] = { ok: Number(m[2]), changed: Number(m[3]), unreachable: Number(m[4]), failed: Number(m[5]) };
  }
  const failed = Object.values(recap).some((h) => h.failed || h.unreachable);
  if (r.code !== 0 || failed || Object.keys(recap).length !== set.forks) {
    throw new Error(`ansible-playbook exited ${r.code}:\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-2000)}`);
  }
  return { ...r, output: r.stdout, recap };
}

/** End the SSH control masters Ansible left (ControlPersist), so nothing of the bench keeps running. */
export function stopControlMasters(set: AnsibleSet): void {
  const dir = join(set.home, "cp");
  let sockets: string[] = [];
  try {
    sockets = readdirSync(dir);
  } catch {
    return;
  }
  for (const s of sockets) spawnSync("ssh", ["-o", `ControlPath=${join(dir, s)}`, "-O", "exit", "bench"], { stdio: "ignore", timeout: 10_000 });
}
