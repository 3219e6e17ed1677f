/**
 * --json: one event per line, exactly as the engine emitted it (already redacted), but progress
 * (a terminal's, once a second). The last line is the recap.
 */
import type { ClusterEvent } from "../cluster/events.js";
import type { Renderer } from "./renderer.js";

export class JsonRenderer implements Renderer {
  /** `writeJson` serialises one value as a line, masking it value by value (see cli/print.ts). */
  constructor(private readonly writeJson: (value: unknown) => void) {}

  event(e: ClusterEvent): void {
    if (e.type !== "progress") this.writeJson(e);
  }

  async finish(): Promise<void> {}
}
