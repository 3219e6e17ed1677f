/** Issue 8, item 10: a run killed at any moment leaves no secret in a file on the host. */
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildBatch, newNonce, parseBatch } from "../../src/engine/batch.js";
import { aptArgs, aptModule } from "../../src/modules/apt.js";
import { file, fileArgs } from "../../src/modules/file.js";
import type { Command, Decision } from "../../src/engine/change.js";
import type { ModuleContext, SharedProbe } from "../../src/engine/module.js";

const context: ModuleContext = { playbookDir: "/", render: (t) => t };
const script = (c: Command | undefined): string => c?.script ?? "";
/** What apply runs for a decision. */
const commandsOf = (d: Decision): Command[] => d.changes.flatMap((c) => c.commands);

describe("issue 8 item 10: nothing secret is left in a file by a killed run", () => {
  const runBatch = (batch: string, env: NodeJS.ProcessEnv) => spawnSync("sh", ["-c", 'eval "$(cat)"'], { input: batch, encoding: "utf8", env });
  const fakeBin = (programs: Record<string, string>) => {
    const bin = mkdtempSync(join(tmpdir(), "pgprov-bin-"));
    for (const [name, body] of Object.entries(programs)) {
      writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
      chmodSync(join(bin, name), 0o755);
    }
    return bin;
  };

  it("issue 8 item 10: apt reads the proxy's password from a pipe, never a file or an argument", () => {
    const proxy = "http://pgprov:Proxy-Pw-4@10.0.0.1:3142";
    const tmp = mkdtempSync(join(tmpdir(), "pgprov-tmp-"));
    // A stand-in for apt-get: prints where its configuration came from, its arguments, and what
    // TMPDIR holds; and no package lists, so that it is asked to update first.
    const bin = fakeBin({
      "apt-get": `echo "args: $*"; while [ $# -gt 0 ]; do [ "$1" != -c ] || { echo "config from $2:"; cat "$2"; }; shift; done; /bin/ls -A "$TMPDIR"`,
      ls: ":",
    });
    const [cmd] = commandsOf(aptModule({ proxy }).decide(aptArgs.parse({ packages: ["cron"] }), { stdout: "", stderr: "", code: 0 }, context));
    expect(script(cmd)).not.toMatch(/mktemp|> *"?\$/);
    const nonce = newNonce();
    const r = runBatch(buildBatch([{ script: script(cmd), stopOnFailure: true, timeoutSeconds: 10 }], nonce), { ...process.env, PATH: `${bin}:${process.env.PATH}`, TMPDIR: tmp });
    const [section] = parseBatch(r, nonce, 1);
    expect(section).toMatchObject({ ran: true, code: 0 });
    const calls = section!.stdout.split("args: ").slice(1);
    expect(calls.length).toBe(2); // update, then install
    for (const call of calls) {
      expect(call.split("\n")[0]).not.toContain("Proxy-Pw-4");
      expect(call).toContain(`config from /dev/fd/4:\nAcquire::http::Proxy "${proxy}";\nAcquire::https::Proxy "${proxy}";\n`);
    }
    expect(section!.stdout).not.toMatch(/tmp\./);
    expect(readdirSync(tmp)).toEqual([]);
  });

  it("issue 8 item 10: the file module removes its temporary file when the shell is killed, and the next run removes one a SIGKILL left", () => {
    const dir = mkdtempSync(join(tmpdir(), "pgprov-file-"));
    const path = join(dir, "pgpass");
    const args = fileArgs.parse({ path, content: "*:5432:*:replicator:File-Pw-5\n", mode: "0600", diff: false });
    const probeHere = () => {
      const probe = file.probe(args, context) as SharedProbe<unknown>;
      const r = spawnSync("sh", ["-c", probe.reader.script([probe.item])], { encoding: "utf8" });
      return probe.reader.split({ stdout: r.stdout, stderr: r.stderr, code: r.status ?? -1 }, [probe.item])[0]!;
    };
    const leftovers = () => readdirSync(dir).filter((f) => f.startsWith(".pgprov."));

    // Killed (TERM, as timeout does) while the temporary file holds the content: mv stands in for a slow step.
    const write = commandsOf(file.decide(args, probeHere(), context));
    const slowMv = fakeBin({ mv: "sleep 3" });
    spawnSync("timeout", ["1", "sh", "-c", script(write[0])], { env: { ...process.env, PATH: `${slowMv}:${process.env.PATH}` } });
    expect(leftovers()).toEqual([]);

    // A SIGKILL leaves it: the next check finds it, plan shows it, and the act removes it.
    writeFileSync(join(dir, ".pgprov.pgpass.Ab12Cd"), "*:5432:*:replicator:File-Pw-5\n", { mode: 0o600 });
    writeFileSync(path, "*:5432:*:replicator:File-Pw-5\n", { mode: 0o600 });
    const decision = file.decide(args, probeHere(), context);
    expect(decision.changes.map((c) => c.summary)).toEqual([`remove the temporary file a killed run left beside ${path}`]);
    expect(spawnSync("sh", ["-c", script(commandsOf(decision)[0])]).status).toBe(0);
    expect(leftovers()).toEqual([]);
    expect(readFileSync(path, "utf8")).toContain("File-Pw-5");
    expect(file.decide(args, probeHere(), context).changes).toEqual([]);
    expect(existsSync(path)).toBe(true);
  });
});
