import { describe, expect, it } from "vitest";
import { aptArgs, aptModule } from "../../src/modules/apt.js";
import { command, commandArgs } from "../../src/modules/command.js";
import { file, fileArgs, fileReader, sha256 } from "../../src/modules/file.js";
import type { Command, Decision } from "../../src/engine/change.js";
import type { ModuleContext, ProbeOutput, SharedProbe } from "../../src/engine/module.js";
import { TaskFailure } from "../../src/engine/module.js";
import { service, serviceArgs, unitReader } from "../../src/modules/service.js";
import { psql, rowsOf } from "../../src/postgres/psql.js";

const script = (c: Command | undefined): string => c?.script ?? "";
/** Every command of a decision, in order: what apply runs. */
const commandsOf = (d: Decision): Command[] => d.changes.flatMap((c) => c.commands);
/** The plan without its commands. */
const plannedOf = (d: Decision) => d.changes.map(({ commands: _c, ...change }) => change);
const context: ModuleContext = { playbookDir: "/", render: (t) => t };
const out = (stdout: string, code = 0, stderr = ""): ProbeOutput => ({ stdout, stderr, code });

describe("apt", () => {
  const apt = aptModule();
  const args = aptArgs.parse({ packages: ["cron", "postgresql-15"] });
  it("is ok when every package is installed", () => {
    const d = apt.decide(args, out("pkg=cron installed 3.0\npkg=postgresql-15 installed 15.8-0+deb12u1\nlists=1\nnow=2\n"), context);
    expect(d.changes).toEqual([]);
    expect(d.reason).toContain("postgresql-15 15.8-0+deb12u1");
  });
  it("installs only what is missing, and counts config-files as missing", () => {
    const d = apt.decide(args, out("pkg=cron config-files 3.0\n"), context);
    expect(plannedOf(d)).toEqual([{ action: "create", summary: "install cron postgresql-15" }]);
    const [cmd] = commandsOf(aptModule({ proxy: "http://10.0.0.1:3142" }).decide(args, out("pkg=cron config-files 3.0\n"), context));
    // The proxy goes through a config file apt reads from a pipe (it may carry a password), not apt's arguments.
    expect(script(cmd)).not.toContain("http://10.0.0.1:3142");
    expect(script(cmd)).toContain(Buffer.from('Acquire::http::Proxy "http://10.0.0.1:3142";\n').toString("base64").slice(0, 40));
    expect(script(cmd)).toMatch(/apt-get -q -y -c \/dev\/fd\/4 .*\n[\s\S]*pgprov_apt_get install --no-install-recommends cron postgresql-15/);
  });
  it("removes only what is there", () => {
    const d = apt.decide(aptArgs.parse({ packages: "cron", state: "absent" }), out("pkg=cron installed 3.0\n"), context);
    expect(plannedOf(d)).toEqual([{ action: "delete", summary: "remove cron" }]);
  });
  it("issue 8 item 13: finishes what an interrupted dpkg left before installing, even when every package looks installed", () => {
    const d = apt.decide(args, out("pkg=cron installed 3.0\npkg=postgresql-15 half-configured 15.8\ndpkg_interrupted=yes\n"), context);
    expect(d.changes.map((c) => c.summary)).toEqual(["finish the package changes an interrupted run left (dpkg --configure -a)", "install postgresql-15"]);
    // One command, the repair first, carried by the first change.
    expect(d.changes.map((c) => c.commands.length)).toEqual([1, 0]);
    const s = script(commandsOf(d)[0]);
    expect(s.indexOf("dpkg --force-confdef --force-confold --configure -a")).toBeGreaterThan(-1);
    expect(s.indexOf("dpkg --force-confdef --force-confold --configure -a")).toBeLessThan(s.indexOf("install --no-install-recommends"));
    const repairOnly = apt.decide(args, out("pkg=cron installed 3.0\npkg=postgresql-15 installed 15.8\ndpkg_interrupted=yes\n"), context);
    expect(repairOnly.changes.map((c) => c.action)).toEqual(["run"]);
    expect(script(commandsOf(repairOnly)[0])).not.toMatch(/pgprov_apt_get (install|update|remove)/);
    const probe = apt.probe(args, context) as SharedProbe<unknown>;
    expect(probe.reader.script([probe.item])).toContain("half-configured");
    // A lost connection lets dpkg finish rather than cut it short; dpkg stays in apt's session, so
    // that ending the script (its time limit) reaches it.
    expect(commandsOf(d)[0]).toMatchObject({ letFinish: true });
    expect(s).toContain("-o Dpkg::Use-Pty=0");
  });
  it("rejects a package name that could smuggle shell", () => {
    expect(aptArgs.safeParse({ packages: ["cron; rm -rf /"] }).success).toBe(false);
  });
});

