/**
 * The engine: runs a playbook's plays in order over the inventory's hosts, hosts in parallel.
 *
 * Per host and play it reads, decides, acts:
 * - read: one round trip carries the facts script and the probe of every task that can be
 *   rendered now (a task that reads a value registered earlier in the same play waits for it);
 * - decide: each module's pure `decide` turns its probe output into changes, or none;
 * - act (not under --check): the changes' commands run in one round trip, and the probes of the
 *   play's later tasks ride along in the same script, since the act may have changed their state.
 * A no-op run therefore costs one round trip per host per play.
 */
import { z } from "zod";
import { PgprovError } from "../errors.js";
import type { Host, Inventory } from "../inventory/inventory.js";
import { type Command, type Module, type ModuleContext, type ProbeOutput, TaskFailure } from "../modules/module.js";
import type { Play, Playbook, Task } from "../playbook/playbook.js";
import { isTruthy, render, renderValue, templateVariables } from "../playbook/template.js";
import type { Reached } from "../transport/fleet.js";
import { HostPostgres } from "../transport/postgres.js";
import { HostConnection, RemoteError } from "../transport/ssh.js";
import { buildBatch, newNonce, parseBatch, type Section, type SectionResult, TIMED_OUT } from "./batch.js";
import type { Change, Decision } from "./change.js";
import type { Emit, HostRecap, RunEvent, TaskStatus } from "./events.js";
import { type Facts, FACTS_SCRIPT, parseFacts, sameFacts } from "./facts.js";
import { maskRemovedLines, Redactor } from "./redact.js";
import { RunState } from "./state.js";
import { type ClusterContext, hostVariables } from "./variables.js";

export interface RunOptions {
  /** Change nothing; report what would change. */
  check?: boolean;
  /** Only these hosts (names). */
  limit?: string[];
  /** Hosts not touched at all, not even read: known to be down (a failed primary, fenced). */
  exclude?: string[];
  /** Only tasks with one of these tags (handlers always run when notified). */
  tags?: string[];
  /** Hosts worked on at once; default all. */
  forks?: number;
  /** Values to mask in every event. */
  secrets?: string[];
  /** What pgprov read from the cluster (see cluster/safety.ts); afterPlay may fill it in. */
  cluster?: ClusterContext;
  /**
   * Called when every host has finished a play, with each host's registered values. Throwing a
   * PgprovError stops the run there, before the next play changes anything.
   */
  afterPlay?: (play: Play, registered: Map<string, Record<string, unknown>>) => void | Promise<void>;
  /** The connections to the hosts the run touches (see hostsUsed); the caller opens and closes them. */
  reached: Reached[];
  emit: Emit;
}

/** The caller emits the recap (`{ type: "recap", hosts }`) last, after anything it adds. */
export interface RunSummary {
  hosts: Record<string, HostRecap>;
  changed: boolean;
  failed: boolean;
}

const PROBE_TIMEOUT_MS = 60_000;
/** For a command whose module sets no bound of its own. */
const DEFAULT_ACT_TIMEOUT_MS = 120_000;

/** A failure on one host: ends that host's run; the others finish the play. */
class HostFailure extends Error {
  constructor(readonly event: Extract<RunEvent, { type: "failure" }>) {
    super(event.message);
  }
}

/** One task made ready on one host: rendered, validated, and either skipped or probed. */
interface Prepared {
  task: Task;
  name: string;
  skip?: string;
  args?: unknown;
  probe?: ProbeOutput;
}

interface HostSession {
  host: Host;
  connection?: HostConnection;
  /** Opened at the first SQL probe or act, kept for the run. */
  postgres?: Promise<HostPostgres>;
  failed: boolean;
  registered: Record<string, unknown>;
  facts?: Facts;
  recap: HostRecap;
}

