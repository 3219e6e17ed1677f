/**
 * One play on one host: read, decide, act, task by task, then the notified handlers. Reads come
 * in batches (see variables.ts, batchFrom), from what was read ahead when it still stands (see
 * run.ts), and an act's round trip re-reads the rest of its batch.
 */
import { PgprovError } from "../common/errors.js";
import { maskRemovedLines } from "../common/redact.js";
import type { Play, Task } from "../playbook/playbook.js";
import { render } from "../playbook/template.js";
import { TIMED_OUT } from "./batch.js";
import { type Change, type Command, type Decision, planned } from "./change.js";
import type { RunEvent, TaskStatus } from "./events.js";
import { FACTS_SCRIPT, parseFacts, sameFacts } from "./facts.js";
import { HostFailure, failureEvent } from "./failure.js";
import { type Module, type ModuleContext, type ProbeOutput, TaskFailure } from "./module.js";
import { PROBE_TIMEOUT_MS, probeKey, readProbes } from "./probes.js";
import type { HostSession, Run } from "./session.js";
import { batchFrom, type Prepared, prepareTask } from "./variables.js";

/** For a command whose module sets no bound of its own. */
const DEFAULT_ACT_TIMEOUT_MS = 120_000;
/** How often a long act reports how long it has taken so far. */
const PROGRESS_INTERVAL_MS = 1_000;

export class PlayOnHost {
  private readonly playKey: string;
  private readonly host: string;
  private readonly started = performance.now();

  constructor(
    private readonly run: Run,
    private readonly play: Play<Module>,
    private readonly index: number,
    private readonly session: HostSession,
  ) {
    this.playKey = `${run.playbook.file}#${play.name}`;
    this.host = session.target.name;
  }

  async perform(): Promise<void> {
    const io = this.session.io;
    const roundTripsBefore = io.roundTrips;
    const recapBefore = { ...this.session.recap };
    // The host's tally for this play, which renderers print without counting again.
    const hostEvent = (status: "ok" | "failed") => {
      const r = this.session.recap;
      this.run.emit({
        type: "host",
        play: this.play.name,
        host: this.host,
        status,
        ok: r.ok - recapBefore.ok,
        changed: r.changed - recapBefore.changed,
        skipped: r.skipped - recapBefore.skipped,
        commands: io.roundTrips - roundTripsBefore,
        ms: Math.round(performance.now() - this.started),
      });
    };
    try {
      const tasks = this.play.tasks.filter((t) => this.run.selectedByTags(t));
      // Handlers a failed earlier run notified but never ran: they run at the end of this play.
      const notified = new Set(this.run.state.pendingHandlers(this.playKey, this.host));
      await this.runTasks(tasks, false, notified);
      const handlers = this.play.handlers.filter((h) => notified.has(h.name));
      if (handlers.length) await this.runTasks(handlers, true, notified);
      hostEvent("ok");
    } catch (e) {
      const failure = e instanceof HostFailure ? e.event : this.failure(undefined, e);
      this.session.failed = true;
      this.session.recap.failed++;
      this.run.emit(failure);
      hostEvent("failed");
    }
  }

  private async runTasks(tasks: Task<Module>[], handlers: boolean, notified: Set<string>): Promise<void> {
    const check = this.run.options.check ?? false;
    let checked = new Map<number, Prepared>();
    for (let i = 0; i < tasks.length; i++) {
      if (!checked.has(i)) checked = await this.check(tasks, i);
      const p = checked.get(i)!;
      const started = performance.now();
      const report = (status: TaskStatus, decision?: Decision) => {
        this.session.recap[status === "failed" ? "failed" : status]++;
        this.run.emit({
          type: "task",
          play: this.play.name,
          host: this.host,
          task: p.name,
          handler: handlers,
          status,
          changes: planned(this.maskRemovedLines(p, decision?.changes ?? [])),
          ...(p.skip ?? decision?.reason ? { reason: p.skip ?? decision?.reason } : {}),
          ms: Math.round(performance.now() - started),
          ...(p.output?.roundTrip ? { probe: p.output.roundTrip } : {}),
        });
      };

      if (p.skip !== undefined) {
        report("skipped");
        this.register(p.task, { changed: false, skipped: true, stdout: "" });
        // Its `when` decided, as for a handler that ran: left pending, it would run in whichever
        // later run its `when` first holds, long after the change that notified it.
        if (handlers && !check) this.run.state.handlerDone(this.playKey, this.host, p.task.name);
        continue;
      }
      const decision = this.decide(p);
      let stdout = typeof decision.value === "string" ? decision.value : "";
      const changed = decision.changes.length > 0;
      if (changed) {
        for (const handler of p.task.notify) {
          notified.add(handler);
          // Remembered before the act: an act that fails half-way (or loses its connection) may
          // have changed the host all the same, and the next run, finding nothing to change,
          // would never notify again.
          if (!check) this.run.state.addPendingHandler(this.playKey, this.host, handler);
        }
      }
      if (changed && !check) {
        const later = [...checked.entries()].filter(([j, q]) => j > i && q.probe !== undefined);
        const { output, outputs } = await this.act(p, decision, later.map(([, q]) => q));
        stdout = output;
        later.forEach(([j, q], k) => checked.set(j, { ...q, output: outputs[k]! }));
      }
      report(changed ? "changed" : "ok", decision);
      for (const message of decision.warnings ?? []) this.run.emit({ type: "warning", host: this.host, play: this.play.name, task: p.name, message });
      if (decision.value !== undefined) this.run.results.record(p.task.module, this.host, decision.value);
      this.register(p.task, {
        changed,
        skipped: false,
        stdout,
        changes: decision.changes.map((c) => c.summary),
        ...(decision.value !== undefined && typeof decision.value !== "string" ? { value: decision.value } : {}),
      });
      if (handlers && !check) this.run.state.handlerDone(this.playKey, this.host, p.task.name);
    }
  }

