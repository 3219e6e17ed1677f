/**
 * What a local user of a host (postgres, say) must not be able to make pgprov do as root, on a
 * bootstrapped bookworm primary and standby: follow a symbolic link planted in a directory that
 * user owns, and so change the owner or mode of a file or directory only root should control.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunEvent } from "../../src/engine/events.js";
import { type Lab, type LabHost, labDown, labExec, labUp } from "../lab/lab.js";
import { type CliResult, events, inventoryCopy, pgprov } from "./helpers.js";

let lab: Lab;
let inventory: string;
let pg1: LabHost;
const PASSFILE = "/var/lib/postgresql/.pgprov.pgpass";
const CONF_D = "/etc/postgresql/15/main/conf.d";

async function apply(): Promise<CliResult> {
  return pgprov(["apply", inventory, "--json"]);
}

function failures(r: CliResult): Extract<RunEvent, { type: "failure" }>[] {
  return events(r).filter((e): e is Extract<RunEvent, { type: "failure" }> => e.type === "failure");
}

/** Owner, group and mode of a path on pg1, not following a link. */
async function attributes(path: string): Promise<string> {
  return (await labExec(pg1, `stat -c '%U %G %a %F' ${path}`)).stdout.trim();
}

/** Runs `script` on pg1 as postgres, the user who owns the directories the attacks go through. */
async function asPostgres(script: string): Promise<void> {
  const r = await labExec(pg1, `runuser -u postgres -- sh -ec '${script}'`);
  expect(r.code, r.stderr).toBe(0);
}

beforeAll(async () => {
  lab = await labUp({ hosts: 2 });
  [pg1] = lab.hosts as [LabHost];
  inventory = inventoryCopy(lab, (doc) => doc.set("apt", { proxy: lab.aptProxy }));
  const r = await apply();
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
  // Directories only root controls, like /etc or /root: what the attacks aim at.
  await labExec(pg1, "install -d -o root -g root -m 0755 /opt/root-only /opt/root-only-conf");
});
afterAll(async () => {
  await labDown();
});

describe("host safety", () => {
  // The WAL archive directory this test planted its link at is gone from the playbook (issue 11:
  // without backups WAL is archived nowhere): the passfile in postgres's home is the same attack.
  it("issue 8 item 5: refuses a symlinked passfile that postgres planted, and leaves its root-owned target alone", async () => {
    await asPostgres(`mv ${PASSFILE} ${PASSFILE}.moved && ln -s /opt/root-only/pgpass ${PASSFILE}`);
    const r = await apply();
    expect(r.code).toBe(1);
    const [failure] = failures(r);
    expect(failure).toMatchObject({ host: "pg1", task: "replication passfile" });
    expect(failure!.message).toContain(`${PASSFILE} is a symbolic link to /opt/root-only/pgpass`);
    expect(await attributes("/opt/root-only")).toBe("root root 755 directory");
    expect((await labExec(pg1, "test ! -e /opt/root-only/pgpass")).code).toBe(0);

    await labExec(pg1, `rm ${PASSFILE} && mv ${PASSFILE}.moved ${PASSFILE}`);
    expect((await apply()).code).toBe(0);
  });

  it("issue 8 item 5: refuses a symlinked directory on the way to a file, in a directory postgres owns", async () => {
    // conf.d -> a root-only directory: pgprov would write a postgres-owned pgprov.conf there.
    await asPostgres(`mv ${CONF_D} ${CONF_D}.moved && ln -s /opt/root-only-conf ${CONF_D}`);
    const r = await apply();
    expect(r.code).toBe(1);
    const [failure] = failures(r);
    expect(failure).toMatchObject({ host: "pg1", task: "server settings" });
    expect(failure!.message).toContain(`${CONF_D} is a symbolic link to /opt/root-only-conf`);
    expect((await labExec(pg1, "ls -A /opt/root-only-conf")).stdout).toBe("");
    expect(await attributes("/opt/root-only-conf")).toBe("root root 755 directory");

    await labExec(pg1, `rm ${CONF_D} && mv ${CONF_D}.moved ${CONF_D}`);
    expect((await apply()).code).toBe(0);
  });
});
