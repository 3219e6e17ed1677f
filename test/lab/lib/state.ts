/**
 * The lab's names, addresses and paths, and its state file: the record of everything `up` made,
 * which is what `down` undoes and the only basis (with /proc/PID/root) for ending a process.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { ProcRef } from "./proc.js";

export type LabOs = "bookworm" | "trixie";
export const LAB_OSES: readonly LabOs[] = ["bookworm", "trixie"];

export const MAX_HOSTS = 20;
export const DEFAULT_HOSTS = 3;

/**
 * Labs can run side by side (e2e test files in parallel, a developer's lab beside CI's): each is
 * an instance N with its own bridge, /24, name prefixes, cgroup group and directory. Instance 0
 * is the default one (`npm run lab`): pgprovbr0, 10.231.0.0/24, `.lab/`. N is $PGPROV_LAB (default
 * 0) plus, inside a vitest worker, the worker's number (VITEST_POOL_ID, from 1): so test files in
 * parallel each get their own, and two test runs side by side are kept apart by PGPROV_LAB.
 */
export const MAX_INSTANCES = 64;
/** vitest's workers for e2e files (vitest.config.ts): a run uses instances PGPROV_LAB + 1..this. */
export const MAX_WORKERS = 3;

export function labInstance(): number {
  const base = process.env.PGPROV_LAB?.trim() || "0";
  const worker = process.env.VITEST_POOL_ID?.trim() || "0";
  const n = Number(base) + Number(worker);
  if (!/^\d+$/.test(base) || !/^\d+$/.test(worker) || n >= MAX_INSTANCES) {
    throw new Error(`lab instance ${base} + ${worker} (PGPROV_LAB + VITEST_POOL_ID) is not a whole number from 0 to ${MAX_INSTANCES - 1}`);
  }
  return n;
}

/** Names and addresses of lab instance `n`: every object a lab makes is found by these. */
export function labNet(n = labInstance()) {
  const suffix = n === 0 ? "" : String(n);
  const bridgeAddress = `10.231.${n}.1`;
  return {
    instance: n,
    bridge: `pgprovbr${n}`,
    /** A private /24 of the lab's own; nothing routes or NATs it anywhere. */
    bridgeAddress,
    subnet: `10.231.${n}.0/24`,
    netnsPrefix: `pgprov${suffix}-`,
    vethPrefix: `pgpv${suffix}-`,
    cgroupGroup: `pgprov-lab${suffix}`,
    aptProxy: `http://${bridgeAddress}:${APT_PROXY_PORT}`,
    hostAddress: (k: number) => `10.231.${n}.${10 + k}`,
  };
}
export type LabNet = ReturnType<typeof labNet>;

export const PREFIX_LENGTH = 24;
export const APT_PROXY_PORT = 3142;

export const hostName = (k: number) => `pg${k}`;

/** Base images are big and slow to make: kept outside the repo, shared by every checkout. */
export const IMAGE_CACHE = "/var/cache/pgprov-lab/images";

/** `.lab/` at the repo root (`.lab/N/` for instance N), or $PGPROV_LAB_DIR; read at each call so tests may set it late. */
export function labDir(): string {
  const fromEnv = process.env.PGPROV_LAB_DIR;
  if (fromEnv && fromEnv.trim()) return resolve(fromEnv);
  const n = labInstance();
  return fileURLToPath(new URL(n === 0 ? "../../../.lab" : `../../../.lab/${n}`, import.meta.url));
}

export function labPaths(dir = labDir()) {
  return {
    dir,
    state: join(dir, "state.json"),
    privateKey: join(dir, "id_ed25519"),
    publicKey: join(dir, "id_ed25519.pub"),
    knownHosts: join(dir, "known_hosts"),
    inventory: join(dir, "inventory.yml"),
    hosts: join(dir, "hosts"),
    aptDir: join(dir, "apt-cacher-ng"),
  };
}

export interface HostState {
  name: string;
  address: string;
  netns: string;
  /** The bridge-side end of the host's veth pair; the other end is eth0 inside. */
  veth: string;
  /** Overlay mount point (the host's /), its upper and work dirs, and its console log. */
  root: string;
  upper: string;
  work: string;
  console: string;
  /** The host's own cgroup2 directory (its cgroup namespace root). */
  cgroup: string;
  /** The host's systemd (PID 1 inside), as seen from the machine; 0 before the first boot. */
  pid: number;
  startTime: string;
  /** `unshare`, the parent of the host's PID 1 in the machine's PID namespace. */
  launcher?: ProcRef;
}

export interface LabState {
  version: 1;
  os: LabOs;
  mirror: string;
  image: string;
  bridge: string;
  bridgeAddress: string;
  /** <cgroup2 mount>/pgprov-lab: parent of the hosts' cgroups. */
  cgroupParent: string;
  aptCacher?: ProcRef & { log: string; socketDir: string };
  hosts: HostState[];
}

/** The state file, or undefined when there is none (or it cannot be read: then it is no guide). */
export function readState(dir = labDir()): LabState | undefined {
  const file = labPaths(dir).state;
  if (!existsSync(file)) return undefined;
  try {
    const parsed = JSON.parse(readFileSync(file, "utf8")) as LabState;
    return parsed.version === 1 && Array.isArray(parsed.hosts) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** Written atomically (temp file + rename): a crash mid-write never leaves half a record. */
export function writeState(state: LabState, dir = labDir()): void {
  const file = labPaths(dir).state;
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 2) + "\n");
  renameSync(`${file}.tmp`, file);
}
