/**
 * `npm run demo`: pgprov's main job on real hosts, on this machine. Boots 3 lab hosts (Debian
 * servers with systemd and sshd, each with its own address), then runs pgprov against them.
 * The hosts stay up afterwards so you can try pgprov yourself; `npm run lab -- down` removes them.
 */
import { spawnSync } from "node:child_process";
import { relative } from "node:path";
import { labUp } from "./lab.js";

const BIN = new URL("../../bin/pgprov.js", import.meta.url).pathname;

function step(title: string): void {
  process.stdout.write(`\n== ${title}\n`);
}

function pgprov(args: string[]): number {
  process.stdout.write(`$ pgprov ${args.join(" ")}\n`);
  return spawnSync(process.execPath, [BIN, ...args], { stdio: "inherit" }).status ?? 1;
}

step("booting 3 test hosts (the first run also builds a Debian image; later runs take seconds)");
const lab = await labUp({ hosts: 3, log: (l) => process.stdout.write(`   ${l}\n`) });
const inventory = relative(process.cwd(), lab.inventoryPath);
process.stdout.write(`hosts: ${lab.hosts.map((h) => `${h.name} ${h.address}`).join(", ")}; inventory: ${inventory}\n`);

step("reaching every host over SSH, host keys checked against known_hosts");
const code = pgprov(["ping", inventory]);

step("done");
process.stdout.write(`The hosts are still up: try \`./bin/pgprov.js ping ${inventory}\`. Remove them with \`npm run lab -- down\`.\n`);
process.exitCode = code;
