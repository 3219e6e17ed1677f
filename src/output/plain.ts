/** Plain lines, for logs and CI: no cursor movement, every line final when printed. */
import type { ClusterEvent } from "../cluster/events.js";
import { changeLine, COLOR, diffLines, failureLines, operationLines, PLAIN, probeNote, recapLines, replicationLines, taskStatusText, warningLine } from "./format.js";
import type { Renderer, RendererOptions } from "./renderer.js";

export class PlainRenderer implements Renderer {
  private check = false;
  private readonly style;

  constructor(private readonly options: RendererOptions) {
    this.style = options.color ? COLOR : PLAIN;
  }

  event(e: ClusterEvent): void {
    const out = (line: string) => this.options.write(`${line}\n`);
    const s = this.style;
    switch (e.type) {
      case "run":
        this.check = e.check;
        out(s.dim(`${e.check ? "checking" : "applying"} ${e.playbook} on ${e.hosts.join(", ")}`));
        break;
      case "play":
        out(`\n${s.bold(`PLAY ${e.play}`)} ${s.dim(`[${e.hosts.join(", ")}]`)}`);
        break;
      case "task": {
        if (e.status === "changed" || this.options.verbose) {
          const label = e.handler ? `handler ${e.task}` : e.task;
          out(`  ${e.host}  ${taskStatusText(e.status, this.check, s)}  ${label}${e.reason && e.status !== "changed" ? s.dim(`  (${e.reason})`) : ""}${this.options.verbose ? probeNote(e, s) : ""}`);
          for (const change of e.changes) {
            out(`      ${changeLine(change, s)}`);
            if (this.options.diff && change.diff) for (const l of diffLines(change.diff, s)) out(`        ${l}`);
          }
        }
        break;
      }
      case "host": {
        const status = e.status === "failed" ? s.red("failed") : e.changed ? s.yellow(this.check ? "would change" : "changed") : s.green("ok");
        out(`  ${e.host}  ${status}  ${s.dim(`ok=${e.ok} changed=${e.changed} skipped=${e.skipped}  ${e.commands} round trip${e.commands === 1 ? "" : "s"}, ${(e.ms / 1000).toFixed(2)} s`)}`);
        break;
      }
      case "warning":
        out(warningLine(e, s));
        break;
      case "failure":
        out("");
        for (const l of failureLines(e, s)) out(l);
        break;
      case "replication":
        out("");
        for (const l of replicationLines(e, s)) out(l);
        break;
      case "recap":
        out("");
        for (const l of recapLines(e.hosts, s)) out(l);
        break;
      case "step":
      case "plan":
        for (const l of operationLines(e, s)) out(l);
        break;
    }
  }

  async finish(): Promise<void> {}
}