describe("file", () => {
  const content = "a = 1\nb = 2\n";
  const args = fileArgs.parse({ path: "/etc/x.conf", content, mode: "640", owner: "root" });
  it("creates a missing file, with a diff of all its lines", () => {
    const d = file.decide(args, out("type=absent\n"), context);
    expect(d.changes[0]).toMatchObject({ action: "create", summary: "create /etc/x.conf (owner root, mode 0640)" });
    expect(d.changes[0]!.diff).toContain("+b = 2");
  });
  it("is ok when checksum and attributes match", () => {
    const d = file.decide(args, out(`type=regular file\nowner=root\ngroup=root\nmode=640\nsize=12\nsha256=${sha256(content)}\n`), context);
    expect(d.changes).toEqual([]);
  });
  it("shows a unified diff of changed content and names changed attributes", () => {
    const old = Buffer.from("a = 1\nb = 3\n").toString("base64");
    const d = file.decide(args, out(`type=regular file\nowner=postgres\ngroup=root\nmode=644\nsize=12\nsha256=abc\ncontent=${old}\n`), context);
    expect(d.changes.map((c) => c.summary)).toEqual(["content of /etc/x.conf", "owner postgres -> root, mode 0644 -> 0640 of /etc/x.conf"]);
    expect(d.changes[0]!.diff).toMatch(/-b = 3\n\+b = 2/);
    // One command writes the content with its owner and mode: the attribute change needs none of its own.
    expect(d.changes.map((c) => c.commands.length)).toEqual([1, 0]);
    const [cmd] = commandsOf(d);
    expect(script(cmd)).toMatch(/mktemp -d .*\n[\s\S]*mv -fT f \.\.\/x\.conf$/);
    expect(script(cmd)).not.toContain(content); // content travels base64-encoded in a heredoc
  });
  it("never reads back the content of a file whose diff is off (a passfile's old password)", () => {
    // The file reader reads the content back (pgprov_content) only for an item whose diff is on.
    const call = (a: typeof args) => {
      const probe = file.probe(a, context) as SharedProbe<unknown>;
      return probe.reader.script([probe.item]).split("\n").find((l) => l.includes("echo @@0;"))!;
    };
    expect(call(args)).toContain(`pgprov_content /etc/x.conf ./x.conf ${sha256(content)}`);
    expect(call({ ...args, diff: false })).not.toContain("pgprov_content");
  });
  it("refuses to replace a directory with a file", () => {
    expect(() => file.decide(args, out("type=directory\n"), context)).toThrow(TaskFailure);
  });
  it("asks for a quoted mode", () => {
    const r = fileArgs.safeParse({ path: "/x", mode: 640 });
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error!.issues)).toContain("quote the mode");
  });
});

