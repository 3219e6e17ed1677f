/**
 * `npm run bench`: pgprov beside Ansible doing the same work, in one run, on lab hosts of this
 * machine. Two lab instances side by side, each tool on its own bare hosts: PGPROV_LAB (default
 * 0) for pgprov, PGPROV_LAB + 1 for Ansible (ansible-core from Debian, installed if missing,
 * running test/bench/ansible/cluster.yml). On 3 and on 10 hosts: a cold bootstrap by each, then
 * no-op reruns interleaved (pgprov, Ansible, pgprov, Ansible...), so that whatever else the
 * machine does weighs on both alike. Prints medians, min and max, the ratio Ansible / pgprov for
 * each, and the machine it ran on.
 *
 * Times are the real CLI's, process start to exit, as the user waits for them, with no settling
 * pause: the first rerun comes right after the bootstrap, as a user's would. Each run's CPU is
 * printed beside its wall time: on a machine that other work loads, CPU moves far less.
 *
 * BENCH_HOSTS=3,10 and BENCH_RUNS=5,3 (no-op pairs per size) change what is measured.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ClusterEvent } from "../../src/cluster/events.js";
import { labDown, labUp, type Lab } from "../lab/lab.js";
import { IMAGE_CACHE, MAX_INSTANCES } from "../lab/lib/state.js";
import { ansibleInventory, ansiblePlaybook, ensureAnsible, preparePython, stopControlMasters, type AnsibleSet } from "./ansible.js";
import { hostsCpuMs, load, machine, median, seconds, table, timed, type Timed } from "./measure.js";

const BIN = join(import.meta.dirname, "../../bin/pgprov.js");
const OUT = join(import.meta.dirname, "../../.lab/bench");
const log = (l: string) => process.stderr.write(`bench [${seconds(performance.now())}]: ${l}\n`);
const write = (s: string) => process.stdout.write(s);

const list = (name: string, fallback: number[]) =>
  (process.env[name]?.trim() ? process.env[name]!.split(",").map(Number) : fallback).filter((n) => Number.isInteger(n) && n > 0);
const SIZES = list("BENCH_HOSTS", [3, 10]);
const PAIRS = list("BENCH_RUNS", [5, 3]);

const BASE = Number(process.env.PGPROV_LAB?.trim() || "0");
if (!Number.isInteger(BASE) || BASE < 0 || BASE + 1 >= MAX_INSTANCES) throw new Error(`PGPROV_LAB=${process.env.PGPROV_LAB}: the bench uses it and the next instance`);
const PGPROV_INSTANCE = BASE;
const ANSIBLE_INSTANCE = BASE + 1;

/** Lab calls act on the instance in PGPROV_LAB: one instance at a time, never interleaved. */
async function on<T>(instance: number, work: () => Promise<T>): Promise<T> {
  const saved = process.env.PGPROV_LAB;
  process.env.PGPROV_LAB = String(instance);
  try {
    return await work();
  } finally {
    if (saved === undefined) delete process.env.PGPROV_LAB;
    else process.env.PGPROV_LAB = saved;
  }
}

/**
 * A lab host's boot fails now and then on a loaded machine (its systemd exits early): one more
 * try, from scratch (labUp clears what the failed one left), before the bench gives up.
 */
async function boot(instance: number, hosts: number): Promise<Lab> {
  try {
    return await on(instance, () => labUp({ hosts, log }));
  } catch (e) {
    log(`lab instance ${instance} did not boot, trying once more: ${(e as Error).message.split("\n")[0]}`);
    return on(instance, () => labUp({ hosts, log }));
  }
}

interface Measured extends Timed {
  /** CPU of every process on the tool's hosts during the run. */
  hostsCpu: number;
}

function measure(lab: Lab, run: () => Timed): Measured {
  const before = hostsCpuMs(lab.dir);
  const r = run();
  return { ...r, hostsCpu: hostsCpuMs(lab.dir) - before };
}

interface PgprovRun extends Measured {
  changed: number;
  /** Round trips per host, as the recap counts them: "6 (pg1), 5 (pg2, pg3)", "6 (pg1), 5 (9 hosts)". */
  trips: string;
  /** Standbys streaming, of all, when the run ended. */
  streaming: string;
}

