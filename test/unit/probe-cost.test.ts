/**
 * Issue 9 item 2: the probes of a converged host are cheap. The generated scripts run here for
 * real, with this machine's sh, against a temporary directory, with the processes they start
 * counted by wrappers early on PATH: the states they read must be the ones the modules expect,
 * at the cost of one process per batch where a process per item used to be.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, linkSync, lchownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { SharedProbe } from "../../src/engine/module.js";
import { aptArgs, aptModule } from "../../src/modules/apt.js";
import { fileReader, parseFileState, sha256 } from "../../src/modules/file.js";
import { dataDirectoryProbe, parseDataDirectory } from "../../src/postgres/data-directory.js";
import { psql } from "../../src/postgres/psql.js";

const work = mkdtempSync(join(tmpdir(), "pgprov-probe-cost-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Commands whose every start the wrappers count. */
const COUNTED = ["stat", "sha256sum", "dd", "base64", "readlink", "ls", "awk", "cat", "head", "find", "grep", "tr", "dpkg", "dpkg-query"];
const wrappers = join(work, "bin");
mkdirSync(wrappers);
for (const name of COUNTED) {
  const real = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).stdout.trim();
  const wrapper = join(wrappers, name);
  writeFileSync(wrapper, real ? `#!/bin/sh\necho ${name} >> "$PGPROV_COUNT"\nexec ${real} "$@"\n` : `#!/bin/sh\necho ${name} >> "$PGPROV_COUNT"\nexit 127\n`);
  chmodSync(wrapper, 0o755);
}

/**
 * Runs a script as a host runs a section (sh, the script on stdin); counts the commands it
 * started, by name, and the processes it forked (a subshell, a command substitution): in a PID
 * namespace of its own, the last process's number tells.
 */
function runCounted(script: string): { stdout: string; stderr: string; code: number; started: Record<string, number>; forks: number } {
  const log = join(work, `count-${Math.random().toString(36).slice(2)}`);
  writeFileSync(log, "");
  const counted = `${script}\npgprov_rc=$?; : & wait; echo "forks $(($! - 2))" >> "$PGPROV_COUNT"; exit $pgprov_rc\n`;
  const r = spawnSync("unshare", ["--pid", "--fork", "sh", "-s"], { input: counted, encoding: "utf8", cwd: work, env: { ...process.env, PATH: `${wrappers}:${process.env.PATH}`, PGPROV_COUNT: log } });
  const started: Record<string, number> = {};
  let forks = -1;
  for (const line of readFileSync(log, "utf8").split("\n").filter(Boolean)) {
    if (line.startsWith("forks ")) forks = Number(line.slice(6));
    else started[line] = (started[line] ?? 0) + 1;
  }
  return { stdout: r.stdout, stderr: r.stderr, code: r.status ?? -1, started, forks };
}

const item = (path: string, want = "", more: { leftovers?: boolean; diff?: boolean } = {}) => ({ path, want, leftovers: more.leftovers ?? want !== "", diff: more.diff ?? true });