export async function runPlaybook(inventory: Inventory, playbook: Playbook, options: RunOptions): Promise<RunSummary> {
  const started = performance.now();
  const redactor = new Redactor(options.secrets);
  const emit: Emit = (event) => options.emit(redactor.value(event));
  const state = RunState.forInventory(inventory);

  const targetsOf = (play: Play) => playTargets(play, inventory, options);
  const used = hostsUsed(inventory, playbook, options);
  emit({ type: "run", playbook: playbook.file, inventory: inventory.file, check: options.check ?? false, hosts: used.map((h) => h.name) });

  const sessions = new Map<string, HostSession>();
  const reached = options.reached.filter((r) => used.includes(r.host));
  for (const r of reached) {
    const session: HostSession = {
      host: r.host,
      failed: false,
      registered: {},
      facts: state.facts(r.host.name, r.host.address),
      recap: { ok: 0, changed: 0, failed: 0, skipped: 0, commands: 0, seconds: 0 },
    };
    if ("connection" in r) session.connection = r.connection;
    else {
      session.failed = true;
      session.recap.failed++;
      emit({ type: "failure", host: r.host.name, message: r.error.message });
    }
    sessions.set(r.host.name, session);
  }

  let stopped = false;
  try {
    for (const play of playbook.plays) {
      const targets = targetsOf(play)
        .map((h) => sessions.get(h.name)!)
        .filter((s) => !s.failed);
      if (targets.length > 0) {
        emit({ type: "play", play: play.name, hosts: targets.map((s) => s.host.name) });
        await forEachLimited(targets, options.forks ?? targets.length, (session) =>
          new PlayOnHost(play, playbook, inventory, session, state, options, emit, redactor).run(),
        );
      }
      if ([...sessions.values()].some((s) => s.failed)) break;
      if (targets.length > 0 && options.afterPlay) {
        try {
          await options.afterPlay(play, new Map(targets.map((s) => [s.host.name, s.registered])));
        } catch (e) {
          if (!(e instanceof PgprovError)) throw e;
          emit({ type: "failure", host: "cluster", play: play.name, message: e.message });
          stopped = true;
          break;
        }
      }
    }
  } finally {
    await Promise.all([...sessions.values()].map((s) => s.postgres?.then((p) => p.close()).catch(() => {})));
  }

  const hosts: Record<string, HostRecap> = {};
  for (const s of sessions.values()) {
    hosts[s.host.name] = { ...s.recap, commands: s.connection?.commands ?? 0, seconds: round((performance.now() - started) / 1000) };
  }
  const all = Object.values(hosts);
  return { hosts, changed: all.some((h) => h.changed > 0), failed: stopped || all.some((h) => h.failed > 0) };
}

/** The hosts a play runs on: its selection, within --limit (unless it only reads), less --exclude'd ones. */
function playTargets(play: Play, inventory: Inventory, options: Pick<RunOptions, "limit" | "exclude">): Host[] {
  return selectHosts(play, inventory).filter(
    (h) => !options.exclude?.includes(h.name) && (isReadOnly(play) || !options.limit || options.limit.includes(h.name)),
  );
}

/** Every host some play of the run touches: the ones to connect to. */
export function hostsUsed(inventory: Inventory, playbook: Playbook, options: Pick<RunOptions, "limit" | "exclude">): Host[] {
  return inventory.hosts.filter((h) => playbook.plays.some((p) => playTargets(p, inventory, options).includes(h)));
}

/** A play of read-only tasks (the cluster's safety reads) runs on all its hosts, whatever --limit says. */
function isReadOnly(play: Play): boolean {
  return play.tasks.length > 0 && play.tasks.every((t) => t.module.readOnly === true);
}

export function selectHosts(play: Play, inventory: Inventory): Host[] {
  return inventory.hosts.filter((h) =>
    play.hosts.some((sel) => sel === "all" || sel === h.name || (sel === "primary" && h.role === "primary") || (sel === "standbys" && h.role === "standby")),
  );
}

/** One play on one host. */
class PlayOnHost {
  private readonly playKey: string;
  private readonly context: ModuleContext;
  private readonly connection: HostConnection;
  private readonly host: string;
  private readonly started = performance.now();

