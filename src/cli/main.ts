/**
 * The command line: parse, call the core, print. No logic of its own lives here.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import yargs, { type Argv } from "yargs";
import { hideBin } from "yargs/helpers";
import { PgprovError } from "../common/errors.js";
import { BUNDLED_PLAYBOOK, PACKAGE_ROOT } from "../common/paths.js";
// Each command's module is imported by its handler: `--version`, `--help` and usage errors load
// none of them (start-up is paid on every run; see scripts/build.mjs).
import type { ApplyArgs } from "./apply.js";
import { printError } from "./print.js";

const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")) as { version: string };

/** Options every command that talks to hosts understands. */
export function withConnectionOptions<T>(y: Argv<T>) {
  return y
    .positional("inventory", { type: "string", describe: "inventory file (YAML); default: $PGPROV_INVENTORY" })
    .option("accept-new-host-keys", {
      type: "boolean",
      default: false,
      describe: "record the key of a host not yet in known_hosts (a changed key is always refused)",
    })
    .option("json", { type: "boolean", default: false, describe: "print one JSON object per line (keys in snake_case)" });
}

/** The inventory named on the command line, else PGPROV_INVENTORY's. */
function inventoryOf(args: { inventory?: string | undefined }): string {
  const inventory = args.inventory || process.env.PGPROV_INVENTORY;
  if (!inventory) throw new PgprovError("no inventory: name one, or set PGPROV_INVENTORY");
  return inventory;
}

/** The playbook a command runs: apply's, and the one that reconfigures the cluster after an operation. */
function withPlaybookOption<T>(y: Argv<T>) {
  return y.option("playbook", { type: "string", default: BUNDLED_PLAYBOOK, defaultDescription: "the bundled playbooks/cluster.yml", describe: "playbook file" });
}

/** What switchover, failover and rejoin share: their playbook, and a dry run. */
function withOperationOptions<T>(y: Argv<T>) {
  return withPlaybookOption(withConnectionOptions(y)).option("dry-run", {
    type: "boolean",
    default: false,
    describe: "run every check and print the steps it would take, with the facts it chose them by; change nothing (exit 0: it would proceed; 1: it would refuse)",
  });
}

const YES = { type: "boolean", default: false, describe: "do not ask for confirmation (needed without a terminal)" } as const;

const APPLY_EXIT_CODES = "Exit codes: 0 done (or nothing to change under --check), 1 failed or refused, 2 changes pending (--check, plan), 130 interrupted (Ctrl-C).";
const OPERATION_EXIT_CODES = "Exit codes: 0 done (or, with --dry-run, it would proceed), 1 refused or failed (the message says why, and what was changed), 130 interrupted.";

function withRunOptions<T>(y: Argv<T>) {
  return withPlaybookOption(y)
    .option("diff", { type: "boolean", default: false, describe: "show the diff of every file that changes (secrets masked)" })
    .option("limit", { type: "string", describe: "only these hosts (comma-separated names or glob patterns: 'pg*', 'pg[23]')" })
    .option("tags", { type: "string", describe: "only tasks with one of these tags (comma-separated)" })
    .option("forks", { type: "number", describe: "hosts worked on at once (default: all)" })
    .option("verbose", { alias: "v", type: "boolean", default: false, describe: "show every task, not only changes, with the time its check took" })
    .option("reclone", { type: "string", describe: "standbys whose data may be replaced by a fresh clone (comma-separated); pgprov never does it unasked" })
    .option("yes", YES);
}

function operationArgs(args: { inventory?: string | undefined; playbook: string; json: boolean; "dry-run": boolean; "accept-new-host-keys": boolean }) {
  return { inventory: inventoryOf(args), playbook: args.playbook, json: args.json, dryRun: args["dry-run"], acceptNewHostKeys: args["accept-new-host-keys"] };
}

function list(value: string | undefined): string[] | undefined {
  return value === undefined ? undefined : value.split(",").map((s) => s.trim()).filter(Boolean);
}

