/**
 * The progress tree on a terminal (listr2): a play, under it its hosts working in parallel, each
 * showing the task it is on and, below, what changed. Failures and the recap print after the
 * tree, as plain lines, so that they stay readable and can be copied.
 *
 * A play that is already over when its turn to be drawn comes (every play of a converged run,
 * which reads them all in one round trip) prints at once as the finished tree would look: a live
 * tree costs a few frames of drawing per play, which made a no-op on a terminal seconds slower
 * than the same run piped. listr2 is loaded only when a play is still going.
 */
import type { ListrTaskWrapper } from "listr2";
import type { ClusterEvent } from "../cluster/events.js";
import type { HostRecap } from "../engine/events.js";
import { changeLine, COLOR, diffLines, failureLines, PLAIN, probeNote, recapLines, replicationLines, warningLine } from "./format.js";
import type { Renderer, RendererOptions } from "./renderer.js";

/** How long a play may take to finish before it is drawn live rather than printed when done. */
const LIVE_AFTER_MS = 150;

interface HostView {
  title: string;
  lines: string[];
  done: Promise<void>;
  /** Set when the host's play is over: failed or not. */
  failed?: boolean;
  finish: (failed: boolean) => void;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  task?: ListrTaskWrapper<any, any, any>;
}

/** `text` cut to fit in `columns` less one (a line that fills the row wraps on some terminals), marked with "…". */
export function fitted(text: string, columns: number | undefined): string {
  if (!columns || text.length < columns) return text;
  return `${text.slice(0, Math.max(0, columns - 2))}…`;
}

export class TreeRenderer implements Renderer {
  readonly showsProgress = true;
  private check = false;
  private readonly style;
  private shown: Promise<unknown> = Promise.resolve();
  private views = new Map<string, HostView>();
  private readonly failures: Extract<ClusterEvent, { type: "failure" }>[] = [];
  private readonly warnings: Extract<ClusterEvent, { type: "warning" }>[] = [];
  private recap?: Record<string, HostRecap>;
  private replication?: Extract<ClusterEvent, { type: "replication" }>;
  /** Plays not yet printed or drawn to their end: until then, the screen is theirs. */
  private unshown = 0;
  /** Progress after the last play (the wait for streaming), on one line redrawn in place. */
  private progressLine = false;

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
          let settle!: (failed: boolean) => void;
          const done = new Promise<void>((resolve, reject) => {
            settle = (failed) => (failed ? reject(new Error(`${host}: failed`)) : resolve());
          });
          done.catch(() => {});
          const view: HostView = { title: host, lines: [], done, finish: (failed) => ((view.failed = failed), settle(failed)) };
          views.set(host, view);
        }
        this.views = views;
        // One play's tree at a time: the next starts when this one is drawn to the end.
        if (this.progressLine) this.options.write("\r\x1b[2K");
        this.progressLine = false;
        this.unshown++;
        this.shown = this.shown.then(() => this.show(e.play, views)).finally(() => this.unshown--);
        break;
      }
      case "progress": {
        const text = `${e.task} · ${e.seconds} s${e.detail ? ` · ${e.detail}` : ""}`;
        const view = this.views.get(e.host);
        if (view?.task && view.failed === undefined) {
          view.task.title = `${e.host} ${s.dim(`· ${text}`)}`;
        } else if (this.unshown === 0) {
          // \x1b[2K clears the cursor's row only: a line that wrapped would leave its first rows behind.
          const line = fitted(`${e.host} · ${text}`, this.options.columns ?? process.stdout.columns);
          const host = line.slice(0, e.host.length);
          this.options.write(`\r\x1b[2K${host}${s.dim(line.slice(host.length))}`);
          this.progressLine = true;
        }
        break;
      }
      case "task": {
        const view = this.views.get(e.host);
        if (!view) break;
        this.setTitle(view, `${e.host} ${s.dim(`· ${e.handler ? "handler " : ""}${e.task}`)}`);
        if (e.status === "changed" || this.options.verbose) {
          view.lines.push(`${e.status === "changed" ? s.yellow(this.check ? "would change" : "changed") : e.status}: ${e.handler ? "handler " : ""}${e.task}${this.options.verbose ? probeNote(e, s) : ""}`);
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

  /** A play over by its turn (or within LIVE_AFTER_MS) prints as finished lines; else it is drawn live. */
  private async show(play: string, views: Map<string, HostView>): Promise<void> {
    const over = () => [...views.values()].every((v) => v.failed !== undefined);
    if (!over()) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...views.values()].map((v) => v.done)),
        new Promise((resolve) => (timer = setTimeout(resolve, LIVE_AFTER_MS))),
      ]);
      clearTimeout(timer);
    }
    if (over()) return this.printFinished(play, views);
    return this.drawLive(play, views);
  }

  private printFinished(play: string, views: Map<string, HostView>): void {
    const s = this.style;
    const mark = (failed: boolean | undefined) => (failed ? s.red("✖") : s.green("✔"));
    const out = [`${mark([...views.values()].some((v) => v.failed))} ${play}`];
    for (const view of views.values()) {
      out.push(`  ${mark(view.failed)} ${view.title}`);
      for (const line of view.lines) out.push(`    ${line}`);
    }
    this.options.write(`${out.join("\n")}\n`);
  }

  private async drawLive(play: string, views: Map<string, HostView>): Promise<void> {
    const { Listr } = await import("listr2");
    const list = new Listr(
      [
        {
          title: play,
          task: (_ctx, playTask) =>
            playTask.newListr(
              [...views.entries()].map(([host, view]) => ({
                title: host,
                rendererOptions: { outputBar: Infinity, persistentOutput: true },
                task: (_c: unknown, t: ListrTaskWrapper<unknown, never, never>) => {
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
    await list.run().catch(() => {});
  }

  private setTitle(view: HostView, title: string): void {
    view.title = title;
    if (view.task) view.task.title = title;
  }

  async finish(): Promise<void> {
    await this.shown;
    if (this.progressLine) this.options.write("\r\x1b[2K");
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