  constructor(
    private readonly play: Play,
    playbook: Playbook,
    private readonly inventory: Inventory,
    private readonly session: HostSession,
    private readonly state: RunState,
    private readonly options: RunOptions,
    private readonly emit: Emit,
    /** The run's secrets, to tell a file that holds one. */
    private readonly secretsSeen: Redactor,
  ) {
    this.playKey = `${playbook.file}#${play.name}`;
    this.connection = session.connection!;
    this.host = session.host.name;
    this.context = {
      playbookDir: playbook.dir,
      ...(inventory.aptProxy ? { aptProxy: inventory.aptProxy } : {}),
      render: (text, where) => render(text, this.variables(), where),
    };
  }

  async run(): Promise<void> {
    const commandsBefore = this.connection.commands;
    const recapBefore = { ...this.session.recap };
    // The host's tally for this play, which renderers print without counting again.
    const hostEvent = (status: "ok" | "failed") => {
      const r = this.session.recap;
      this.emit({
        type: "host",
        play: this.play.name,
        host: this.host,
        status,
        ok: r.ok - recapBefore.ok,
        changed: r.changed - recapBefore.changed,
        skipped: r.skipped - recapBefore.skipped,
        commands: this.connection.commands - commandsBefore,
        ms: this.elapsed(),
      });
    };
    try {
      const tasks = this.play.tasks.filter((t) => this.selectedByTags(t));
      // Handlers a failed earlier run notified but never ran: they run at the end of this play.
      const notified = new Set(this.state.pendingHandlers(this.playKey, this.host));
      await this.runTasks(tasks, false, notified);
      const handlers = this.play.handlers.filter((h) => notified.has(h.name));
      if (handlers.length) await this.runTasks(handlers, true, notified);
      hostEvent("ok");
    } catch (e) {
      const failure = e instanceof HostFailure ? e.event : this.failureEvent(undefined, e);
      this.session.failed = true;
      this.session.recap.failed++;
      this.emit(failure);
      hostEvent("failed");
    }
  }

  private async runTasks(tasks: Task[], handlers: boolean, notified: Set<string>): Promise<void> {
    let checked = new Map<number, Prepared>();
    for (let i = 0; i < tasks.length; i++) {
      if (!checked.has(i)) checked = await this.check(tasks, i);
      const p = checked.get(i)!;
      const started = performance.now();
      const report = (status: TaskStatus, decision?: Decision) => {
        this.session.recap[status === "failed" ? "failed" : status]++;
        this.emit({
          type: "task",
          play: this.play.name,
          host: this.host,
          task: p.name,
          handler: handlers,
          status,
          changes: this.maskRemovedLines(p, decision?.changes ?? []),
          ...(p.skip ?? decision?.reason ? { reason: p.skip ?? decision?.reason } : {}),
          ms: Math.round(performance.now() - started),
        });
      };

      if (p.skip !== undefined) {
        report("skipped");
        this.register(p.task, { changed: false, skipped: true, stdout: "" });
        continue;
      }
      const decision = this.decide(p);
      let stdout = typeof decision.value === "string" ? decision.value : "";
      if (decision.changes.length > 0 && !this.options.check) {
        const later = [...checked.entries()].filter(([j, q]) => j > i && q.probe);
        const { output, probes } = await this.act(p, decision, later.map(([, q]) => q));
        stdout = output;
        later.forEach(([j, q], k) => checked.set(j, { ...q, probe: probes[k]! }));
      }
      const changed = decision.changes.length > 0;
      report(changed ? "changed" : "ok", decision);
      this.register(p.task, {
        changed,
        skipped: false,
        stdout,
        changes: decision.changes.map((c) => c.summary),
        ...(decision.value !== undefined && typeof decision.value !== "string" ? { value: decision.value } : {}),
      });
      if (changed) {
        for (const handler of p.task.notify) {
          notified.add(handler);
          // Remembered before anything else can fail, so a later failure cannot lose it.
          if (!this.options.check) this.state.addPendingHandler(this.playKey, this.host, handler);
        }
      }
      if (handlers && !this.options.check) this.state.handlerDone(this.playKey, this.host, p.task.name);
    }
  }