describe("service", () => {
  it("starts and enables a stopped, disabled unit", () => {
    const d = service.decide(serviceArgs.parse({ name: "cron", state: "started", enabled: "true" }), out("LoadState=loaded\nActiveState=inactive\nUnitFileState=disabled\nNeedDaemonReload=no\n"), context);
    expect(d.changes.map((c) => c.action)).toEqual(["update", "start"]);
    const acts = commandsOf(d);
    expect(acts.map((c) => c.display)).toEqual(["systemctl enable cron", "systemctl start cron"]);
    expect(script(acts[1])).toMatch(/^systemctl start cron \|\| \{ rc=\$\?; journalctl -u cron/);
  });
  it("is ok when running and enabled", () => {
    const d = service.decide(serviceArgs.parse({ name: "cron", state: "started", enabled: true }), out("LoadState=loaded\nActiveState=active\nUnitFileState=enabled\n"), context);
    expect(d.changes).toEqual([]);
  });
  it("a unit still starting (activating) is waited for with systemctl start, not taken as running: a rerun right after a killed restart finds the start job still going (its boot check asking peers)", () => {
    const d = service.decide(serviceArgs.parse({ name: "pg", state: "started", enabled: true }), out("LoadState=loaded\nActiveState=activating\nUnitFileState=enabled\n"), context);
    expect(commandsOf(d).map((c) => c.display)).toEqual(["systemctl start pg"]);
    expect(d.changes[0]!.summary).toContain("activating");
  });
  it("reloads only a running unit", () => {
    const args = serviceArgs.parse({ name: "pg", state: "reloaded" });
    expect(service.decide(args, out("ActiveState=active\n"), context).changes.map((c) => c.action)).toEqual(["reload"]);
    expect(service.decide(args, out("ActiveState=inactive\n"), context).changes).toEqual([]);
  });
  it("issue 13 CI: a drop-in on disk that the loaded unit lacks is a daemon-reload, though systemd says NeedDaemonReload=no", () => {
    // systemd 252 after a drop-in directory was made since its last daemon-reload (seen on a bootstrap).
    const args = serviceArgs.parse({ name: "postgresql@15-main", enabled: true });
    const fence = "/etc/systemd/system/postgresql@.service.d/pgprov-boot-fence.conf";
    const unread = service.decide(args, out(`LoadState=loaded\nActiveState=active\nUnitFileState=enabled-runtime\nNeedDaemonReload=no\nDropInPaths=\nDropInsOnDisk=${fence}\n`), context);
    expect(unread.changes.map((c) => [c.action, c.summary])).toEqual([["reload", `reload systemd units (postgresql@15-main: ${fence} not loaded yet)`]]);
    expect(commandsOf(unread).map((c) => c.display)).toEqual(["systemctl daemon-reload"]);
    const read = service.decide(args, out(`LoadState=loaded\nActiveState=active\nUnitFileState=enabled-runtime\nNeedDaemonReload=no\nDropInPaths=/run/x.conf ${fence}\nDropInsOnDisk=${fence}\n`), context);
    expect(read.changes).toEqual([]);
  });
  it("does not read the string 'false' as true", () => {
    expect(serviceArgs.parse({ name: "cron", enabled: "false" }).enabled).toBe(false);
  });
});

describe("command", () => {
  it("needs a guard so that a rerun knows it is done", () => {
    expect(commandArgs.safeParse({ cmd: "make install" }).success).toBe(false);
  });
  it("does nothing when `creates` exists or `unless` passed", () => {
    expect(command.decide(commandArgs.parse({ cmd: "x", creates: "/a" }), out("creates=present\n"), context).changes).toEqual([]);
    expect(command.decide(commandArgs.parse({ cmd: "x", unless: "true" }), out("unless=passed\n"), context).changes).toEqual([]);
    expect(command.decide(commandArgs.parse({ cmd: "x", creates: "/a" }), out(""), context).changes[0]!.action).toBe("run");
  });
  it("runs a read-only command in the check and registers its output", () => {
    const args = commandArgs.parse({ cmd: "hostname", changed_when: false });
    expect(command.probe(args, context)).toBe("hostname");
    expect(command.decide(args, out("pg1\n"), context)).toMatchObject({ changes: [], value: "pg1\n" });
    expect(() => command.decide(args, out("", 2, "boom"), context)).toThrow(TaskFailure);
  });
});

describe("issue 9 item 2: one process per batch, each task its own part", () => {
  it("reads every file of a batch in one section, the checked walk defined once, and splits them apart", () => {
    const items = [
      { path: "/etc/d", want: "", leftovers: false, diff: true },
      { path: "/etc/a.conf", want: sha256("x"), leftovers: true, diff: true },
    ];
    const script = fileReader.script(items);
    expect(script.match(/pgprov_walk\(\) \{/g)).toHaveLength(1);
    expect(script).toContain(`pgprov_look /etc/a.conf ./a.conf .pgprov.a.conf.`);
    const printed = `@@0\ntype=directory\nowner=root\n@@1\ntype=regular file\nowner=root\ngroup=postgres\nmode=640\nlinks=1\nsha256=${sha256("x")}\n@@end\n`;
    const [d, a] = fileReader.split(out(printed), items);
    expect(d!.stdout).toBe("type=directory\nowner=root\n");
    expect(file.decide(fileArgs.parse({ path: "/etc/a.conf", content: "x", group: "postgres", mode: "0640" }), a!, context).changes).toEqual([]);
    // Output cut short (the shell died): the task fails, it does not guess.
    const [, cut] = fileReader.split(out(printed.slice(0, 40), 1), items);
    expect(() => file.decide(fileArgs.parse({ path: "/etc/a.conf", content: "x" }), cut!, context)).toThrow(/cannot read \/etc\/a.conf/);
  });

  it("reads every unit of a batch with one systemctl show", () => {
    expect(unitReader.script(["cron", "postgresql@15-main"])).toMatch(
      /^systemctl show -p LoadState -p ActiveState -p UnitFileState -p NeedDaemonReload -p DropInPaths -- cron postgresql@15-main\n/,
    );
    expect(unitReader.script(["cron", "postgresql@15-main"]).match(/systemctl/g)).toHaveLength(1);
    const [cron, pg] = unitReader.split(out("LoadState=loaded\nActiveState=active\n\nLoadState=not-found\nActiveState=inactive\n\n@@drop-ins on disk\n /etc/systemd/system/cron.service.d/a.conf\n\n"), ["cron", "pg"]);
    expect([cron!.stdout, pg!.stdout]).toEqual([
      "LoadState=loaded\nActiveState=active\nDropInsOnDisk=/etc/systemd/system/cron.service.d/a.conf\n",
      "LoadState=not-found\nActiveState=inactive\nDropInsOnDisk=\n",
    ]);
  });

  it("reads every query of a batch with one psql, a row set each; a server that is down is a state", () => {
    const sql = psql(5432);
    const probe = sql.probe("select 1 as one");
    const script = probe.reader.script(["select 1 as one", "select name from pg_settings"]);
    expect(script.match(/"\$psql" -XAtq/g)).toHaveLength(1);
    expect(script).toContain("select coalesce(json_agg(t), '[]') from (select 1 as one) t;");
    const [one, settings] = probe.reader.split(out('@@0\n[{"one":1}]\n@@1\n[]\n@@end\n'), ["a", "b"]);
    expect([rowsOf(one!), rowsOf(settings!)]).toEqual([{ rows: [{ one: 1 }] }, { rows: [] }]);
    const [down] = probe.reader.split(out("", 2, "psql: error: connection to server on socket \"/var/run/postgresql/.s.PGSQL.5432\" failed: No such file or directory\n"), ["a"]);
    expect(rowsOf(down!)).toEqual({ error: 'psql: error: connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed: No such file or directory' });
  });
});