/** `pgprov apply --json`: the JSON lines say what changed; they cost what the plain output does. */
function pgprov(lab: Lab): PgprovRun {
  const r = measure(lab, () => timed(process.execPath, [BIN, "apply", lab.inventoryPath, "--json"]));
  if (r.code !== 0) throw new Error(`pgprov apply exited ${r.code}:\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-2000)}`);
  const events = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as ClusterEvent);
  const last = <T extends ClusterEvent["type"]>(type: T) => events.filter((e): e is Extract<ClusterEvent, { type: T }> => e.type === type).at(-1);
  const hosts = last("recap")?.hosts ?? {};
  const byTrips = new Map<number, string[]>();
  for (const [host, h] of Object.entries(hosts)) byTrips.set(h.commands, [...(byTrips.get(h.commands) ?? []), host]);
  const standbys = last("replication")?.standbys ?? [];
  return {
    ...r,
    changed: Object.values(hosts).reduce((n, h) => n + h.changed, 0),
    trips: [...byTrips].map(([n, names]) => `${n} (${names.length > 3 ? `${names.length} hosts` : names.join(", ")})`).join(", "),
    streaming: `${standbys.filter((s) => s.state === "streaming").length}/${lab.hosts.length - 1}`,
  };
}

/**
 * The same no-op through pg1 as a jump host (issue 13): the lab's inventory gets `ssh.proxy_jump`
 * for these runs only, so the run state (and what is read ahead) stays the direct runs'.
 */
function pgprovThroughPg1(lab: Lab, runs: number): PgprovRun[] {
  const text = readFileSync(lab.inventoryPath, "utf8");
  writeFileSync(lab.inventoryPath, text.replace(/^ssh:\n/m, "ssh:\n  proxy_jump: root@pg1\n"));
  try {
    return Array.from({ length: runs }, () => pgprov(lab));
  } finally {
    writeFileSync(lab.inventoryPath, text);
  }
}

/**
 * The inventory with 10 roles, 5 databases and 10 access rules (issue 15), for these runs only:
 * one run that makes them, then `runs` no-op reruns, which still read each host in one round trip.
 * Last of a size's runs: the objects stay in the cluster, the inventory is put back.
 */
const OBJECTS_YAML = [
  "roles:",
  ...Array.from({ length: 10 }, (_, i) => `  bench_role${i + 1}: { login: ${i < 5}, connection_limit: ${10 + i}, settings: { work_mem: ${4 + i}MB } }`),
  "databases:",
  ...Array.from({ length: 5 }, (_, i) => `  bench_db${i + 1}: { owner: bench_role${i + 1}, settings: { statement_timeout: ${30 + i}s } }`),
  "access:",
  ...Array.from({ length: 10 }, (_, i) => `  - { database: bench_db${(i % 5) + 1}, user: bench_role${i + 1}, from: 10.${i + 1}.0.0/16, method: ${i % 4 === 3 ? "reject" : "scram-sha-256"} }`),
  "",
].join("\n");

function pgprovWithObjects(lab: Lab, runs: number): { made: PgprovRun; noOps: PgprovRun[] } {
  const text = readFileSync(lab.inventoryPath, "utf8");
  writeFileSync(lab.inventoryPath, `${text.trimEnd()}\n${OBJECTS_YAML}`);
  try {
    const made = pgprov(lab);
    return { made, noOps: Array.from({ length: runs }, () => pgprov(lab)) };
  } finally {
    writeFileSync(lab.inventoryPath, text);
  }
}

/** The same, on a pseudo-terminal (the progress tree a user at a terminal sees), 100 columns wide. */
function pgprovOnTerminal(lab: Lab): Measured {
  const command = `stty cols 100 rows 40; exec ${process.execPath} ${BIN} apply ${lab.inventoryPath}`;
  const r = measure(lab, () => timed("script", ["-qec", command, "/dev/null"]));
  if (r.code !== 0) throw new Error(`pgprov apply on a terminal exited ${r.code}:\n${r.stdout.slice(-4000)}`);
  return r;
}

function ansible(lab: Lab, set: AnsibleSet): Measured & { changed: number } {
  let run: ReturnType<typeof ansiblePlaybook> | undefined;
  const r = measure(lab, () => (run = ansiblePlaybook(set)));
  return { ...r, changed: Object.values(run!.recap).reduce((n, h) => n + h.changed, 0) };
}