  /**
   * The read step: renders tasks from `from` on, up to the first that reads a value a task
   * between them registers, and probes them all in one round trip: shell probes with the facts
   * script, SQL probes as one multi-statement query (a play of SQL probes alone needs no shell).
   */
  private async check(tasks: Task[], from: number): Promise<Map<number, Prepared>> {
    const registeredHere = new Set<string>();
    const batch: number[] = [];
    for (let i = from; i < tasks.length; i++) {
      if (i > from && [...variablesRead(tasks[i]!)].some((v) => registeredHere.has(v))) break;
      batch.push(i);
      if (tasks[i]!.register) registeredHere.add(tasks[i]!.register!);
    }
    if (!this.session.facts) await this.learnFacts();
    let prepared = new Map(batch.map((i) => [i, this.prepare(tasks[i]!)]));
    let probed = [...prepared.entries()].filter(([, p]) => p.skip === undefined);
    let { probes, facts } = await this.probe(probed.map(([, p]) => p), { facts: true });
    if (facts && !sameFacts(this.session.facts, facts)) {
      // The host changed under the cached facts (an OS upgrade, another machine at the
      // address): render again with the real ones.
      this.setFacts(facts);
      prepared = new Map(batch.map((i) => [i, this.prepare(tasks[i]!)]));
      probed = [...prepared.entries()].filter(([, p]) => p.skip === undefined);
      ({ probes } = await this.probe(probed.map(([, p]) => p), { facts: false }));
    }
    probed.forEach(([i, p], k) => prepared.set(i, { ...p, probe: probes[k]! }));
    return prepared;
  }

  /**
   * Runs the probes of `tasks`: shell ones in one script (after `before`, an act's sections, and
   * with the facts script when asked), SQL ones in one query. Returns outputs in task order.
   */
  private async probe(
    tasks: Prepared[],
    options: { facts: boolean; before?: Section[]; timeoutMs?: number; purpose?: string; graceSeconds?: number },
  ): Promise<{ probes: ProbeOutput[]; facts?: Facts; before: SectionResult[] }> {
    const probes = tasks.map((p) => p.task.module.probe(p.args, this.context));
    const shell = probes.flatMap((probe, k) => (typeof probe === "string" ? [k] : []));
    const sql = probes.flatMap((probe, k) => (typeof probe === "string" ? [] : [k]));
    const outputs: ProbeOutput[] = [];
    const before = options.before ?? [];
    let facts: Facts | undefined;
    let beforeResults: SectionResult[] = [];
    if (before.length || shell.length || (options.facts && sql.length === 0)) {
      const head = options.facts ? [{ script: FACTS_SCRIPT }] : [];
      const results = await this.roundTrip(
        [...before, ...head, ...shell.map((k) => ({ script: probes[k] as string }))],
        options.timeoutMs ?? PROBE_TIMEOUT_MS,
        options.purpose ?? `the checks of play "${this.play.name}"`,
        options.graceSeconds ?? 0,
      );
      beforeResults = results.slice(0, before.length);
      if (options.facts) facts = parseFacts(results[before.length]!.stdout);
      // When an act failed, the probes after it did not run: they are not read.
      shell.forEach((k, n) => (outputs[k] = results[before.length + head.length + n]!));
      if (before.length) {
        // The act may have restarted the server under an open SQL connection: open a new one.
        void this.session.postgres?.then((pg) => pg.close()).catch(() => {});
        this.session.postgres = undefined;
      }
    }
    if (sql.length && beforeResults.every((r) => r.code === 0)) {
      const rows = await this.sqlProbes(sql.map((k) => (probes[k] as { sql: string }).sql));
      sql.forEach((k, n) => (outputs[k] = rows[n]!));
    }
    return { probes: outputs, ...(facts ? { facts } : {}), before: beforeResults };
  }

