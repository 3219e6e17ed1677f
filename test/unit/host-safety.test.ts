/**
 * Issue 8, privilege and injection: what an inventory, a playbook or a local user of a host can
 * smuggle into the files, configuration and commands pgprov writes as root.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BUILTIN_VARIABLES, hostVariables } from "../../src/cluster/variables.js";
import type { Command } from "../../src/engine/change.js";
import { ensureReplicationPassword, loadInventory } from "../../src/inventory/inventory.js";
import { file, fileArgs } from "../../src/modules/file.js";
import { type ModuleContext, type ProbeOutput, TaskFailure } from "../../src/engine/module.js";
import { genericModules } from "../../src/modules/index.js";
import { restartArgs } from "../../src/postgres/restart.js";
import { serviceArgs } from "../../src/modules/service.js";
import { loadPlaybook } from "../../src/playbook/playbook.js";
import { render } from "../../src/playbook/template.js";
import { FACT_KEYS } from "../../src/engine/facts.js";
import { yamlFiles } from "./yaml-files.js";

const HOSTS = `hosts:\n  pg1: { address: 10.0.0.11, role: primary }\n  pg2: { address: 10.0.0.12, role: standby }\n`;
const inventories = yamlFiles("inventory", loadInventory);
const script = (c: Command | undefined): string => c?.script ?? "";
const context: ModuleContext = { playbookDir: "/", render: (t) => t };
const out = (stdout: string): ProbeOutput => ({ stdout, stderr: "", code: 0 });

/**
 * postgresql.conf as PostgreSQL's own lexer (guc-file.l) reads it: `name [=] value` per line,
 * `#` comments, strings in single quotes with '' and backslash escapes. Later lines win.
 */
