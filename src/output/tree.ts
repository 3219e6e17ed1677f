/**
 * The progress tree on a terminal (listr2): a play, under it its hosts working in parallel, each
 * showing the task it is on and, below, what changed. Failures and the recap print after the
 * tree, as plain lines, so that they stay readable and can be copied.
 */
import { Listr, type ListrTaskWrapper } from "listr2";
import type { ClusterEvent } from "../cluster/events.js";
import type { HostRecap } from "../engine/events.js";
import { changeLine, COLOR, warningLine, diffLines, failureLines, PLAIN, recapLines, replicationLines } from "./format.js";
import type { Renderer, RendererOptions } from "./renderer.js";

interface HostView {
  title: string;
  lines: string[];
  done: Promise<void>;
  finish: (failed: boolean) => void;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  task?: ListrTaskWrapper<any, any, any>;
}

export class TreeRenderer implements Renderer {
  private check = false;
  private readonly style;
  private shown: Promise<unknown> = Promise.resolve();
  private views = new Map<string, HostView>();
  private readonly failures: Extract<ClusterEvent, { type: "failure" }>[] = [];
  private readonly warnings: Extract<ClusterEvent, { type: "warning" }>[] = [];
  private recap?: Record<string, HostRecap>;
  private replication?: Extract<ClusterEvent, { type: "replication" }>;

  constructor(private readonly options: RendererOptions) {
    this.style = options.color ? COLOR : PLAIN;
  }

  event(e: ClusterEvent): void {
    const s = this.style;
    switch (e.type) {
      case "run":
        this.check = e.check;
        break;
      case "play": {
        const views = new Map<string, HostView>();
        for (const host of e.hosts) {
          let finish!: (failed: boolean) => void;
          const done = new Promise<void>((resolve, reject) => {
            finish = (failed) => (failed ? reject(new Error(`${host}: failed`)) : resolve());
          });
          done.catch(() => {});
          views.set(host, { title: host, lines: [], done, finish });
        }
        this.views = views;
        const list = new Listr(
          [
            {
              title: `${e.play}`,
              task: (_ctx, playTask) =>
                playTask.newListr(
                  e.hosts.map((host) => ({
                    title: host,
                    rendererOptions: { outputBar: Infinity, persistentOutput: true },
                    task: (_c: unknown, t: ListrTaskWrapper<unknown, never, never>) => {
                      const view = views.get(host)!;
                      view.task = t;
                      t.title = view.title;
                      if (view.lines.length) t.output = view.lines.join("\n");
                      return view.done;
                    },
                  })),
                  { concurrent: true, exitOnError: false },
                ),
            },
          ],
          { exitOnError: false, registerSignalListeners: false, rendererOptions: { collapseSubtasks: false, collapseErrors: false } },
        );
        // One play's tree at a time: the next starts when this one is drawn to the end.
        this.shown = this.shown.then(() => list.run().catch(() => {}));
        break;
      }
      case "task": {
        const view = this.views.get(e.host);
        if (!view) break;
        this.setTitle(view, `${e.host} ${s.dim(`· ${e.handler ? "handler " : ""}${e.task}`)}`);
        if (e.status === "changed" || this.options.verbose) {
          view.lines.push(`${e.status === "changed" ? s.yellow(this.check ? "would change" : "changed") : e.status}: ${e.handler ? "handler " : ""}${e.task}`);
          for (const change of e.changes) {
            view.lines.push(`  ${changeLine(change, s)}`);
            if (this.options.diff && change.diff) view.lines.push(...diffLines(change.diff, s).map((l) => `    ${l}`));
          }
          if (view.task) view.task.output = view.lines.join("\n");
        }
        break;
      }
      case "host": {
        const view = this.views.get(e.host);
        if (!view) break;
        this.setTitle(view, `${e.host}  ${s.dim(`ok=${e.ok} changed=${e.changed} skipped=${e.skipped} · ${e.commands} round trip${e.commands === 1 ? "" : "s"} · ${(e.ms / 1000).toFixed(2)} s`)}`);
        view.finish(e.status === "failed");
        break;
      }
      case "warning":
        this.warnings.push(e);
        break;
      case "failure":
        this.failures.push(e);
        break;
      case "replication":
        this.replication = e;
        break;
      case "recap":
        this.recap = e.hosts;
        break;
    }
  }

  private setTitle(view: HostView, title: string): void {
    view.title = title;
    if (view.task) view.task.title = title;
  }

  async finish(): Promise<void> {
    await this.shown;
    const out = (line: string) => this.options.write(`${line}\n`);
    if (this.warnings.length) out("");
    for (const w of this.warnings) out(warningLine(w, this.style));
    for (const f of this.failures) {
      out("");
      for (const l of failureLines(f, this.style)) out(l);
    }
    if (this.replication) {
      out("");
      for (const l of replicationLines(this.replication, this.style)) out(l);
    }
    if (this.recap) {
      out("");
      for (const l of recapLines(this.recap, this.style)) out(l);
    }
  }
}