  /** SQL probes in one round trip. A server that cannot be reached is a state, not a failure. */
  private async sqlProbes(statements: string[]): Promise<ProbeOutput[]> {
    let rows: Record<string, unknown>[][];
    try {
      const postgres = await this.postgres();
      this.connection.commands++;
      rows = await postgres.queries(statements.join(";\n"));
    } catch (e) {
      if (!(e instanceof RemoteError)) throw e;
      this.session.postgres = undefined;
      return statements.map(() => ({ stdout: "", stderr: e.message, code: -1, error: e.message }));
    }
    return rows.map((r) => ({ stdout: "", stderr: "", code: 0, rows: r }));
  }

  private postgres(): Promise<HostPostgres> {
    const port = this.inventory.postgresql.port;
    this.session.postgres ??= HostPostgres.connect(this.connection, { port });
    return this.session.postgres;
  }

  /**
   * The act step: the commands of one task's decision, then the later probes of the play (the
   * act may have changed their state). Shell commands and the shell probes share a round trip.
   */
  private async act(p: Prepared, decision: Decision, later: Prepared[]): Promise<{ output: string; probes: ProbeOutput[] }> {
    const commands = this.commands(p, decision);
    const shell = commands.filter((c): c is Extract<Command, { script: string }> => "script" in c);
    const sql = commands.filter((c): c is Extract<Command, { sql: string }> => "sql" in c);
    let output = "";
    if (sql.length) {
      try {
        const postgres = await this.postgres();
        this.connection.commands++;
        await postgres.queries(sql.map((c) => c.sql).join(";\n"));
      } catch (e) {
        if (!(e instanceof RemoteError)) throw e;
        throw new HostFailure(this.failureEvent(p, new TaskFailure(e.message, { command: sql.map((c) => c.display).join("\n") })));
      }
    }
    const timeoutOf = (c: { timeoutMs?: number }) => c.timeoutMs ?? DEFAULT_ACT_TIMEOUT_MS;
    const { probes, before } = await this.probe(later, {
      facts: false,
      before: shell.map((c) => ({ script: c.script, stopOnFailure: true, timeoutSeconds: Math.ceil(timeoutOf(c) / 1000) })),
      timeoutMs: PROBE_TIMEOUT_MS + shell.reduce((sum, c) => sum + timeoutOf(c) + 5_000, 0),
      purpose: `the changes of task "${p.name}"`,
      graceSeconds: Math.ceil(Math.max(0, ...shell.filter((c) => c.letFinish).map(timeoutOf)) / 1000),
    }).catch((e: unknown) => {
      // The connection was lost or interrupted while the task acted: the failure names the task.
      if (e instanceof RemoteError) throw new HostFailure(this.failureEvent(p, e));
      throw e;
    });
    const failed = before.findIndex((r) => r.code !== 0);
    if (failed >= 0) {
      const c = shell[failed]!;
      const r = before[failed]!;
      const why =
        r.code === TIMED_OUT
          ? `a command of the task timed out after ${Math.ceil(timeoutOf(c) / 1000)} s and was killed`
          : `a command of the task failed (exit ${r.code})`;
      throw new HostFailure(this.failureEvent(p, new TaskFailure(why, { command: c.display ?? c.script, code: r.code, stderr: r.stderr })));
    }
    output = before.map((r) => r.stdout).join("");
    return { output, probes };
  }

  private async learnFacts(): Promise<void> {
    const [result] = await this.roundTrip([{ script: FACTS_SCRIPT }], PROBE_TIMEOUT_MS, "the host's facts");
    this.setFacts(parseFacts(result!.stdout));
  }

  private setFacts(facts: Facts): void {
    this.session.facts = facts;
    this.state.setFacts(this.host, this.session.host.address, facts);
  }

  /** Renders `when` and the arguments, validates them, and lets the module prepare them. */
  private prepare(task: Task): Prepared {
    const vars = this.variables();
    const name = renderName(task, vars);
    try {
      if (task.when !== undefined && !isTruthy(renderValue(task.when, vars, `${task.where}: when`))) {
        return { task, name, skip: `when: ${String(task.when)}` };
      }
      const rendered = renderValue(task.args, vars, `${task.where}: ${task.moduleName}`);
      const parsed = task.module.args.safeParse(rendered);
      if (!parsed.success) {
        throw new TaskFailure(`${task.where}: invalid ${task.moduleName} arguments after templating:\n${z.prettifyError(parsed.error)}`);
      }
      const args = task.module.prepare ? task.module.prepare(parsed.data, this.context) : parsed.data;
      return { task, name, args };
    } catch (e) {
      throw new HostFailure(this.failureEvent({ task, name }, e));
    }
  }