/** Whether this instance's apt cache already holds PostgreSQL's package (its first install downloads it). */
function aptCache(instance: number, version = 15): string {
  const dir = instance === 0 ? "/var/cache/apt-cacher-ng" : join(IMAGE_CACHE, "..", "apt-cacher-ng", String(instance));
  const has = (d: string): boolean => {
    if (!existsSync(d)) return false;
    return readdirSync(d, { withFileTypes: true }).some((e) => (e.isDirectory() ? has(join(d, e.name)) : e.name.startsWith(`postgresql-${version}_`)));
  };
  return has(dir) ? "warm" : "cold (PostgreSQL downloaded from Debian)";
}

const ratio = (ansibleMs: number, pgprovMs: number) => `${(ansibleMs / pgprovMs).toFixed(1)}×`;
const cpu = (r: Measured) => `${seconds(r.cpuMs)} + ${seconds(r.hostsCpu)}`;
const spread = (xs: number[]) => [seconds(median(xs)), seconds(Math.min(...xs)), seconds(Math.max(...xs))];

async function size(hosts: number, pairs: number, versions: string): Promise<void> {
  log(`${hosts} hosts: booting two sets, instance ${PGPROV_INSTANCE} for pgprov and ${ANSIBLE_INSTANCE} for Ansible`);
  const pLab = await boot(PGPROV_INSTANCE, hosts);
  const aLab = await boot(ANSIBLE_INSTANCE, hosts);
  const prepared = performance.now();
  await on(ANSIBLE_INSTANCE, () => preparePython(aLab));
  const prepMs = performance.now() - prepared;
  const set = ansibleInventory(aLab, join(OUT, `ansible-${hosts}`));
  const caches = `apt cache: pgprov's ${aptCache(PGPROV_INSTANCE)}, Ansible's ${aptCache(ANSIBLE_INSTANCE)}`;
  try {
    log(`${hosts} hosts: cold bootstrap by pgprov (${caches})`);
    const pCold = pgprov(pLab);
    writeFileSync(join(OUT, `pgprov-${hosts}-cold.jsonl`), pCold.stdout);
    log(`pgprov: ${seconds(pCold.ms)}, ${pCold.streaming} standbys streaming; cold bootstrap by Ansible`);
    const aCold = ansible(aLab, set);
    log(`Ansible: ${seconds(aCold.ms)}`);

    const p: PgprovRun[] = [];
    const a: ReturnType<typeof ansible>[] = [];
    for (let i = 0; i < pairs; i++) {
      p.push(pgprov(pLab));
      a.push(ansible(aLab, set));
      log(`no-op pair ${i + 1}/${pairs}: pgprov ${seconds(p.at(-1)!.ms)}, Ansible ${seconds(a.at(-1)!.ms)} (load ${load()})`);
    }
    const jumped = pgprovThroughPg1(pLab, 3);
    const notNoOp = [
      ...p.map((r, i) => (r.changed ? `pgprov run ${i + 1} changed ${r.changed}` : "")),
      ...jumped.map((r, i) => (r.changed ? `pgprov run ${i + 1} through pg1 changed ${r.changed}` : "")),
      ...a.map((r, i) => (r.changed ? `Ansible run ${i + 1} changed ${r.changed}` : "")),
    ].filter(Boolean);
    const terminal = [0, 1, 2].map(() => pgprovOnTerminal(pLab));
    const objects = pgprovWithObjects(pLab, 3);
    notNoOp.push(...objects.noOps.map((r, i) => (r.changed ? `pgprov run ${i + 1} with roles, databases and access rules changed ${r.changed}` : "")).filter(Boolean));
    const numbers = (rs: Measured[]) => rs.map((r) => ({ ms: Math.round(r.ms), cpuMs: r.cpuMs, hostsCpuMs: Math.round(r.hostsCpu) }));
    writeFileSync(
      join(OUT, `runs-${hosts}.json`),
      JSON.stringify(
        { cold: numbers([pCold, aCold]), pgprov: numbers(p), ansible: numbers(a), terminal: numbers(terminal), throughPg1: numbers(jumped), objects: numbers(objects.noOps) },
        null,
        1,
      ),
    );

    write(`\n== ${hosts} hosts (a primary and ${hosts - 1} standbys), ${versions}\n`);
    write(`${caches}. Ansible's hosts got python3 and python3-apt first, outside the timings (${seconds(prepMs)}).\n\n`);
    table(
      [
        ["cold bootstrap", "wall", "CPU: tool + hosts", "standbys streaming after"],
        ["pgprov", seconds(pCold.ms), cpu(pCold), pCold.streaming],
        ["Ansible", seconds(aCold.ms), cpu(aCold), `${hosts - 1}/${hosts - 1} (its last task waits for them)`],
        ["ratio Ansible / pgprov", ratio(aCold.ms, pCold.ms), ratio(aCold.cpuMs + aCold.hostsCpu, pCold.cpuMs + pCold.hostsCpu), ""],
      ],
      write,
    );
    const med = (rs: Measured[], f: (r: Measured) => number) => median(rs.map(f));
    table(
      [
        [`no-op rerun, ${pairs} interleaved pairs`, "median", "min", "max", "CPU: tool + hosts (median)", "round trips per host"],
        ["pgprov", ...spread(p.map((r) => r.ms)), `${seconds(med(p, (r) => r.cpuMs))} + ${seconds(med(p, (r) => r.hostsCpu))}`, p.at(-1)!.trips],
        ["Ansible", ...spread(a.map((r) => r.ms)), `${seconds(med(a, (r) => r.cpuMs))} + ${seconds(med(a, (r) => r.hostsCpu))}`, ""],
        [
          "ratio Ansible / pgprov",
          ratio(median(a.map((r) => r.ms)), median(p.map((r) => r.ms))),
          ratio(Math.min(...a.map((r) => r.ms)), Math.min(...p.map((r) => r.ms))),
          ratio(Math.max(...a.map((r) => r.ms)), Math.max(...p.map((r) => r.ms))),
          ratio(med(a, (r) => r.cpuMs + r.hostsCpu), med(p, (r) => r.cpuMs + r.hostsCpu)),
          "",
        ],
        ["pgprov on a terminal (3 runs)", ...spread(terminal.map((r) => r.ms)), `${seconds(med(terminal, (r) => r.cpuMs))} + ${seconds(med(terminal, (r) => r.hostsCpu))}`, ""],
        ["pgprov through pg1 as jump host (3 runs)", ...spread(jumped.map((r) => r.ms)), `${seconds(med(jumped, (r) => r.cpuMs))} + ${seconds(med(jumped, (r) => r.hostsCpu))}`, jumped.at(-1)!.trips],
        [
          "pgprov with 10 roles, 5 databases, 10 access rules (3 runs)",
          ...spread(objects.noOps.map((r) => r.ms)),
          `${seconds(med(objects.noOps, (r) => r.cpuMs))} + ${seconds(med(objects.noOps, (r) => r.hostsCpu))}`,
          objects.noOps.at(-1)!.trips,
        ],
      ],
      write,
    );
    write(
      `through pg1 / direct, median wall: ${(median(jumped.map((r) => r.ms)) / median(p.map((r) => r.ms))).toFixed(2)}×; ` +
        `with the roles, databases and access rules / without: ${(median(objects.noOps.map((r) => r.ms)) / median(p.map((r) => r.ms))).toFixed(2)}× ` +
        `(the run that made them: ${seconds(objects.made.ms)}, ${objects.made.changed} changes)\n`,
    );
    write(`each run, in order: pgprov ${p.map((r) => seconds(r.ms)).join(", ")}; Ansible ${a.map((r) => seconds(r.ms)).join(", ")}\n`);
    write(notNoOp.length ? `NOT A NO-OP: ${notNoOp.join("; ")}\n` : "every rerun changed nothing\n");
    if (notNoOp.length) process.exitCode = 1;
  } finally {
    stopControlMasters(set);
    await on(ANSIBLE_INSTANCE, () => labDown({ log }));
    await on(PGPROV_INSTANCE, () => labDown({ log }));
  }
}

mkdirSync(OUT, { recursive: true });
const ansibleVersion = ensureAnsible(log);
const started = performance.now();
const loadBefore = load();
write(`machine: ${machine()}\n`);
write(`load average (1, 5, 15 min) at the start: ${loadBefore}\n`);
const pgprovVersion = (JSON.parse(readFileSync(join(import.meta.dirname, "../../package.json"), "utf8")) as { version: string }).version;
const versions = `pgprov ${pgprovVersion} vs ansible-core ${ansibleVersion} (pipelining, forks = hosts, OpenSSH ControlPersist 60 s as shipped)`;
try {
  for (const [i, hosts] of SIZES.entries()) await size(hosts, PAIRS[i] ?? PAIRS.at(-1) ?? 3, versions);
} finally {
  await on(ANSIBLE_INSTANCE, () => labDown({ log }));
  await on(PGPROV_INSTANCE, () => labDown({ log }));
}
write(`\nload average at the end: ${load()}; the bench took ${seconds(performance.now() - started)}. Logs: ${OUT}\n`);