  /**
   * The read step for the batch of tasks from `from` on: rendered with the real values, then
   * each probe taken from what was read ahead when it is there, the others read in one round
   * trip with the facts script (a host changed under its cached facts is rendered again).
   */
  private async check(tasks: Task<Module>[], from: number): Promise<Map<number, Prepared>> {
    const batch = batchFrom(tasks, from);
    if (!this.session.facts) await this.learnFacts();
    if (!this.session.readAheadSent) await this.readAhead(tasks, from);
    for (;;) {
      const prepared = new Map(batch.map((i) => [i, this.prepare(tasks[i]!)]));
      const ahead = this.run.readAheadOf(this.host);
      const missing = [...prepared.values()].filter((p) => p.probe !== undefined && !ahead?.has(probeKey(p.probe)));
      let outputs = new Map<string, ProbeOutput>();
      if (missing.length > 0) {
        const read = await readProbes(this.session.io, missing.map((p) => p.probe!), { facts: true, purpose: `the checks of play "${this.play.name}"` });
        if (read.facts && !sameFacts(this.session.facts, read.facts)) {
          // The host changed under the cached facts (an OS upgrade, another machine at the
          // address): render again with the real ones; nothing read ahead with the old ones stands.
          this.setFacts(read.facts);
          this.run.dropReadAhead();
          continue;
        }
        outputs = read.outputs;
      }
      for (const p of prepared.values()) {
        if (p.probe !== undefined) p.output = outputs.get(probeKey(p.probe)) ?? ahead!.get(probeKey(p.probe))!;
      }
      return prepared;
    }
  }

  /**
   * The host's first read: besides the current batch, the probes of every later task of this play
   * and of the later plays this host takes part in, rendered with the values registered so far and,
   * for the rest, those the last run registered. A task that cannot be rendered so is left out.
   */
  private async readAhead(tasks: Task<Module>[], from: number): Promise<void> {
    this.session.readAheadSent = true;
    const guesses = { ...this.run.state.registered(this.run.playbook.file, this.host), ...this.session.registered };
    const upcoming = [...tasks.slice(from), ...this.run.laterPlays(this.index, this.session).flatMap((p) => p.tasks.filter((t) => this.run.selectedByTags(t)))];
    const probes = upcoming.flatMap((task) => {
      try {
        return [this.prepare(task, guesses, false).probe].filter((p) => p !== undefined);
      } catch {
        return [];
      }
    });
    const mark = this.run.readAheadMark();
    const read = await readProbes(this.session.io, probes, { facts: true, purpose: `the checks of play "${this.play.name}" and, read ahead, of the plays after it` });
    if (read.facts && !sameFacts(this.session.facts, read.facts)) this.setFacts(read.facts);
    else this.run.setReadAhead(this.host, read.outputs, mark);
  }

  /**
   * The act step: the commands of one task's changes, then the probes of the later tasks of its
   * batch (the act may have changed their state), in one round trip. A command with `next` ends
   * a round trip of its own: what it printed gives the commands that follow (see Command.next).
   */
  private async act(p: Prepared, decision: Decision, later: Prepared[]): Promise<{ output: string; outputs: ProbeOutput[] }> {
    this.run.dropReadAhead();
    let pending = decision.changes.flatMap((c) => c.commands);
    let output = "";
    for (;;) {
      const cut = pending.findIndex((c) => c.next !== undefined);
      const commands = cut < 0 ? pending : pending.slice(0, cut + 1);
      const last = cut < 0;
      const read = await this.runCommands(p, commands, last ? later : []);
      output += read.before.map((r) => r.stdout).join("");
      if (last) return { output, outputs: later.map((q) => read.outputs.get(probeKey(q.probe!))!) };
      const step = commands[cut]!;
      let more: Command[];
      try {
        more = await step.next!(read.before[cut]!.stdout);
      } catch (e) {
        throw new HostFailure(this.failure(p, e));
      }
      pending = [...more, ...pending.slice(cut + 1)];
    }
  }

