/**
 * service: a systemd unit started or stopped, enabled or not. `restarted` and `reloaded` always
 * act: they belong in handlers, which run only when something they depend on changed.
 */
import { z } from "zod";
import { flag, unitName } from "../common/args.js";
import { type Change, noChange } from "../engine/change.js";
import { type Module, type ProbeReader, TaskFailure } from "../engine/module.js";
import { keyValues, shellQuote } from "../common/shell.js";

export const serviceArgs = z
  .strictObject({
    name: unitName,
    state: z.enum(["started", "stopped", "restarted", "reloaded"]).optional(),
    enabled: flag.optional(),
  })
  .refine((a) => a.state !== undefined || a.enabled !== undefined, "give state, enabled, or both");
export type ServiceArgs = z.output<typeof serviceArgs>;

const RUNNING = new Set(["active", "activating", "reloading"]);
const ENABLED = new Set(["enabled", "enabled-runtime", "static", "indirect", "generated", "alias"]);

const PROPERTIES = ["LoadState", "ActiveState", "UnitFileState", "NeedDaemonReload", "DropInPaths"];
const ON_DISK = "@@drop-ins on disk";
/** Where admins and pgprov write drop-ins: a unit's own directory, and its template's for an instance. */
const DROP_IN_ROOTS = ["/etc/systemd/system", "/run/systemd/system"];

/**
 * Every unit of a batch in one `systemctl show`: a block of properties per unit, in order, blank
 * lines between. Then, a line per unit, the drop-ins on disk (DropInsOnDisk): systemd 252 does
 * not see a drop-in in a directory made since its last daemon-reload (it reads only directories
 * it listed then), so NeedDaemonReload stays "no" for it, until something makes systemd list
 * them again (loading a unit that is not found does): the drop-in would not be in effect.
 */
export const unitReader: ProbeReader<string> = {
  name: "systemd-units",
  script: (units) =>
    [
      `systemctl show ${PROPERTIES.map((p) => `-p ${p}`).join(" ")} -- ${units.map(shellQuote).join(" ")}`,
      // systemctl's exit code is the probe's: a systemd that cannot answer fails the task.
      `rc=$?; echo; echo '${ON_DISK}'`,
      `for u in ${units.map(shellQuote).join(" ")}; do`,
      `  case $u in *.*) ;; *) u=$u.service ;; esac`,
      `  t=$u; case $u in *@*) t=\${u%%@*}@.\${u##*.} ;; esac`,
      `  for f in ${DROP_IN_ROOTS.map((r) => `${r}/"$u".d/*.conf`).join(" ")}; do if [ -f "$f" ]; then printf ' %s' "$f"; fi; done`,
      `  if [ "$t" != "$u" ]; then for f in ${DROP_IN_ROOTS.map((r) => `${r}/"$t".d/*.conf`).join(" ")}; do if [ -f "$f" ]; then printf ' %s' "$f"; fi; done; fi`,
      `  echo`,
      `done`,
      `exit $rc`,
    ].join("\n"),
  split(output, units) {
    const [shown = "", onDisk = ""] = output.stdout.split(`\n${ON_DISK}\n`);
    const blocks = shown.trim().split(/\n\s*\n/);
    const dropIns = onDisk.split("\n");
    if (blocks.length !== units.length || dropIns.length < units.length) {
      const stderr = `systemctl show gave ${blocks.length} blocks for ${units.length} units: ${output.stderr.trim()}`;
      return units.map(() => ({ stdout: "", stderr, code: output.code || 1 }));
    }
    return blocks.map((block, k) => ({ stdout: `${block}\nDropInsOnDisk=${dropIns[k]!.trim()}\n`, stderr: "", code: 0 }));
  },
};

/** A drop-in on disk that the loaded unit does not have: NeedDaemonReload misses it (see unitReader). */
function unloadedDropIn(s: Record<string, string>): string | undefined {
  if (s.LoadState !== "loaded") return undefined;
  const loaded = new Set((s.DropInPaths ?? "").split(" ").filter(Boolean));
  return (s.DropInsOnDisk ?? "").split(" ").find((f) => f && !loaded.has(f));
}

export const service: Module<ServiceArgs> = {
  name: "service",
  args: serviceArgs,

  probe: (args) => ({ reader: unitReader, item: args.name }),

  decide(args, state) {
    if (state.code !== 0) throw new TaskFailure(`cannot read the state of ${args.name}: ${state.stderr.trim()}`, { code: state.code, stderr: state.stderr });
    const s = keyValues(state.stdout);
    const unit = shellQuote(args.name);
    const active = s.ActiveState ?? "unknown";
    const unitFileState = s.UnitFileState ?? "";
    const changes: Change[] = [];
    // When systemctl fails, the unit's own last words are what a person needs: they follow on stderr.
    const add = (change: Omit<Change, "commands">, command: string) =>
      changes.push({
        ...change,
        commands: [
          {
            script: `${command} || { rc=$?; journalctl -u ${unit} -n 12 --no-pager -o cat >&2 || true; exit $rc; }`,
            display: command,
            timeoutMs: 180_000,
          },
        ],
      });
    // A unit that is not there yet (its package not installed) is not an error in check mode:
    // an earlier task may install it. In apply mode, systemctl then says exactly what is wrong.
    const note = s.LoadState === "not-found" ? " (unit not found yet)" : "";
    const newDropIn = unloadedDropIn(s);
    if (s.NeedDaemonReload === "yes") add({ action: "reload", summary: `reload systemd units (${args.name} changed on disk)` }, "systemctl daemon-reload");
    else if (newDropIn) add({ action: "reload", summary: `reload systemd units (${args.name}: ${newDropIn} not loaded yet)` }, "systemctl daemon-reload");
    if (args.enabled === true && !ENABLED.has(unitFileState)) add({ action: "update", summary: `enable ${args.name}${note}` }, `systemctl enable ${unit}`);
    if (args.enabled === false && ENABLED.has(unitFileState) && unitFileState !== "static")
      add({ action: "update", summary: `disable ${args.name}` }, `systemctl disable ${unit}`);
    if (args.state === "started" && !RUNNING.has(active)) add({ action: "start", summary: `start ${args.name} (${active})${note}` }, `systemctl start ${unit}`);
    // Still starting (a start job under way: a restart a killed run left, an ExecStartPre that
    // waits): what comes next needs it up, and systemctl start joins that job and waits for it.
    if (args.state === "started" && active === "activating") add({ action: "start", summary: `wait for ${args.name} to finish starting (activating)` }, `systemctl start ${unit}`);
    if (args.state === "stopped" && RUNNING.has(active)) add({ action: "stop", summary: `stop ${args.name}` }, `systemctl stop ${unit}`);
    if (args.state === "restarted") add({ action: "restart", summary: `restart ${args.name}` }, `systemctl restart ${unit}`);
    // A unit that does not run reads its configuration when it starts: nothing to reload.
    if (args.state === "reloaded" && RUNNING.has(active)) add({ action: "reload", summary: `reload ${args.name}` }, `systemctl reload ${unit}`);
    if (changes.length === 0) {
      const why = args.state === "reloaded" ? ", so there is nothing to reload" : "";
      return noChange(`${args.name} is ${active}${args.enabled !== undefined ? `, ${unitFileState}` : ""}${why}`);
    }
    return { changes };
  },
};