function runArgs(
  args: {
    inventory?: string | undefined;
    playbook: string;
    diff: boolean;
    limit?: string;
    tags?: string;
    reclone?: string;
    forks?: number;
    json: boolean;
    verbose: boolean;
    yes: boolean;
    "accept-new-host-keys": boolean;
  },
  check: boolean,
  diff: boolean,
): ApplyArgs {
  if (args.forks !== undefined && !(Number.isInteger(args.forks) && args.forks > 0)) throw new PgprovError("--forks: expected a whole number above 0");
  return {
    inventory: inventoryOf(args),
    playbook: args.playbook,
    check,
    diff,
    ...(list(args.limit) ? { limit: list(args.limit)! } : {}),
    ...(list(args.tags) ? { tags: list(args.tags)! } : {}),
    ...(list(args.reclone) ? { reclone: list(args.reclone)! } : {}),
    ...(args.forks !== undefined ? { forks: args.forks } : {}),
    json: args.json,
    verbose: args.verbose,
    yes: args.yes,
    acceptNewHostKeys: args["accept-new-host-keys"],
  };
}

/** The exit code for a run ended by a signal, as shells report one. */
const SIGNAL_EXIT: Record<string, number> = { SIGHUP: 129, SIGINT: 130, SIGPIPE: 141, SIGTERM: 143 };
/** Bound on stopping after an interruption: the hosts end their own work when the connection goes. */
const INTERRUPT_BOUND_MS = 60_000;
let interrupting: Promise<string[]> | undefined;
let interruptedBy: string | undefined;
/** Set while `status --watch` runs: Ctrl-C (or SIGTERM, SIGHUP) ends it normally, with exit 0. */
let watchStop: AbortController | undefined;

/** The signal that ends a watch: the first interruption stops it instead of interrupting a run. */
function watching(): AbortSignal {
  watchStop = new AbortController();
  return watchStop.signal;
}

/**
 * Ctrl-C, SIGTERM, SIGHUP, or a closed stdout: nothing more starts, the remote work in progress is
 * ended on each host (which releases it), the run unwinds with each host's failure, and pgprov
 * exits non-zero with a line that says so. The same signal again quits at once.
 */
function interruptOn(signal: string): void {
  if (watchStop && !watchStop.signal.aborted && signal !== "SIGPIPE") {
    watchStop.abort();
    return;
  }
  if (interrupting) {
    process.exitCode = SIGNAL_EXIT[signal] ?? 1;
    process.exit();
  }
  const again = signal === "SIGINT" ? "Ctrl-C again quits at once" : `${signal} again quits at once`;
  writeErr(`pgprov: ${signal}: starting nothing more; ending the remote work in progress and releasing the hosts (${again})\n`);
  interruptedBy = signal;
  // Imported here, not at start: a run that never connected has nothing to end (and --version
  // must not pay for the SSH code). A module already loaded is the same instance.
  interrupting = import("../transport/ssh.js").then((ssh) => ssh.interruptAll(signal));
  setTimeout(() => {
    writeErr(`pgprov: interrupted by ${signal}; gave up waiting after ${INTERRUPT_BOUND_MS / 1000} s for the run to unwind\n`);
    process.exit(SIGNAL_EXIT[signal] ?? 1);
  }, INTERRUPT_BOUND_MS).unref();
}

/** stderr may be gone too (a closed terminal): a failed write must not crash the unwinding. */
function writeErr(text: string): void {
  try {
    printError(text);
  } catch {
    // nowhere to say it
  }
}

function handleInterruptions(): void {
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => interruptOn(signal));
  // Writing to a closed pipe (`pgprov apply | head`) is an 'error' event: without a handler, a
  // crash in the middle of the run.
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (!interrupting) interruptOn(e.code === "EPIPE" ? "SIGPIPE" : "SIGHUP");
  });
  process.stderr.on("error", () => {});
}

