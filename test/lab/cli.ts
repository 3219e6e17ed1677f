/**
 * npm run lab -- up [--hosts N] [--os bookworm|trixie]   boot test hosts; prints the inventory
 * npm run lab -- down                                    remove the lab completely
 * npm run lab -- status                                  hosts, and anything left over
 * npm run lab -- exec HOST 'COMMAND'                      run a command inside a host (not over SSH)
 *
 * PGPROV_LAB=N picks lab instance N (own bridge 10.231.N.0/24 and directory .lab/N); default 0.
 *
 * Progress goes to stderr, the inventory (for `up`) to stdout. Exit 1 with one line on error.
 */
import { existsSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { labAptProxyRunning, labDown, labExec, labHostsStatus, labLeftovers, labUp, readLab, type LabOs } from "./lab.js";

const USAGE = "usage: npm run lab -- up [--hosts N] [--os bookworm|trixie] | down | status | exec HOST COMMAND";

const t0 = Date.now();
const progress = (line: string) => process.stderr.write(`lab [${((Date.now() - t0) / 1000).toFixed(1)} s]: ${line}\n`);

async function up(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { hosts: { type: "string" }, os: { type: "string" } },
    strict: true,
  });
  const hosts = values.hosts === undefined ? undefined : Number(values.hosts);
  if (hosts !== undefined && !/^\d+$/.test(values.hosts!)) throw new Error(`--hosts wants a number, not ${values.hosts}`);
  const lab = await labUp({ hosts, os: values.os as LabOs | undefined, log: progress });
  process.stdout.write(readFileSync(lab.inventoryPath, "utf8"));
}

async function down(args: string[]): Promise<void> {
  parseArgs({ args, options: {}, strict: true });
  const started = Date.now();
  await labDown({ log: progress });
  progress(`lab down in ${((Date.now() - started) / 1000).toFixed(1)} s; nothing left`);
}

async function status(args: string[]): Promise<void> {
  parseArgs({ args, options: {}, strict: true });
  const lab = readLab();
  if (lab) {
    const inventory = existsSync(lab.inventoryPath) ? lab.inventoryPath : "not written (up did not finish)";
    console.log(`lab in ${lab.dir}: inventory ${inventory}; apt proxy ${lab.aptProxy} ${labAptProxyRunning() ? "running" : "NOT running"}`);
    for (const h of labHostsStatus()) {
      console.log(`  ${h.name}  ${h.address.padEnd(12)}  ${h.running ? `running (PID ${h.pid})` : "not running"}`);
    }
    return;
  }
  const left = await labLeftovers();
  if (left.length === 0) {
    console.log("no lab is up; nothing left over");
  } else {
    console.log("no lab is up, but these are left over (`npm run lab -- down` removes them):");
    for (const l of left) console.log(`  ${l}`);
  }
}

async function exec(args: string[]): Promise<void> {
  const [host, command, ...extra] = args;
  if (!host || !command || extra.length) throw new Error(`exec wants a host and one command (quoted); ${USAGE}`);
  const r = await labExec(host, command);
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  process.exitCode = r.code;
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case "up":
      return up(rest);
    case "down":
      return down(rest);
    case "status":
      return status(rest);
    case "exec":
      return exec(rest);
    default:
      throw new Error(command ? `unknown command ${command}; ${USAGE}` : USAGE);
  }
}

// `status | head` closing the pipe early is not an error.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(0);
  throw err;
});

main(process.argv.slice(2)).catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  // One line first (what failed), then detail (stderr tails) if there is any.
  const [first, ...detail] = message.split("\n");
  process.stderr.write(`lab: error: ${first}\n${detail.length ? detail.map((l) => `  ${l}`).join("\n") + "\n" : ""}`);
  process.exit(1);
});
