/**
 * Issue 8, privilege and injection: what an inventory, a playbook or a local user of a host can
 * smuggle into the files, configuration and commands pgprov writes as root.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { hostVariables } from "../../src/engine/variables.js";
import { ensureReplicationPassword, loadInventory } from "../../src/inventory/inventory.js";
import { loadPlaybook } from "../../src/playbook/playbook.js";
import { render } from "../../src/playbook/template.js";
import { FACT_KEYS } from "../../src/engine/facts.js";
import { yamlFiles } from "./yaml-files.js";

const HOSTS = `hosts:\n  pg1: { address: 10.0.0.11, role: primary }\n  pg2: { address: 10.0.0.12, role: standby }\n`;
const inventories = yamlFiles("inventory", loadInventory);

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
    const conf = render(readFileSync(join(import.meta.dirname, "../../templates/pgprov.conf.hbs"), "utf8"), hostVariables(inv, inv.standbys[0]!, facts, {}), "t");
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
  const scope = { hostNames: ["pg1"], variables: ["host", "postgresql"], factKeys: FACT_KEYS };
  const playbooks = yamlFiles("playbook", (f) => loadPlaybook(f, scope));
  it("refuses register: postgresql at its position", () => {
    expect(playbooks.problems(`- name: p\n  hosts: all\n  tasks:\n    - name: t\n      command: { cmd: id, changed_when: false }\n      register: postgresql\n`)).toEqual([
      `6:17: register: "postgresql" is one of pgprov's own variables (host, hosts, primary, standbys, facts, postgresql, replication, ssh_user, cluster); choose another name`,
    ]);
  });
});