describe("issue 9 item 2: cheaper checks", () => {
  const d = join(work, "etc");
  mkdirSync(d, { mode: 0o755 });
  writeFileSync(join(d, "a.conf"), "x");
  chmodSync(join(d, "a.conf"), 0o640);
  writeFileSync(join(d, "b b.conf"), "old\n");
  writeFileSync(join(d, "secret"), "old password\n");
  writeFileSync(join(d, "hard"), "h");
  linkSync(join(d, "hard"), join(d, "hard2"));
  writeFileSync(join(d, "back\\slash"), "x");
  mkdirSync(join(d, ".pgprov.a.conf.Xy12Ab"));
  symlinkSync("/etc/hostname", join(d, "link"));
  // A link on the way that someone other than root owns: never followed.
  symlinkSync(d, join(work, "planted"));
  lchownSync(join(work, "planted"), 65534, 65534);
  chownSync(d, 0, 0);

  it("issue 9 item 2: reads a converged file set with one stat and one sha256sum, and reads no content", () => {
    mkdirSync(join(d, "sub"));
    writeFileSync(join(d, "sub", "c.conf"), "c");
    const items = [item(d), item(join(d, "a.conf"), sha256("x")), item(join(d, "sub", "c.conf"), sha256("c"))];
    const r = runCounted(fileReader.script(items));
    expect(r.stderr).toBe("");
    expect(r.started).toEqual({ stat: 1, sha256sum: 1 });
    // The two command substitutions that start them, nothing for the checks of each path.
    expect(r.forks).toBe(2);
    const [dir, a] = fileReader.split(r, items).map(parseFileState);
    expect(dir).toMatchObject({ type: "directory", owner: "root", mode: "0755" });
    expect(a).toMatchObject({ type: "regular file", mode: "0640", links: 1, sha256: sha256("x"), leftover: true });
    expect(a!.content).toBeUndefined();
  });

  it("issue 9 item 2: reads back, with dd and without following a link, only the content that differs and may be shown", () => {
    const items = [
      item(join(d, "b b.conf"), sha256("new\n")),
      item(join(d, "secret"), sha256("new password\n"), { diff: false }),
      item(join(d, "none")),
      item(join(work, "no", "such", "dir")),
      item(join(d, "link"), sha256("x")),
      item(join(work, "planted", "a.conf"), sha256("x")),
      item(join(d, "back\\slash"), sha256("y")),
      item(join(d, "hard"), sha256("h")),
    ];
    const r = runCounted(fileReader.script(items));
    const [b, secret, none, deep, link, planted, back, hard] = fileReader.split(r, items).map(parseFileState);
    expect(b).toMatchObject({ type: "regular file", sha256: sha256("old\n") });
    expect(b!.content?.toString()).toBe("old\n");
    expect(secret).toMatchObject({ type: "regular file", sha256: sha256("old password\n") });
    expect(secret!.content).toBeUndefined();
    expect(none!.type).toBe("absent");
    expect(deep!.type).toBe("absent");
    expect(link).toMatchObject({ type: "symbolic link", owner: "root", target: "/etc/hostname" });
    expect(link!.sha256).toBeUndefined();
    expect(planted!.unsafe).toBe(`${join(work, "planted")} is a symbolic link to ${d} (owned by nobody) in ${work} (owned by root)`);
    // sha256sum would escape this name in its output: hashed on its own.
    expect(back).toMatchObject({ type: "regular file", sha256: sha256("x") });
    expect(back!.content?.toString()).toBe("x");
    // A file with another name: who may change its directory decides whether it may be touched.
    expect(hard).toMatchObject({ links: 2, sha256: sha256("h"), dirUid: "0", dirMode: 0o40755 });
    expect(r.started.stat).toBe(4); // the set, one for each of the two links, one for hard's directory
    expect(r.started.sha256sum).toBe(2);
    expect(r.started.dd).toBe(3); // back\slash's checksum; its content and b b.conf's, for their diffs
  });
});

describe("issue 9 item 2: dpkg's state without dpkg --audit", () => {
  const apt = aptModule();
  const probe = apt.probe(aptArgs.parse({ packages: ["dpkg"] }), { playbookDir: "/", render: (t) => t }) as SharedProbe<string[]>;
  /** The probe against a dpkg database of our own: its status file and its journal. */
  const dpkgProbe = (status: string, journal: string[] = []) => {
    const db = mkdtempSync(join(work, "dpkg-"));
    mkdirSync(join(db, "updates"));
    for (const name of journal) writeFileSync(join(db, "updates", name), "Package: x\n");
    writeFileSync(join(db, "status"), status);
    return runCounted(probe.reader.script([probe.item]).replaceAll("/var/lib/dpkg/", `${db}/`));
  };
  const stanza = (name: string, status: string) => `Package: ${name}\nStatus: ${status}\nVersion: 1\n\n`;
  const installed = stanza("cron", "install ok installed") + stanza("old", "deinstall ok config-files") + stanza("gone", "purge ok not-installed");

  it("issue 9 item 2: reads a clean dpkg with one dpkg-query and one grep", () => {
    const r = dpkgProbe(installed);
    expect(r.stdout).toMatch(/^pkg=dpkg installed \S+$/m);
    expect(r.stdout).not.toContain("dpkg_interrupted");
    expect(r.started).toEqual({ "dpkg-query": 1, grep: 1 });
  });

  it("issue 9 item 2: still finds what an interrupted dpkg left: its journal, or a package halfway", () => {
    expect(dpkgProbe(installed, ["0001"]).stdout).toContain("dpkg_interrupted=yes");
    for (const state of ["install ok half-installed", "install ok unpacked", "install ok half-configured", "install ok triggers-awaited", "install ok triggers-pending", "install reinstreq installed"]) {
      expect(dpkgProbe(installed + stanza("postgresql-15", state)).stdout, state).toContain("dpkg_interrupted=yes");
    }
  });
});

