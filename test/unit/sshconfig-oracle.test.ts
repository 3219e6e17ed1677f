/**
 * OpenSSH itself as the oracle: `ssh -G -F FILE ALIAS` prints the configuration OpenSSH works out
 * for ALIAS without connecting (it sends nothing). These tests generate configuration files and
 * assert that pgprov's reading agrees with it. Never run ssh here without -G.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FileError } from "../../src/errors.js";
import { resolveConnection } from "../../src/sshconfig/connection.js";
import { expandTokens, localContext } from "../../src/sshconfig/expand.js";
import { formatHop } from "../../src/sshconfig/jump.js";
import { loadSshConfigFile } from "../../src/sshconfig/load.js";
import { lookupHost } from "../../src/sshconfig/lookup.js";

const dir = mkdtempSync(join(tmpdir(), "pgprov-sshconfig-oracle-"));
const local = localContext();

function write(name: string, text: string): string {
  const path = join(dir, name);
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, text);
  chmodSync(path, 0o644);
  return path;
}

/** OpenSSH's resolved configuration: every key with its values (identityfile repeats). */
function sshG(file: string, alias: string, extra: string[] = []): Map<string, string[]> {
  const out = execFileSync("ssh", ["-G", "-F", file, ...extra, alias], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  const result = new Map<string, string[]>();
  for (const line of out.split("\n")) {
    const space = line.indexOf(" ");
    if (space < 0) continue;
    const key = line.slice(0, space);
    result.set(key, [...(result.get(key) ?? []), line.slice(space + 1)]);
  }
  return result;
}

// Patterns and negation, Include with a glob (a dot file left out, an Include in a block that
// does not apply read but not applied), Match host on the HostName, Match originalhost, Match
// user, tokens, first value wins, IdentityFile accumulating, ProxyJump chains and none.
write("conf.d/10-web1.conf", "Host web1\n  Port 2201\n  IdentityFile ~/.ssh/from_include\n");
write("conf.d/20-db.conf", "Match originalhost db-*\n  User dba\n");
write("conf.d/.hidden.conf", "Host *\n  User hidden\n");
write("conf.d/notes.txt", "Host *\n  User notes\n");
write("inactive.conf", "Host *\n  User inactive\n  Port 1\n");
const main = write(
  "config",
  `# pgprov oracle configuration
Include ${dir}/conf.d/*.conf
Host nothing-matches-this
  Include ${dir}/inactive.conf

Host web? !web9
  HostName %h.internal.example
  User deploy
  IdentityFile ~/.ssh/web_%r_%h
  UserKnownHostsFile ~/.ssh/kh_%n_%p %d/kh_%u_%l_%h
Host web9
  Port 2209
Host db-* "quoted"
  ProxyJump ops@bastion:2222
  IdentityFile=/keys/db\\ key
Host chain
  ProxyJump bastion,ops2@mid:2022
Host none-jump
  ProxyJump none
Host bastion
  HostName 192.0.2.10
  User jumper
Host mid
  HostName Mid.Example.NET
Match host *.internal.example
  Port 2200
  ConnectTimeout 1m30s
Match originalhost web2
  User ignored-user-already-set
  IdentityFile ~/.ssh/web2_extra
Match user deploy
  IdentityFile "~/.ssh/deploy key"
Match !host *.internal.example,bastion user dba
  ConnectTimeout 42
Host *
  User=everyone
  ConnectTimeout 5 # seconds; a # inside a word is no comment:
  IdentityFile ~/.ssh/key#1
  IdentityFile ~/.ssh/fallback
  UserKnownHostsFile ~/.ssh/kh_all_%r
`,
);

const ALIASES = ["web1", "web2", "web9", "webX", "Web1", "db-main", "quoted", "chain", "none-jump", "bastion", "mid", "other", "10.1.2.3"];

describe("ssh config read as OpenSSH reads it (ssh -G as the oracle)", () => {
  const config = loadSshConfigFile(main, { home: local.home });

  for (const alias of ALIASES) {
    it(`issue 13: agrees with ssh -G for ${alias}: hostname, user, port, identityfile, proxyjump, userknownhostsfile, connecttimeout`, () => {
      const ssh = sshG(main, alias);
      const found = lookupHost(config, alias, { localUser: local.user });
      const resolved = resolveConnection({ name: alias, inventoryFile: "inventory.yml", hosts: {}, config, local, defaults: { user: local.user } });

      expect(resolved.hostname.value).toBe(ssh.get("hostname")![0]);
      expect(resolved.user.value).toBe(ssh.get("user")![0]);
      expect(String(resolved.port.value)).toBe(ssh.get("port")![0]);
      // ssh -G prints IdentityFile as written (tokens unexpanded), and its default keys when none applies.
      if (found.identityFiles.length > 0) expect(found.identityFiles.map((f) => f.value)).toEqual(ssh.get("identityfile"));
      expect(found.proxyJump && found.proxyJump.value.length > 0 ? found.proxyJump.value.map(formatHop).join(",") : undefined).toBe(ssh.get("proxyjump")?.[0]);
      // UserKnownHostsFile is printed expanded: ~, %d %u %l %h %n %p %r.
      expect(resolved.userKnownHostsFiles.value.join(" ")).toBe(ssh.get("userknownhostsfile")![0]);
      const timeout = ssh.get("connecttimeout")![0];
      if (timeout !== "none") expect(String(resolved.connectTimeout.value)).toBe(timeout);
    });
  }

  it("issue 13: each jump host on the way is what ssh -G says for it (ssh -J runs ssh -l USER -p PORT HOP)", () => {
    for (const alias of ["db-main", "chain"]) {
      const resolved = resolveConnection({ name: alias, inventoryFile: "inventory.yml", hosts: {}, config, local, defaults: { user: local.user } });
      expect(resolved.via.length).toBeGreaterThan(0);
      for (const hop of resolved.via) {
        const extra = [
          ...(hop.user.from.kind === "proxy-jump" ? ["-l", hop.user.value] : []),
          ...(hop.port.from.kind === "proxy-jump" ? ["-p", String(hop.port.value)] : []),
        ];
        const ssh = sshG(main, hop.name, extra);
        expect([hop.hostname.value, hop.user.value, String(hop.port.value)]).toEqual([ssh.get("hostname")![0], ssh.get("user")![0], ssh.get("port")![0]]);
      }
    }
  });

  it("issue 13: %C and the other tokens expand as OpenSSH expands them (its ControlPath shows them)", () => {
    const file = write("tokens.conf", "Host tok\n  HostName Tok.Example\n  User bob\n  Port 2022\n  ControlPath /tmp/%C_%n_%k_%L_%l_%i_%u_%h_%p_%r_%%\n");
    const expected = sshG(file, "tok").get("controlpath")![0];
    const values = { hostname: "tok.example", alias: "tok", user: "bob", port: 2022 };
    expect(expandTokens("/tmp/%C_%n_%k_%L_%l_%i_%u_%h_%p_%r_%%", "test", local, values)).toBe(expected);
  });

  const BAD: [string, string, number][] = [
    ["an unclosed quote", 'Host a\n  HostName "a b\n', 2],
    ["a port out of range", "Host a\n  User x\n  Port 70000\n", 3],
    ["two values where OpenSSH takes one", "Host a\n  HostName a b\n", 2],
    ["a keyword without a value", "Host a\n  Port\n", 2],
    ["a ProxyJump with a bad port", "Host a\n  ProxyJump j:0\n", 2],
    ["a bad time", "ConnectTimeout 5x\n", 1],
    ["a bad value in a block that does not apply", "Host nothing\n  Port -1\n", 2],
  ];
  for (const [what, text, line] of BAD) {
    it(`issue 13 bad input: ${what} is refused by OpenSSH and by pgprov, naming the file and line ${line}`, () => {
      const file = write(`bad-${what.replace(/\W+/g, "-")}.conf`, text);
      const ssh = spawnSync("ssh", ["-G", "-F", file, "a"], { encoding: "utf8" });
      expect(ssh.status).not.toBe(0);
      expect(ssh.stderr).toContain(`line ${line}`);
      expect(() => loadSshConfigFile(file)).toThrow(FileError);
      expect(() => loadSshConfigFile(file)).toThrow(`${file}:${line}:`);
    });
  }
});