function parsePostgresqlConf(text: string): Map<string, string> {
  const settings = new Map<string, string>();
  // A comment, a line's end, "=", a quoted string, or a bare word (a name, a number, an unquoted value).
  const token = /[ \t\r\f]*(?:(#[^\n]*)|(\n)|(=)|'((?:[^'\\\n]|\\.|'')*)'|([^\s'#=]+))/y;
  let statement: string[] = [];
  const end = () => {
    const [name, ...rest] = statement;
    const value = rest[0] === "=" ? rest.slice(1) : rest;
    if (name !== undefined) {
      if (value.length !== 1) throw new Error(`syntax error near ${name}`);
      settings.set(name.toLowerCase(), value[0]!);
    }
    statement = [];
  };
  for (let m = token.exec(text); m && token.lastIndex <= text.length && m[0] !== ""; m = token.exec(text)) {
    if (m[2]) end();
    else if (m[3] ?? m[5]) statement.push((m[3] ?? m[5])!);
    else if (m[4] !== undefined) {
      statement.push(m[4].replace(/''/g, "'").replace(/\\(.)/g, (_all, c: string) => ({ b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" })[c] ?? c));
    }
  }
  end();
  return settings;
}

describe("issue 8 item 6: postgresql.settings cannot inject configuration", () => {
  it("refuses a setting name outside PostgreSQL's grammar, at its position", () => {
    const key = JSON.stringify("pg_stat_statements.max = 5000\nwal_level = minimal\nhba_file = '/tmp/evil_hba'\n#");
    expect(inventories.problems(`postgresql:\n  settings:\n    ${key}: 1\n${HOSTS}`)).toEqual([
      `3:${5 + key.length + 2}: postgresql.settings.${key}: not a setting name: letters, digits, _ and $, with at most one dot (after an extension's prefix)`,
    ]);
  });

  it("refuses a managed setting whatever its case, and a value with a control character", () => {
    expect(inventories.problems(`postgresql:\n  settings:\n    WAL_Level: minimal\n    work_mem: "4MB\\nwal_level = minimal"\n${HOSTS}`)).toEqual([
      `4:15: postgresql.settings.work_mem: a setting's value cannot hold a line break or another control character`,
      `3:16: postgresql.settings.WAL_Level: wal_level is managed by pgprov (derived from the inventory); remove it here`,
    ]);
  });

  it("renders quotes and backslashes in a value so that PostgreSQL reads exactly the value", () => {
    const hostile = String.raw`C:\x' wal_level = minimal \'`;
    const inv = loadInventory(inventories.write(`postgresql:\n  settings:\n    cluster_name: ${JSON.stringify(hostile)}\n    pg_stat_statements.max: 5000\n${HOSTS}`));
    ensureReplicationPassword(inv);
    const facts = { os_id: "debian", os_version: "12", os_codename: "bookworm", arch: "amd64", hostname: "x", cpus: 2, memory_mb: 1024 };
    const conf = render(readFileSync(join(import.meta.dirname, "../../templates/pgprov.conf.hbs"), "utf8"), hostVariables(inv, inv.standbys[0]!, facts), "t");
    const settings = parsePostgresqlConf(conf);
    expect(settings.get("cluster_name")).toBe(hostile);
    expect(settings.get("wal_level")).toBe("replica");
    expect(settings.get("pg_stat_statements.max")).toBe("5000");
  });

  it("escapes quotes and backslashes in pgquote and pgvalue, and refuses control characters", () => {
    expect(render("{{ pgquote v }}", { v: String.raw`it's \n` }, "t")).toBe(String.raw`'it''s \\n'`);
    expect(render("{{ pgvalue v }}", { v: String.raw`a\'` }, "t")).toBe(String.raw`'a\\'''`);
    expect(render("{{ pgvalue v }}", { v: 3 }, "t")).toBe("3");
    for (const helper of ["pgquote", "pgvalue", "pgpass"]) {
      expect(() => render(`{{ ${helper} v }}`, { v: "a\nb" }, "x.hbs")).toThrow(/^x\.hbs: template error: .*line break or another control character/);
    }
  });

  it("refuses a host address that pg_hba.conf would read as a keyword", () => {
    expect(inventories.problems(`hosts:\n  pg1: { address: 10.0.0.11, role: primary }\n  pg2: { address: samenet, role: standby }\n`)).toEqual([
      `3:19: hosts.pg2.address: "samenet" is a keyword in pg_hba.conf (it would allow more than this host); use the host's address or DNS name`,
    ]);
  });
});

describe("issue 8 item 7: apt.proxy cannot inject apt configuration", () => {
  it("refuses quotes, semicolons and line breaks, without echoing a URL that carries credentials", () => {
    const evil = `http://user:Pr0xy-Secret@10.0.0.1:3142/";\nDPkg::Pre-Invoke { "id > /root/pwned"; };\n#`;
    const problems = inventories.problems(`apt:\n  proxy: ${JSON.stringify(evil)}\n${HOSTS}`);
    expect(problems).toEqual([`2:10: apt.proxy: an apt proxy URL cannot hold quotes, semicolons, backslashes, whitespace or control characters`]);
    expect(problems.join("\n")).not.toContain("Pr0xy-Secret");
  });

  it("accepts only http and https, and never echoes the URL", () => {
    expect(inventories.problems(`apt:\n  proxy: ftp://user:Pr0xy-Secret@10.0.0.1/\n${HOSTS}`)).toEqual([
      `2:10: apt.proxy: expected an http:// or https:// URL, like http://proxy.example:3142 (the scheme is ftp)`,
    ]);
    expect(inventories.problems(`apt:\n  proxy: not a url\n${HOSTS}`)).toEqual([
      `2:10: apt.proxy: an apt proxy URL cannot hold quotes, semicolons, backslashes, whitespace or control characters`,
    ]);
  });

  it("writes the URL's normal form", () => {
    const inv = loadInventory(inventories.write(`apt:\n  proxy: HTTP://User:p%40ss@Proxy.Example:3142\n${HOSTS}`));
    expect(inv.aptProxy).toBe("http://User:p%40ss@proxy.example:3142/");
  });
});

describe("issue 8: a registered value cannot shadow pgprov's variables", () => {
  const scope = { modules: genericModules(), hostNames: ["pg1"], groups: [], variables: ["host", "postgresql"], reserved: BUILTIN_VARIABLES, factKeys: FACT_KEYS };
  const playbooks = yamlFiles("playbook", (f) => loadPlaybook(f, scope));
  it("refuses register: postgresql at its position", () => {
    expect(playbooks.problems(`- name: p\n  hosts: all\n  tasks:\n    - name: t\n      command: { cmd: id, changed_when: false }\n      register: postgresql\n`)).toEqual([
      `6:17: register: "postgresql" is one of pgprov's own variables (host, hosts, primary, standbys, facts, postgresql, replication, pooler, ssh_user, cluster, tls, backup); choose another name`,
    ]);
  });
});

describe("issue 8 item 5: the file module never follows a link it did not create", () => {
  const dir = fileArgs.parse({ path: "/var/lib/postgresql/15/wal-archive", state: "directory", owner: "postgres", group: "postgres", mode: "0700" });
  const conf = fileArgs.parse({ path: "/etc/postgresql/15/main/conf.d/pgprov.conf", content: "a = 1\n", owner: "postgres", mode: "0644" });

  it("refuses a symlinked directory it did not create", () => {
    const probe = out("type=symbolic link\nowner=postgres\ngroup=postgres\nmode=777\ntarget=/etc\n");
    expect(() => file.decide(dir, probe, context)).toThrow(TaskFailure);
    expect(() => file.decide(dir, probe, context)).toThrow(
      "/var/lib/postgresql/15/wal-archive is a symbolic link to /etc (owned by postgres), which pgprov did not create: it never follows one. Remove the link (or point the task at its target), then rerun",
    );
    expect(() => file.decide(conf, probe, context)).toThrow(/is a symbolic link to \/etc/);
  });

  it("refuses a path that leads through a link someone other than root can change", () => {
    const probe = out("unsafe=/etc/postgresql/15/main/conf.d is a symbolic link to /etc/cron.d (owned by postgres) in /etc/postgresql/15/main (owned by postgres)\n");
    expect(() => file.decide(conf, probe, context)).toThrow(
      "refusing /etc/postgresql/15/main/conf.d/pgprov.conf: /etc/postgresql/15/main/conf.d is a symbolic link to /etc/cron.d (owned by postgres) in /etc/postgresql/15/main (owned by postgres); pgprov follows only links that only root can change",
    );
  });

  it("removes a link itself when the path should be absent", () => {
    const absent = fileArgs.parse({ path: "/etc/x", state: "absent" });
    const d = file.decide(absent, out("type=symbolic link\nowner=postgres\ntarget=/etc/shadow\n"), context);
    expect(d.changes).toMatchObject([{ action: "delete", summary: "remove /etc/x (a symbolic link to /etc/shadow)" }]);
    expect(script(d.changes[0]!.commands[0])).toContain("rm -f -- ./x");
  });

  it("refuses a file with other hard links in a directory another user can change", () => {
    const probe = out("type=regular file\nowner=root\ngroup=shadow\nmode=640\nsize=1\nlinks=2\ndir_uid=113\ndir_mode=41c0\nsha256=abc\n");
    expect(() => file.decide(conf, probe, context)).toThrow(/has 2 hard links/);
  });

  it("acts on the path itself: checks again right before acting, never dereferences, never copies attributes by reference", () => {
    const d = file.decide(dir, out("type=directory\nowner=root\ngroup=root\nmode=755\nuid=0\ngid=0\ninode=7\nlinks=2\ndir_uid=113\ndir_mode=41ed\n"), context);
    const act = script(d.changes[0]!.commands[0]);
    expect(act).toContain("pgprov_walk /var/lib/postgresql/15/wal-archive");
    expect(act).toContain("chown -h postgres:postgres .");
    expect(act).not.toMatch(/--reference|stat -L|mkdir -p \/var\/lib\/postgresql\/15\/wal-archive/);
    const existing = file.decide(conf, out("type=regular file\nowner=root\ngroup=root\nmode=600\nuid=0\ngid=42\ninode=9\nlinks=1\ndir_uid=0\ndir_mode=41ed\nsha256=abc\n"), context);
    const write = script(existing.changes[0]!.commands[0]);
    expect(write).not.toContain("--reference");
    expect(write).toContain("chown -h postgres:42 f");
    expect(write).toContain("mv -fT f ../pgprov.conf");
  });
});

describe("issue 8, the same class elsewhere: names and paths that reach a command", () => {
  it("refuses unit names that systemctl would read as an option", () => {
    expect(serviceArgs.safeParse({ name: "--root=/tmp", state: "started" }).success).toBe(false);
    expect(restartArgs.safeParse({ service: "-H" }).success).toBe(false);
    expect(serviceArgs.safeParse({ name: "postgresql@15-main", state: "started" }).success).toBe(true);
  });
  it("refuses a path with a line break, . or .., at load and after templating alike", () => {
    for (const path of ["/etc/a\nb", "/var/lib/../../etc", "/etc//x", "/etc/x/"]) expect(fileArgs.safeParse({ path }).success).toBe(false);
    expect(inventories.problems(`postgresql:\n  archive_directory: /var/lib/../../etc\n${HOSTS}`)).toEqual([
      `2:22: postgresql.archive_directory: expected a path without //, . or .. in it, and no / at its end`,
    ]);
  });
});
