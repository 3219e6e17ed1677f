/**
 * `npm run demo`: pgprov's main job on real hosts, on this machine. Boots 3 bare Debian servers
 * (systemd, sshd, each with its own address), makes them a PostgreSQL primary with two streaming
 * hot standbys, writes a row on the primary and reads it on a standby, shows `pgprov status`,
 * and reruns apply to show that a healthy cluster changes nothing (in about a second on an idle machine).
 * The hosts stay up afterwards so you can try pgprov yourself; `npm run lab -- down` removes them.
 */
import { spawnSync } from "node:child_process";
import { relative } from "node:path";
import { labExec, labUp } from "./lab.js";

const BIN = new URL("../../bin/pgprov.js", import.meta.url).pathname;

function step(title: string): void {
  process.stdout.write(`\n== ${title}\n`);
}

function pgprov(args: string[]): number {
  process.stdout.write(`$ pgprov ${args.join(" ")}\n`);
  const started = performance.now();
  const code = spawnSync(process.execPath, [BIN, ...args], { stdio: "inherit", env: { ...process.env, CI: "1" } }).status ?? 1;
  process.stdout.write(`(exit ${code}, ${((performance.now() - started) / 1000).toFixed(1)} s)\n`);
  return code;
}

async function sql(host: string, query: string): Promise<string> {
  process.stdout.write(`${host}=# ${query}\n`);
  const r = await labExec(host, `runuser -u postgres -- psql -X -v ON_ERROR_STOP=1 -c ${JSON.stringify(query).replace(/\$/g, "\\$")}`);
  const out = (r.stdout + r.stderr).trimEnd();
  process.stdout.write(`${out}\n`);
  return out;
}

function fail(message: string): never {
  process.stderr.write(`demo: ${message}\n`);
  process.exit(1);
}

step("booting 3 bare Debian test hosts (the first run also builds an image; later runs take seconds)");
const lab = await labUp({ hosts: 3, log: (l) => process.stdout.write(`   ${l}\n`) });
const inventory = relative(process.cwd(), lab.inventoryPath);
process.stdout.write(`hosts: ${lab.hosts.map((h) => `${h.name} ${h.address}`).join(", ")}; inventory: ${inventory}\n`);

step("pgprov apply: PostgreSQL installed and configured, the standbys cloned and streaming");
if (pgprov(["apply", inventory]) !== 0) fail("apply failed");

step("a row written on the primary is read on a standby, which refuses writes");
await sql("pg1", "CREATE TABLE IF NOT EXISTS demo (id serial PRIMARY KEY, said text); INSERT INTO demo (said) VALUES ('hello from pg1')");
let seen = "";
for (let i = 0; i < 50 && !seen.includes("hello from pg1"); i++) {
  seen = (await labExec("pg2", "runuser -u postgres -- psql -XAt -c 'SELECT said FROM demo ORDER BY id DESC LIMIT 1'")).stdout;
  if (!seen.includes("hello from pg1")) await new Promise((r) => setTimeout(r, 200));
}
await sql("pg2", "SELECT said FROM demo ORDER BY id DESC LIMIT 1");
if (!seen.includes("hello from pg1")) fail("the row did not reach pg2");
await sql("pg2", "INSERT INTO demo (said) VALUES ('a write on a standby')");

step("pgprov status");
pgprov(["status", inventory]);

step("pgprov apply again: a healthy cluster, nothing to change");
if (pgprov(["apply", inventory]) !== 0) fail("the rerun failed");

step("done");
process.stdout.write(`The hosts are still up: try \`./bin/pgprov.js plan ${inventory}\`. Remove them with \`npm run lab -- down\`.\n`);