  private decide(p: Prepared): Decision {
    const probe = p.probe!;
    try {
      return p.task.module.decide(p.args, probe, this.context);
    } catch (e) {
      throw new HostFailure(this.failureEvent(p, e));
    }
  }

  private commands(p: Prepared, decision: Decision): Command[] {
    return (p.task.module as Module).act(p.args, decision, this.context);
  }

  private async roundTrip(sections: Section[], timeoutMs: number, purpose: string, graceSeconds = 0): Promise<SectionResult[]> {
    const nonce = newNonce();
    const result = await this.connection.run(buildBatch(sections, nonce), { timeoutMs, purpose, graceSeconds });
    const parsed = parseBatch(result, nonce, sections.length);
    if (result.code !== 0 && parsed.every((r) => r.code === 0 || !r.ran)) {
      // The batch itself failed (no shell, a syntax error, killed): not any one task's fault.
      throw new RemoteError(`host ${this.host}: the remote shell failed (exit ${result.code}) while running ${purpose}: ${tail(result.stderr)}`);
    }
    return parsed;
  }

  /** In a diff of a file whose wanted content holds a secret, the removed lines are masked whole (see redact.ts). */
  private maskRemovedLines(p: Prepared, changes: Change[]): Change[] {
    if (!changes.some((c) => c.diff) || !this.secretsSeen.mentionsSecret(p.args)) return changes;
    return changes.map((c) => (c.diff ? { ...c, diff: maskRemovedLines(c.diff) } : c));
  }

  private register(task: Task, value: Record<string, unknown>): void {
    if (task.register) this.session.registered[task.register] = value;
  }

  private variables(): Record<string, unknown> {
    return hostVariables(this.inventory, this.session.host, this.session.facts, this.session.registered, this.options.cluster);
  }

  private selectedByTags(task: Task): boolean {
    return !this.options.tags || task.module.readOnly === true || task.tags.some((t) => this.options.tags!.includes(t));
  }

  private elapsed(): number {
    return Math.round(performance.now() - this.started);
  }

  private failureEvent(p: Pick<Prepared, "task" | "name"> | undefined, e: unknown): Extract<RunEvent, { type: "failure" }> {
    if (!(e instanceof PgprovError || e instanceof TaskFailure)) throw e; // a bug: let it show its stack
    const detail = e instanceof TaskFailure ? e.detail : {};
    return {
      type: "failure",
      host: this.host,
      play: this.play.name,
      ...(p ? { task: p.name, where: p.task.where } : {}),
      message: e.message,
      ...(detail.command !== undefined ? { command: detail.command } : {}),
      ...(detail.code !== undefined ? { code: detail.code } : {}),
      ...(detail.stderr ? { stderr: tail(detail.stderr, 20) } : {}),
    };
  }
}

const readCache = new WeakMap<Task, Set<string>>();

/** The top-level variable names a task's templates read. */
function variablesRead(task: Task): Set<string> {
  let names = readCache.get(task);
  if (!names) {
    names = new Set<string>();
    const walk = (v: unknown) => {
      if (typeof v === "string") for (const path of templateVariables(v)) names!.add(path.split(".")[0]!);
      else if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === "object") Object.values(v).forEach(walk);
    };
    walk([task.args, task.when]);
    readCache.set(task, names);
  }
  return names;
}

function renderName(task: Task, vars: Record<string, unknown>): string {
  try {
    return String(renderValue(task.name, vars, `${task.where}: name`));
  } catch {
    return task.name;
  }
}

async function forEachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  const workers = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await fn(item);
  });
  await Promise.all(workers);
}

function tail(text: string, lines = 5): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}
