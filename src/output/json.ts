/** --json: one event per line, exactly as the engine emitted it (already redacted). The last line is the recap. */
import type { ClusterEvent } from "../cluster/events.js";
import type { Renderer, RendererOptions } from "./renderer.js";

export class JsonRenderer implements Renderer {
  constructor(private readonly options: Pick<RendererOptions, "write">) {}

  event(e: ClusterEvent): void {
    this.options.write(`${JSON.stringify(e)}\n`);
  }

  async finish(): Promise<void> {}
}
