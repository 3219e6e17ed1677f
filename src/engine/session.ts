/** What one run shares among its plays and hosts: options, state, results, what was read ahead. */
import { Redactor } from "../common/redact.js";
import type { Play, Playbook } from "../playbook/playbook.js";
import type { Emit, HostRecap } from "./events.js";
import type { Facts } from "./facts.js";
import type { HostIO } from "./host-io.js";
import type { Module, ProbeOutput } from "./module.js";
import { RunResults } from "./results.js";
import { RunState } from "./state.js";
import { playTargets, type Selection, type Target } from "./targets.js";

/** A host of the run: its way in, or why there is none. */
export type Reach =
  | { name: string; io: HostIO }
  | { name: string; error: string };

/** A failure several hosts share (a jump host's, grouped by the caller): reported once, for all of them. */
export interface SharedFailure {
  /** What failed: `jump host pg1`. */
  host: string;
  message: string;
  /** The hosts it left unreached; each is in `reached` with an error, which is not reported apart. */
  hosts: string[];
}

/** The variables a host's templates see (the caller's), before the values tasks register. */
export type Variables = (target: Target, facts: Facts | undefined, results: RunResults) => Record<string, unknown>;

export interface RunOptions extends Selection {
  /** The file the targets come from, for the run event. */
  inventoryFile: string;
  targets: readonly Target[];
  /** The hosts the run touches (see hostsUsed), reached or not; the caller opens and closes them. */
  reached: readonly Reach[];
  /** Failures that stand for several unreached hosts, reported once each (see SharedFailure). */
  sharedFailures?: readonly SharedFailure[];
  variables: Variables;
  /** Where the run state lives (see state.ts). */
  statePath: string;
  /** Change nothing; report what would change. */
  check?: boolean;
  /** Only tasks with one of these tags (handlers always run when notified). */
  tags?: string[];
  /** Hosts worked on at once; default all. */
  forks?: number;
  /** Values to mask in every event. */
  secrets?: string[];
  /** A terminal shows acts' progress (the progress events): modules may report it (ModuleContext.progress). */
  progress?: boolean;
  /**
   * Called when every host has finished a play, with what the run has read so far. Throwing a
   * PgprovError stops the run there, before the next play changes anything.
   */
  afterPlay?: (play: Play<Module>, results: RunResults, hosts: string[]) => void | Promise<void>;
  emit: Emit;
}

export interface HostSession {
  target: Target;
  io: HostIO;
  failed: boolean;
  registered: Record<string, unknown>;
  facts?: Facts;
  recap: HostRecap;
  /** Whether this host's read-ahead batch was sent (once per run). */
  readAheadSent: boolean;
}

/** What every play on every host of one run shares. */
export class Run {
  readonly results = new RunResults();
  readonly state: RunState;
  readonly redactor: Redactor;
  readonly emit: Emit;
  readonly sessions = new Map<string, HostSession>();
  /** Probe outputs read ahead, per host, by probe key; dropped at the first change anywhere. */
  private readonly readAhead = new Map<string, Map<string, ProbeOutput>>();
  /** How many times something changed (or was about to): a read from before a change is stale. */
  private changes = 0;

  constructor(
    readonly playbook: Playbook<Module>,
    readonly options: RunOptions,
  ) {
    this.redactor = new Redactor(options.secrets);
    this.emit = (event) => options.emit(this.redactor.value(event));
    this.state = new RunState(options.statePath, options.check ?? false);
  }

  readAheadOf(host: string): ReadonlyMap<string, ProbeOutput> | undefined {
    return this.readAhead.get(host);
  }

  /** A mark to pass to setReadAhead, taken before the read is sent. */
  readAheadMark(): number {
    return this.changes;
  }

  /**
   * Keeps what a host read ahead, unless something changed on any host since `mark`: hosts act
   * in parallel, and a reply that arrives after another host's act may hold what was read before it.
   */
  setReadAhead(host: string, outputs: Map<string, ProbeOutput>, mark: number): void {
    if (mark === this.changes) this.readAhead.set(host, outputs);
  }

  /** Something changed (or is about to): nothing read before can stand for a probe now. */
  dropReadAhead(): void {
    this.changes++;
    this.readAhead.clear();
  }

  /** The plays after `index` this host takes part in, for reading ahead. */
  laterPlays(index: number, session: HostSession): Play<Module>[] {
    return this.playbook.plays.slice(index + 1).filter((p) => playTargets(p, this.options.targets, this.options).includes(session.target));
  }

  selectedByTags(task: { module: Module; tags: string[] }): boolean {
    const tags = this.options.tags;
    return !tags || task.module.readOnly === true || task.tags.some((t) => tags.includes(t));
  }
}