/** After an interruption: the exit code, and a line that says what became of the hosts. */
async function afterInterruption(): Promise<number | undefined> {
  const signal = interruptedBy;
  if (!signal || !interrupting) return undefined;
  const unconfirmed = await interrupting;
  writeErr(
    unconfirmed.length === 0
      ? `pgprov: interrupted by ${signal}: stopped before the end; the remote work in progress was ended and the hosts released. Rerun to finish\n`
      : `pgprov: interrupted by ${signal}: stopped before the end; on ${unconfirmed.join(", ")} the remote work in progress had not ended yet (a package install is let finish); the host ends it by itself, and the next run waits for it. Rerun to finish\n`,
  );
  return SIGNAL_EXIT[signal] ?? 1;
}

export async function main(argv: string[]): Promise<number> {
  handleInterruptions();
  const code = await runCli(argv);
  return (await afterInterruption()) ?? code;
}

async function runCli(argv: string[]): Promise<number> {
  let exitCode = 0;
  const cli = yargs(argv)
    .scriptName("pgprov")
    .usage("$0 <command> [options]\n\nTurn bare Debian servers into a PostgreSQL streaming-replication cluster over SSH.")
    .version(pkg.version)
    .command(
      "ping [inventory]",
      "connect to every host over SSH and report what pgprov finds there",
      (y) => withConnectionOptions(y).example("$0 ping inventory.yml", "OS, systemd state and round-trip time of each host").epilog("Exit codes: 0 every host reached, 1 otherwise."),
      async (args) => {
        const { pingCommand } = await import("./ping.js");
        exitCode = await pingCommand(inventoryOf(args), { acceptNewHostKeys: args["accept-new-host-keys"], json: args.json });
      },
    )
    .command(
      "apply [inventory]",
      "make the hosts match the playbook: check every task, change only what differs",
      (y) =>
        withRunOptions(withConnectionOptions(y))
          .option("check", { type: "boolean", default: false, describe: "change nothing; report what would change (exit 2 when something would)" })
          .option("streaming-timeout", { type: "number", default: 120, describe: "seconds to wait for every standby to stream, after the playbook" })
          .example("$0 apply inventory.yml", "bootstrap or repair the cluster")
          .example("$0 apply inventory.yml --check --limit 'pg*'", "what would change on the hosts whose names start with pg (exit 2 if anything)")
          .epilog(APPLY_EXIT_CODES),
      async (args) => {
        const timeout = args["streaming-timeout"];
        if (!(Number.isInteger(timeout) && timeout > 0)) throw new PgprovError("--streaming-timeout: expected a whole number of seconds above 0");
        const { applyCommand } = await import("./apply.js");
        exitCode = await applyCommand({ ...runArgs(args, args.check, args.diff), streamingTimeoutMs: timeout * 1000 });
      },
    )
    .command(
      "plan [inventory]",
      "show what apply would change, with diffs; changes nothing (apply --check --diff)",
      (y) => withRunOptions(withConnectionOptions(y)).example("$0 plan inventory.yml", "every change apply would make, with diffs").epilog(APPLY_EXIT_CODES),
      async (args) => {
        const { applyCommand } = await import("./apply.js");
        exitCode = await applyCommand(runArgs(args, true, true));
      },
    )
    .command(
      "status [inventory]",
      "show each server's role, timeline, LSN, lag, slot and streaming state, and the connection strings",
      (y) =>
        withConnectionOptions(y)
          .option("watch", { type: "number", describe: "redraw every SECONDS (default 2) until Ctrl-C, on one connection per host; plain lines when not on a terminal" })
          .example("$0 status inventory.yml --watch 1", "follow lag and LSNs live")
          .epilog("Exit codes: 0 every server answers in the role the inventory gives it and every standby streams; 1 otherwise (--watch: 0 when stopped by Ctrl-C)."),
      async (args) => {
        const watch = args.watch;
        if (watch !== undefined && !(watch > 0)) throw new PgprovError("--watch: expected a number of seconds above 0");
        const { statusCommand } = await import("./status.js");
        exitCode = await statusCommand(inventoryOf(args), {
          json: args.json,
          acceptNewHostKeys: args["accept-new-host-keys"],
          ...(watch !== undefined ? { watchSeconds: Number.isNaN(watch) ? 2 : watch, stop: watching() } : {}),
        });
      },
    )
    .command(
      "check [inventory]",
      "is the cluster healthy? one line per finding, Nagios exit codes; reads only, takes no lock",
      (y) =>
        withConnectionOptions(y)
          .example("$0 check inventory.yml", "first line: OK, WARNING, CRITICAL or UNKNOWN, with counts; then one line per finding")
          .epilog(
            "Thresholds: the inventory's `checks` (replay_lag, replay_lag_seconds, slot_retained_wal, disk_free_percent, tls_expiry_days, backup_age_hours).\n" +
              "Exit codes (Nagios): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (a host not reachable over SSH, or check could not run).",
          ),
      async (args) => {
        const { checkCommand } = await import("./check.js");
        exitCode = await checkCommand(inventoryOf(args), { json: args.json, acceptNewHostKeys: args["accept-new-host-keys"] });
      },
    )
    .command(
      "ca [inventory]",
      "write the cluster's CA certificate, which clients verify the servers with (sslrootcert)",
      (y) =>
        y
          .positional("inventory", { type: "string", describe: "inventory file (YAML); default: $PGPROV_INVENTORY" })
          .option("out", { type: "string", describe: "write it to this file instead of stdout (never over an existing one)" }),
      async (args) => {
        const { caCommand } = await import("./ca.js");
        exitCode = caCommand(inventoryOf(args), args.out);
      },
    )
    .command(
      "switchover [inventory]",
      "planned change of primary, losing no committed transaction; rewrites the inventory's roles",
      (y) =>
        withOperationOptions(y)
          .option("to", { type: "string", demandOption: true, describe: "the standby to promote" })
          .option("max-lag", { type: "string", default: "16MB", describe: "WAL the target may be behind when it starts: bytes, or with a unit (kB, MB, GB, TB)" })
          .example("$0 switchover inventory.yml --to pg2 --dry-run", "the checks, and the steps it would take")
          .example("$0 switchover inventory.yml --to pg2 --json | tail -n 1 | jq .write_window_seconds", "how long no server accepted writes")
          .epilog(OPERATION_EXIT_CODES),
      async (args) => {
        const { switchoverCommand } = await import("./operations.js");
        exitCode = await switchoverCommand({ ...operationArgs(args), to: args.to, maxLag: args["max-lag"] });
      },
    )
    .command(
      "failover [inventory]",
      "the primary is proven down: promote the standby with the most WAL (or --to), fence the old primary if reachable",
      (y) =>
        withOperationOptions(y)
          .option("to", { type: "string", describe: "the standby to promote (default: the one with the most WAL received)" })
          .option("force", { type: "boolean", default: false, describe: "fail over even though the primary is not proven down (where reachable, it is stopped and marked a standby)" })
          .option("yes", YES)
          .example("$0 failover inventory.yml --dry-run", "is the primary proven down, which standby would be promoted, what would be fenced")
          .example("$0 failover inventory.yml --yes --json", "from a script: no question, one JSON event per line")
          .epilog(OPERATION_EXIT_CODES),
      async (args) => {
        const { failoverCommand } = await import("./operations.js");
        exitCode = await failoverCommand({ ...operationArgs(args), ...(args.to ? { to: args.to } : {}), force: args.force, yes: args.yes });
      },
    )
    .command(
      "rejoin [inventory] [host]",
      "bring a former primary back as a standby of the current primary (pg_rewind)",
      (y) =>
        withOperationOptions(y)
          .positional("host", { type: "string", describe: "the former primary" })
          .option("reclone", { type: "boolean", default: false, describe: "replace its data with a clone of the primary instead of rewinding it (also where pg_rewind cannot work, or its history parted from the primary's)" })
          .option("discard-diverged", { type: "boolean", default: false, describe: "rewind it even though that undoes WAL it wrote after the primary's history left its timeline (transactions only it holds): save them first" })
          .option("yes", YES)
          .example("$0 rejoin inventory.yml pg1 --dry-run", "rewind, clone or only reconfigure, and why")
          .example("PGPROV_INVENTORY=inventory.yml $0 rejoin pg1", "the inventory from the environment")
          .epilog(OPERATION_EXIT_CODES),
      async (args) => {
        // With PGPROV_INVENTORY, `rejoin HOST`: the one name given is the host.
        const [inventory, host] = args.host === undefined && process.env.PGPROV_INVENTORY ? [undefined, args.inventory] : [args.inventory, args.host];
        if (!host) throw new PgprovError("rejoin: name the host to bring back (pgprov rejoin INVENTORY HOST)");
        const { rejoinCommand } = await import("./operations.js");
        exitCode = await rejoinCommand({ ...operationArgs({ ...args, inventory }), host, reclone: args.reclone, discardDiverged: args["discard-diverged"], yes: args.yes });
      },
    )
    .command(
      "backup [inventory]",
      "take a pgBackRest backup now, on the repository host (from a standby when one streams)",
      (y) =>
        withConnectionOptions(y)
          .option("type", { choices: ["full", "diff", "incr"] as const, default: "full" as const, describe: "pgBackRest's backup type" })
          .example("$0 backup inventory.yml --type diff", "a differential backup; ends with its label, size and duration")
          .epilog("Exit codes: 0 done, 1 failed."),
      async (args) => {
        const { backupCommand } = await import("./backup.js");
        exitCode = await backupCommand(inventoryOf(args), { type: args.type, json: args.json, acceptNewHostKeys: args["accept-new-host-keys"] });
      },
    )
    .command(
      "backups [inventory]",
      "list the repository's backups and the earliest and latest point a restore can reach",
      (y) => withConnectionOptions(y).example("$0 backups inventory.yml --json | jq .restorable", "the restorable range").epilog("Exit codes: 0 at least one backup, 1 none (or the repository could not be read)."),
      async (args) => {
        const { backupsCommand } = await import("./backup.js");
        exitCode = await backupsCommand(inventoryOf(args), { json: args.json, acceptNewHostKeys: args["accept-new-host-keys"] });
      },
    )
    .command(
      "restore [inventory]",
      "restore the primary from the backups (to a time, the latest WAL, or a backup), then clone every standby again",
      (y) =>
        withOperationOptions(y)
          .option("to", { type: "string", describe: "a point in time, ISO 8601 with its zone (2026-11-27T14:05:00Z)" })
          .option("latest", { type: "boolean", default: false, describe: "to the newest WAL in the archive" })
          .option("backup", { type: "string", describe: "to the end of this backup (its label, see pgprov backups)" })
          .option("yes", YES)
          .example("$0 restore inventory.yml --to 2026-11-27T14:05:00Z --dry-run", "what would be lost, and the steps")
          .example("$0 restore inventory.yml --latest --yes", "after losing the primary's data, from a script")
          .epilog(OPERATION_EXIT_CODES),
      async (args) => {
        const { restoreCommand } = await import("./operations.js");
        exitCode = await restoreCommand({ ...operationArgs(args), ...(args.to !== undefined ? { to: args.to } : {}), latest: args.latest, ...(args.backup !== undefined ? { backup: args.backup } : {}), yes: args.yes });
      },
    )
    .completion("completion", "print a completion script for bash or zsh: `source <(pgprov completion)`")
    .demandCommand(1, "Name a command; see pgprov --help.")
    .strict()
    .recommendCommands()
    .help()
    .alias("h", "help")
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .fail((message, error) => {
      if (error) throw error;
      printError(`pgprov: ${message}\nRun pgprov --help for usage.\n`);
      exitCode = 1;
      throw new UsageError(message);
    });
  try {
    await cli.parseAsync();
  } catch (e) {
    if (e instanceof UsageError) return 1;
    if (e instanceof PgprovError) {
      printError(`pgprov: ${e.message}\n`);
      return e.exitCode;
    }
    // A bug: its stack is shown, masked like everything else printed.
    printError(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return 1;
  }
  return exitCode;
}

class UsageError extends Error {}

process.exitCode = await main(hideBin(process.argv));
