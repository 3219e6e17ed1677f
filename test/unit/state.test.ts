import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { RunState } from "../../src/engine/state.js";
import { Redactor } from "../../src/common/redact.js";
import { failureLines, PLAIN } from "../../src/output/format.js";

describe("handler bookkeeping", () => {
  it("remembers a notified handler across runs until it has run", () => {
    const path = join(mkdtempSync(join(tmpdir(), "pgprov-state-")), ".pgprov", "inv.state.json");
    const first = new RunState(path);
    first.addPendingHandler("cluster.yml#Configure", "pg1", "restart postgresql");
    first.addPendingHandler("cluster.yml#Configure", "pg1", "restart postgresql"); // notified twice, runs once
    first.addPendingHandler("cluster.yml#Configure", "pg2", "reload postgresql");
    expect(statSync(path).mode & 0o777).toBe(0o600);

    // A new process (the next run) reads what the failed one left.
    const next = new RunState(path);
    expect(next.pendingHandlers("cluster.yml#Configure", "pg1")).toEqual(["restart postgresql"]);
    next.handlerDone("cluster.yml#Configure", "pg1", "restart postgresql");
    expect(new RunState(path).pendingHandlers("cluster.yml#Configure", "pg1")).toEqual([]);
    expect(new RunState(path).pendingHandlers("cluster.yml#Configure", "pg2")).toEqual(["reload postgresql"]);
    next.handlerDone("cluster.yml#Configure", "pg2", "reload postgresql");
    expect(JSON.parse(readFileSync(path, "utf8")).pendingHandlers).toEqual({});
  });
});

describe("redaction and failure output", () => {
  it("masks secrets anywhere in an event, longest first", () => {
    const r = new Redactor(["s3cret", "s3cret-longer"]);
    expect(r.value({ a: ["password=s3cret-longer", { b: "x s3cret y" }], n: 1 })).toEqual({ a: ["password=********", { b: "x ******** y" }], n: 1 });
  });

  it("recognises a secret however a template escaped it", () => {
    const secret = String.raw`it's:a\secret`;
    const r = new Redactor([secret]);
    expect(r.mentionsSecret({ content: String.raw`password = 'it''s:a\secret'` })).toBe(true); // pgquote
    expect(r.mentionsSecret({ content: String.raw`*:5432:*:u:it's\:a\\secret` })).toBe(true); // pgpass
    expect(r.mentionsSecret({ content: JSON.stringify({ p: secret }) })).toBe(true); // json
    expect(r.mentionsSecret([{ nested: [secret] }])).toBe(true);
    expect(r.mentionsSecret({ content: "nothing here" })).toBe(false);
  });

  it("prints a failure on several readable lines", () => {
    expect(
      failureLines(
        { type: "failure", host: "pg2", play: "Configure", task: "start", where: "cluster.yml:9:7", message: "a command of the task failed (exit 1)", command: "systemctl start x", code: 1, stderr: "Job failed.\nSee journalctl" },
        PLAIN,
      ),
    ).toEqual([
      `FAILED on pg2 play "Configure", task "start" (cluster.yml:9:7)`,
      "  a command of the task failed (exit 1)",
      "  command:   systemctl start x",
      "  exit code: 1",
      "  stderr:",
      "    Job failed.",
      "    See journalctl",
    ]);
  });
});
