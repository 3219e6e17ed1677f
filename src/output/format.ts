/**
 * Text pieces shared by the plain and the tree renderers: a change line, a diff, a failure, the
 * recap table. A failure is several readable lines, never one escaped JSON string.
 */
import { ACTIONS, type PlannedChange } from "../engine/change.js";
import type { ClusterEvent } from "../cluster/events.js";
import type { HostRecap } from "../engine/events.js";
import { formatTable } from "./table.js";

export interface Style {
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  dim(s: string): string;
  bold(s: string): string;
}

const code = (open: number, close: number) => (s: string) => `\x1b[${open}m${s}\x1b[${close}m`;
export const COLOR: Style = { red: code(31, 39), green: code(32, 39), yellow: code(33, 39), dim: code(2, 22), bold: code(1, 22) };
export const PLAIN: Style = { red: (s) => s, green: (s) => s, yellow: (s) => s, dim: (s) => s, bold: (s) => s };

export function changeLine(change: PlannedChange, style: Style): string {
  const symbol = ACTIONS[change.action];
  const colored = change.action === "delete" || change.action === "stop" ? style.red(symbol) : change.action === "create" ? style.green(symbol) : style.yellow(symbol);
  return `${colored} ${change.summary}${change.destructive ? style.red(" (destructive)") : ""}`;
}

export function diffLines(diff: string, style: Style): string[] {
  return diff.split("\n").map((l) =>
    l.startsWith("+") && !l.startsWith("+++") ? style.green(l) : l.startsWith("-") && !l.startsWith("---") ? style.red(l) : l.startsWith("@@") ? style.dim(l) : l,
  );
}

export function failureLines(f: Extract<ClusterEvent, { type: "failure" }>, style: Style): string[] {
  const where = [f.play && `play "${f.play}"`, f.task && `task "${f.task}"`].filter(Boolean).join(", ");
  const lines = [style.red(style.bold(`FAILED on ${f.host}`)) + (where ? ` ${where}` : "") + (f.where ? style.dim(` (${f.where})`) : "")];
  for (const l of f.message.split("\n")) lines.push(`  ${l}`);
  if (f.command !== undefined) {
    const [first, ...rest] = f.command.split("\n");
    lines.push(`  command:   ${first}`, ...rest.map((l) => `             ${l}`));
  }
  if (f.code !== undefined) lines.push(`  exit code: ${f.code}`);
  if (f.stderr) lines.push("  stderr:", ...f.stderr.split("\n").map((l) => `    ${l}`));
  return lines;
}

export function warningLine(w: Extract<ClusterEvent, { type: "warning" }>, style: Style): string {
  const where = [w.host, w.task && `task "${w.task}"`].filter(Boolean).join(" ");
  return `${style.yellow(style.bold("WARNING"))}${where ? ` ${where}` : ""}: ${w.message}`;
}

export function recapLines(hosts: Record<string, HostRecap>, style: Style): string[] {
  const rows = [["host", "ok", "changed", "failed", "skipped", "round trips", "seconds"]];
  for (const [name, r] of Object.entries(hosts)) {
    rows.push([name, String(r.ok), String(r.changed), String(r.failed), String(r.skipped), String(r.commands), r.seconds.toFixed(2)]);
  }
  const [header, ...body] = formatTable(rows);
  return [style.bold("RECAP"), style.dim(header!), ...body.map((line, i) => {
    const r = Object.values(hosts)[i]!;
    return r.failed ? style.red(line) : r.changed ? style.yellow(line) : style.green(line);
  })];
}

export function taskStatusText(status: string, check: boolean, style: Style): string {
  if (status === "changed") return style.yellow(check ? "would change" : "changed");
  if (status === "failed") return style.red("failed");
  if (status === "skipped") return style.dim("skipped");
  return style.green("ok");
}

export function replicationLines(e: Extract<ClusterEvent, { type: "replication" }>, style: Style): string[] {
  const rows = e.standbys.map((s) => [
    s.upstream ? `${s.host} (from ${s.upstream})` : s.host,
    s.state === "streaming" ? style.green(s.state) : style.red(s.state),
    s.lagBytes !== undefined ? `replay lag ${formatBytes(s.lagBytes)}, ${s.lagSeconds!.toFixed(1)} s` : "",
    s.slot ? `slot ${s.slot}${s.slotActive ? " (active)" : " (inactive)"}` : "",
  ]);
  return [style.bold(`REPLICATION from ${e.primary}`), ...formatTable(rows).map((l) => `  ${l}`)];
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** A day-2 operation's step (with its time), or the plan its checks chose. Results are the CLI's to word. */
export function operationLines(e: Extract<ClusterEvent, { type: "step" | "plan" }>, style: Style): string[] {
  if (e.type === "step") return [`${style.dim(`[${e.seconds.toFixed(2).padStart(6)} s]`)} ${e.message}`];
  const facts = Object.entries(e.facts).map(([k, v]) => `${k.replace(/([a-z0-9])([A-Z])/g, "$1 $2").toLowerCase()}: ${Array.isArray(v) ? v.join("; ") : String(v)}`);
  const verb = e.dryRun ? "would" : "will";
  return [style.bold(`${e.operation} plan`), ...facts.map((f) => `  ${f}`), ...e.steps.map((s, i) => `${verb}: ${i + 1}. ${s}`)];
}

/** `-v`: the round trip that read a task's state, which it shares with the other checks read with it. */
export function probeNote(e: Extract<ClusterEvent, { type: "task" }>, style: Style): string {
  return e.probe ? style.dim(`  [checked in ${e.probe.ms} ms${e.probe.checks > 1 ? `, one round trip for ${e.probe.checks} checks` : ""}]`) : "";
}
