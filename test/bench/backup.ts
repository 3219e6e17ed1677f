/**
 * `npm run bench:backup`: the time of a full backup and of a restore with pgBackRest (issue 11),
 * on lab hosts of this machine (instance PGPROV_LAB, default 0): 3 database hosts and a backup
 * host, bootstrapped by `pgprov apply`, the demo's table written, and pgbench's tables of scale
 * BENCH_SCALE (default 10, about 150 MB) beside it. Then, timed as the user waits for each
 * (process start to exit): `pgprov backup --type full`, and `pgprov restore --latest --yes`
 * (the primary restored, both standbys cloned again and streaming). BENCH_RUNS (default 1)
 * repeats both. Leaves the lab up (`npm run lab -- down` removes it).
 */
import { parseDocument } from "yaml";
import { readFileSync, writeFileSync } from "node:fs";
import { labExec, labUp } from "../lab/lab.js";
import { load, machine, median, seconds, timed } from "./measure.js";
import { join } from "node:path";

const BIN = join(import.meta.dirname, "../../bin/pgprov.js");
const SCALE = Number(process.env.BENCH_SCALE?.trim() || "10");
const RUNS = Number(process.env.BENCH_RUNS?.trim() || "1");
const log = (l: string) => process.stderr.write(`bench:backup [${seconds(performance.now())}]: ${l}\n`);

function pgprov(args: string[]) {
  const r = timed(process.execPath, [BIN, ...args], { env: { ...process.env, CI: "1" } });
  if (r.code !== 0) throw new Error(`pgprov ${args.join(" ")} failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

async function sql(host: string, query: string): Promise<string> {
  const r = await labExec(host, `runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -c ${JSON.stringify(query).replace(/\$/g, "\\$")}`, { timeoutMs: 1_800_000 });
  if (r.code !== 0) throw new Error(`${host}: ${query}: ${r.stderr}`);
  return r.stdout.trim();
}

const loadStart = load();
log("booting 4 lab hosts");
const lab = await labUp({ hosts: 4, log });
const inventory = lab.inventoryPath.replace(/inventory\.yml$/, "bench-backup.yml");
const doc = parseDocument(readFileSync(lab.inventoryPath, "utf8"));
doc.setIn(["hosts", "pg4", "role"], "backup");
doc.set("apt", { proxy: lab.aptProxy });
writeFileSync(inventory, doc.toString());
log("pgprov apply (the cluster, the stanza, the first full backup)");
const bootstrap = pgprov(["apply", inventory]);
log(`bootstrap: ${(bootstrap.ms / 1000).toFixed(1)} s`);

log(`the demo's data, and pgbench's tables of scale ${SCALE}`);
await sql("pg1", "CREATE TABLE IF NOT EXISTS demo (id serial PRIMARY KEY, said text); INSERT INTO demo (said) VALUES ('hello from pg1')");
const init = await labExec("pg1", `runuser -u postgres -- /usr/lib/postgresql/15/bin/pgbench -i -q -s ${SCALE} postgres`, { timeoutMs: 1_800_000 });
if (init.code !== 0) throw new Error(`pgbench -i: ${init.stderr}`);
const size = await sql("pg1", "select pg_size_pretty(pg_database_size('postgres'))");
await sql("pg1", "select pg_switch_wal()");

const backups: number[] = [];
const restores: number[] = [];
for (let i = 0; i < RUNS; i++) {
  const b = pgprov(["backup", inventory, "--type", "full"]);
  backups.push(b.ms / 1000);
  log(`full backup: ${(b.ms / 1000).toFixed(1)} s: ${b.stdout.trim().split("\n").at(-1)}`);
  const r = pgprov(["restore", inventory, "--latest", "--yes"]);
  restores.push(r.ms / 1000);
  log(`restore --latest and both standbys cloned again: ${(r.ms / 1000).toFixed(1)} s`);
  const rows = await sql("pg1", "select count(*) from pgbench_accounts");
  if (Number(rows) !== SCALE * 100_000) throw new Error(`after the restore pg1 holds ${rows} rows of pgbench_accounts, not ${SCALE * 100_000}`);
}

process.stdout.write(
  [
    `machine: ${machine()}`,
    `load average: ${loadStart} at the start, ${load()} at the end`,
    `data: the demo's table and pgbench scale ${SCALE} (database postgres: ${size})`,
    `pgprov backup --type full (from a standby, pgBackRest 2.45, on the backup host): median ${median(backups).toFixed(1)} s of ${backups.map((s) => s.toFixed(1)).join(", ")}`,
    `pgprov restore --latest --yes (the primary restored, 2 standbys cloned again, streaming): median ${median(restores).toFixed(1)} s of ${restores.map((s) => s.toFixed(1)).join(", ")}`,
    "",
  ].join("\n"),
);