describe("issue 9 item 2: psql without a PAM session", () => {
  it("issue 9 item 2: starts psql as postgres with setpriv, not runuser (a PAM session, a forked child, and env)", () => {
    const sql = psql(5432);
    const probe = sql.probe("select 1");
    for (const script of [probe.reader.script(["select 1"]), sql.command(["select 1"], "x").script]) {
      expect(script).not.toMatch(/runuser|\benv\b/);
      expect(script).toContain(`PGCONNECT_TIMEOUT=10 PGOPTIONS='-c statement_timeout=15s -c synchronous_commit=local' setpriv --reuid=postgres --regid=postgres --init-groups -- "$psql" -XAtq -p 5432 `);
    }
  });
});

describe("issue 9 item 2: the data directory without awk", () => {
  it("issue 9 item 2: reads pg_control through pg_controldata alone, its lines parsed by the shell", () => {
    const bin = join(work, "pg-bin");
    const data = join(work, "pg-data");
    for (const dir of [bin, join(data, "global"), join(data, "base", "1"), join(data, "base", "4"), join(data, "base", "5"), join(data, "pg_wal"), join(data, "pg_tblspc")]) mkdirSync(dir, { recursive: true });
    writeFileSync(join(data, "PG_VERSION"), "15\n");
    writeFileSync(join(data, "global", "pg_control"), "");
    writeFileSync(join(data, "standby.signal"), "");
    // pg_controldata's own words (LC_ALL=C), the lines around the ones read included.
    const control = [
      "pg_control version number:            1300",
      "Catalog version number:               202209061",
      "Database system identifier:           7312829374750341235",
      "Database cluster state:               shut down in recovery",
      "pg_control last modified:             Fri Nov 27 12:38:01 2026",
      "Latest checkpoint location:           0/3000028",
      "Latest checkpoint's REDO location:    0/3000028",
      "Latest checkpoint's REDO WAL file:    000000020000000000000003",
      "Latest checkpoint's TimeLineID:       2",
      "Latest checkpoint's PrevTimeLineID:   2",
      "Latest checkpoint's NextXID:          0:735",
      "Latest checkpoint's NextOID:          24576",
      "Minimum recovery ending location:     0/3000100",
    ].join("\n");
    writeFileSync(join(bin, "control.txt"), `${control}\n`);
    writeFileSync(join(bin, "pg_controldata"), `#!/bin/sh\necho pg_controldata >> "$PGPROV_COUNT"\n[ "$1" = ${JSON.stringify(data)} ] || exit 2\nexec /bin/cat ${JSON.stringify(join(bin, "control.txt"))}\n`);
    chmodSync(join(bin, "pg_controldata"), 0o755);
    const r = runCounted(dataDirectoryProbe(data, bin));
    expect(r.stderr).toBe("");
    expect(parseDataDirectory(r.stdout)).toMatchObject({
      exists: true,
      majorVersion: 15,
      systemIdentifier: "7312829374750341235",
      state: "shut down in recovery",
      timeline: 2,
      nextOid: 24576,
      checkpointLsn: "0/3000028",
      standbySignal: true,
      userDatabases: 0,
      tablespaces: 0,
    });
    expect(r.started).toEqual({ pg_controldata: 1 });
  });
});