  /** One round trip: `commands`, stopping at the first that fails (which fails the task), then the probes of `later`. */
  private async runCommands(p: Prepared, commands: Command[], later: Prepared[]) {
    const timeoutOf = (c: { timeoutMs?: number }) => c.timeoutMs ?? DEFAULT_ACT_TIMEOUT_MS;
    const progress = this.progress(p, commands);
    const read = await readProbes(this.session.io, later.map((q) => q.probe!), {
      facts: false,
      before: commands.map((c) => ({ script: c.script, stopOnFailure: true, timeoutSeconds: Math.ceil(timeoutOf(c) / 1000) })),
      timeoutMs: PROBE_TIMEOUT_MS + commands.reduce((sum, c) => sum + timeoutOf(c) + 5_000, 0),
      purpose: `the changes of task "${p.name}"`,
      graceSeconds: Math.ceil(Math.max(0, ...commands.filter((c) => c.letFinish).map(timeoutOf)) / 1000),
      ...(progress.onStderr ? { onStderr: progress.onStderr } : {}),
    })
      .catch((e: unknown) => {
        // The connection was lost or interrupted while the task acted: the failure names the task.
        if (e instanceof PgprovError) throw new HostFailure(this.failure(p, e));
        throw e;
      })
      .finally(progress.stop);
    const failed = read.before.findIndex((r) => r.code !== 0);
    if (failed >= 0) {
      const c = commands[failed]!;
      const r = read.before[failed]!;
      const why =
        r.code === TIMED_OUT
          ? `a command of the task timed out after ${Math.ceil(timeoutOf(c) / 1000)} s and was killed`
          : `a command of the task failed (exit ${r.code})`;
      const stderr = c.progress ? r.stderr.split("\n").filter((l) => !c.progress!.line.test(l)).join("\n") : r.stderr;
      throw new HostFailure(this.failure(p, new TaskFailure(why, { command: c.display ?? c.script, code: r.code, stderr })));
    }
    return read;
  }

  /**
   * While an act's commands run: every second, how long so far, and the last progress a command
   * printed (Command.progress), for a terminal to show.
   */
  private progress(p: Prepared, commands: Command[]): { onStderr?: (text: string) => void; stop: () => void } {
    const started = performance.now();
    const shows = commands.find((c) => c.progress)?.progress;
    let partial = "";
    let detail: string | undefined;
    const timer = setInterval(() => {
      const seconds = Math.round((performance.now() - started) / 1000);
      this.run.emit({ type: "progress", host: this.host, task: p.name, seconds, ...(detail ? { detail } : {}) });
    }, PROGRESS_INTERVAL_MS);
    const stop = () => clearInterval(timer);
    if (!shows) return { stop };
    const onStderr = (text: string) => {
      // pg_basebackup ends a report with \r on a terminal, \n otherwise.
      const lines = (partial + text).split(/[\r\n]/);
      partial = lines.pop() ?? "";
      for (const line of lines) {
        const m = shows.line.exec(line);
        if (m) detail = shows.show(m);
      }
    };
    return { onStderr, stop };
  }

  private async learnFacts(): Promise<void> {
    const [result] = await this.session.io.run([{ script: FACTS_SCRIPT }], { timeoutMs: PROBE_TIMEOUT_MS, purpose: "the host's facts" });
    this.setFacts(parseFacts(result!.stdout));
  }

  private setFacts(facts: NonNullable<HostSession["facts"]>): void {
    this.session.facts = facts;
    this.run.state.setFacts(this.host, this.session.target.address, facts);
  }

  /** A task rendered with this host's variables (and `registered`); a bad task fails the host unless only reading ahead. */
  private prepare(task: Task<Module>, registered = this.session.registered, failHost = true): Prepared {
    const vars = { ...this.run.options.variables(this.session.target, this.session.facts, this.run.results), ...registered };
    const context: ModuleContext = { playbookDir: this.run.playbook.dir, render: (text, where) => render(text, vars, where), progress: this.run.options.progress === true };
    try {
      return prepareTask(task, vars, context);
    } catch (e) {
      if (!failHost) throw e;
      throw new HostFailure(this.failure({ task, name: task.name }, e));
    }
  }

  private decide(p: Prepared): Decision {
    const vars = { ...this.run.options.variables(this.session.target, this.session.facts, this.run.results), ...this.session.registered };
    const context: ModuleContext = { playbookDir: this.run.playbook.dir, render: (text, where) => render(text, vars, where), progress: this.run.options.progress === true };
    try {
      return p.task.module.decide(p.args, p.output!, context);
    } catch (e) {
      throw new HostFailure(this.failure(p, e));
    }
  }

  /** In a diff of a file whose wanted content holds a secret, the removed lines are masked whole (see redact.ts). */
  private maskRemovedLines(p: Prepared, changes: Change[]): Change[] {
    if (!changes.some((c) => c.diff) || !this.run.redactor.mentionsSecret(p.args)) return changes;
    return changes.map((c) => (c.diff ? { ...c, diff: maskRemovedLines(c.diff) } : c));
  }

  private register(task: Task<Module>, value: Record<string, unknown>): void {
    if (task.register) this.session.registered[task.register] = value;
  }

  private failure(p: Pick<Prepared, "task" | "name"> | undefined, e: unknown): Extract<RunEvent, { type: "failure" }> {
    return failureEvent(this.host, this.play.name, p, e);
  }
}
