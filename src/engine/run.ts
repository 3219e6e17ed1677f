/**
 * The engine: runs a playbook's plays in order over the targets, hosts in parallel, each host
 * through its HostIO.
 *
 * Per host and play it reads, decides, acts (see play.ts):
 * - read: one round trip carries the probe of every task that can be rendered now (a task that
 *   reads a value registered earlier in the same play waits for it);
 * - decide: each module's pure `decide` turns its probe output into changes with their commands;
 * - act (not under --check): those commands run in one round trip, and the probes of the play's
 *   later tasks ride along in the same script, since the act may have changed their state.
 *
 * Read ahead: a host's first read also carries the probes of every later task the run will give
 * it, rendered with the values the last run registered (guesses). While nothing has changed on
 * any host, a task whose probe, rendered with the real values, is one read ahead uses that output
 * instead of a round trip; any other task is read as usual. A converged run therefore costs one
 * round trip per host, and correctness never rests on a guess: a probe that differs is read again,
 * and the first change anywhere drops everything read ahead.
 */
import { PgprovError } from "../common/errors.js";
import type { Playbook } from "../playbook/playbook.js";
import type { HostRecap } from "./events.js";
import type { HostIO } from "./host-io.js";
import type { Module } from "./module.js";
import { PlayOnHost } from "./play.js";
import type { RunResults } from "./results.js";
import { type HostSession, Run, type RunOptions } from "./session.js";
import { playTargets } from "./targets.js";

export type { Reach, RunOptions, Variables } from "./session.js";

/** The caller emits the recap (`{ type: "recap", hosts }`) last, after anything it adds. */
export interface RunSummary {
  hosts: Record<string, HostRecap>;
  changed: boolean;
  failed: boolean;
  results: RunResults;
}

export async function runPlaybook(playbook: Playbook<Module>, options: RunOptions): Promise<RunSummary> {
  const started = performance.now();
  const run = new Run(playbook, options);
  const { emit, sessions } = run;
  const reached = options.reached.filter((r) => options.targets.some((t) => t.name === r.name));
  const shared = options.sharedFailures ?? [];
  emit({ type: "run", playbook: playbook.file, inventory: options.inventoryFile, check: options.check ?? false, hosts: reached.map((r) => r.name) });

  for (const r of reached) {
    const target = options.targets.find((t) => t.name === r.name)!;
    const recap: HostRecap = { ok: 0, changed: 0, failed: 0, skipped: 0, commands: 0, seconds: 0 };
    if ("io" in r) {
      sessions.set(r.name, {
        target,
        io: r.io,
        failed: false,
        registered: {},
        facts: run.state.facts(target.name, target.address),
        recap,
        readAheadSent: false,
      });
    } else {
      recap.failed++;
      sessions.set(r.name, { target, io: unreachable, failed: true, registered: {}, recap, readAheadSent: true });
      if (!shared.some((f) => f.hosts.includes(r.name))) emit({ type: "failure", host: r.name, message: r.error });
    }
  }
  for (const f of shared) {
    const hosts = f.hosts.filter((h) => reached.some((r) => r.name === h));
    if (hosts.length) emit({ type: "failure", host: f.host, message: f.message, hosts });
  }

  let stopped = false;
  for (const [index, play] of playbook.plays.entries()) {
    const targets = playTargets(play, options.targets, options)
      .map((t) => sessions.get(t.name))
      .filter((s): s is HostSession => s !== undefined && !s.failed);
    if (targets.length > 0) {
      emit({ type: "play", play: play.name, hosts: targets.map((s) => s.target.name) });
      await forEachLimited(targets, options.forks ?? targets.length, (session) => new PlayOnHost(run, play, index, session).perform());
    }
    if ([...sessions.values()].some((s) => s.failed)) break;
    // Also after a play no host was left for: a gate may have waited for it to judge.
    if (options.afterPlay) {
      try {
        await options.afterPlay(play, run.results, targets.map((s) => s.target.name));
      } catch (e) {
        if (!(e instanceof PgprovError)) throw e;
        emit({ type: "failure", host: "cluster", play: play.name, message: e.message });
        stopped = true;
        break;
      }
    }
  }

  const hosts: Record<string, HostRecap> = {};
  for (const s of sessions.values()) {
    hosts[s.target.name] = { ...s.recap, commands: s.io.roundTrips, seconds: round((performance.now() - started) / 1000) };
    // Guesses for the next run's read-ahead; known secrets masked (a masked guess just misses).
    if (!s.failed) run.state.setRegistered(playbook.file, s.target.name, { ...run.state.registered(playbook.file, s.target.name), ...run.redactor.value(s.registered) });
  }
  const all = Object.values(hosts);
  return { hosts, changed: all.some((h) => h.changed > 0), failed: stopped || all.some((h) => h.failed > 0), results: run.results };
}

/** The HostIO of a host that could not be reached: never called, since its session has failed. */
const unreachable: HostIO = {
  roundTrips: 0,
  run: () => Promise.reject(new Error("bug: a run on a host that was not reached")),
};

async function forEachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  const workers = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await fn(item);
  });
  await Promise.all(workers);
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}
