/** How a run's events become output. One renderer per run, picked by the CLI. */
import type { ClusterEvent } from "../cluster/events.js";

export interface RendererOptions {
  /** Show file diffs of changes. */
  diff: boolean;
  /** Show every task, not only changes and failures. */
  verbose: boolean;
  color: boolean;
  write: (text: string) => void;
  /** The terminal's width, for a line redrawn in place (process.stdout.columns when not given). */
  columns?: number;
}

export interface Renderer {
  /** Whether it shows the progress of a long step as it runs (the tree on a terminal). */
  readonly showsProgress?: boolean;
  event(event: ClusterEvent): void;
  /** Called once after the run; waits until everything is on screen. */
  finish(): Promise<void>;
}
