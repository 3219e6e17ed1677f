/**
 * What a run reports, as it happens. Renderers (progress tree, plain lines, JSON lines) turn
 * these into output; tests read them through --json. Every event is redacted before it is emitted.
 * Events carry what changes and why, never the commands (they may hold file content).
 */
import type { PlannedChange } from "./change.js";

export type TaskStatus = "ok" | "changed" | "skipped" | "failed";

export interface HostRecap {
  ok: number;
  changed: number;
  failed: number;
  skipped: number;
  /** Remote commands (round trips) run on this host. */
  commands: number;
  seconds: number;
}

export type RunEvent =
  | { type: "run"; playbook: string; inventory: string; check: boolean; hosts: string[] }
  | { type: "play"; play: string; hosts: string[] }
  | {
      type: "task";
      play: string;
      host: string;
      task: string;
      /** A handler rather than a task. */
      handler: boolean;
      status: TaskStatus;
      changes: PlannedChange[];
      reason?: string;
      ms: number;
      /** The round trip that read its state (shared with other checks: one per host and play, or the read ahead). */
      probe?: { ms: number; checks: number };
    }
  | {
      type: "host";
      play: string;
      host: string;
      status: "ok" | "failed";
      /** This play's tasks on this host, by outcome. */
      ok: number;
      changed: number;
      skipped: number;
      commands: number;
      ms: number;
    }
  | {
      type: "failure";
      host: string;
      /** A failure shared by several hosts (`host` is then, say, "jump host pg1"): the hosts it failed. */
      hosts?: string[];
      play?: string;
      task?: string;
      /** Where the task is written, file:line:col. */
      where?: string;
      message: string;
      command?: string;
      code?: number;
      stderr?: string;
    }
  /** What a person should know and pgprov does not change (TLS turned off, a synchronous count every standby must meet, a database's encoding); host and task when a task found it. */
  | { type: "warning"; host?: string; play?: string; task?: string; message: string }
  | { type: "recap"; hosts: Record<string, HostRecap> }
  /**
   * A long step still going, about once a second: how long so far, and what it says of itself
   * (bytes copied). For a terminal: plain lines and --json leave it out.
   */
  | { type: "progress"; host: string; task: string; seconds: number; detail?: string };

export type Emit = (event: RunEvent) => void;
