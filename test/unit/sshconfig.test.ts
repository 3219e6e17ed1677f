/**
 * The rules of reading OpenSSH's client configuration and of resolving how pgprov reaches a host
 * (issue 13). Agreement with OpenSSH itself is sshconfig-oracle.test.ts's; these pin each rule,
 * including pgprov's own (security, precedence, jump hosts), with a home directory of their own.
 */
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FileError, PgprovError } from "../../src/common/errors.js";
import { describePath, endpointKey, resolveConnection, type ConnectionInput, type InventoryHost, type InventorySsh } from "../../src/sshconfig/connection.js";
import type { Local } from "../../src/sshconfig/expand.js";
import { parseProxyJump } from "../../src/sshconfig/jump.js";
import { splitLine } from "../../src/sshconfig/lexer.js";
import { glob, loadDefaultSshConfig, loadSshConfigFile, parseSshConfig, type SshConfig } from "../../src/sshconfig/load.js";
import { lookupHost } from "../../src/sshconfig/lookup.js";
import { thrown } from "./yaml-files.js";

const home = mkdtempSync(join(tmpdir(), "pgprov-sshconfig-home-"));
mkdirSync(join(home, ".ssh"), { mode: 0o700 });
const local: Local = { user: "dba", home, hostname: "admin.example.org", uid: 1000, env: { SSH_AUTH_SOCK: "/run/agent.sock", KEYS: "/srv/keys" } };

let n = 0;
function file(text: string, name = `config-${++n}`): string {
  const path = join(home, ".ssh", name);
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, text);
  chmodSync(path, 0o600);
  return path;
}
const load = (text: string): SshConfig => loadSshConfigFile(file(text), { home });
const lookup = (text: string, alias: string) => lookupHost(load(text), alias, { localUser: local.user });

function connect(config: SshConfig | undefined, name: string, extra: { hosts?: Record<string, InventoryHost>; ssh?: InventorySsh } = {}) {
  const input: ConnectionInput = { name, inventoryFile: "inventory.yml", hosts: extra.hosts ?? {}, ssh: extra.ssh, config, local };
  return resolveConnection(input);
}


describe("issue 13: ssh config lines are split as OpenSSH splits them", () => {
  it("keyword and arguments: = or spaces, quotes, escapes, comments only at a word's start", () => {
    expect(splitLine("  HostName=db1 ")).toEqual({ keyword: "hostname", written: "HostName", args: ["db1"] });
    expect(splitLine("Port = 2222 # admin port")).toMatchObject({ keyword: "port", args: ["2222"] });
    expect(splitLine('IdentityFile "~/.ssh/my key" a\\ b c#d \'e "f\'')).toMatchObject({ args: ["~/.ssh/my key", "a b", "c#d", 'e "f'] });
    expect(splitLine("   # a comment")).toBeUndefined();
    expect(splitLine("")).toBeUndefined();
    expect(splitLine('HostName "db1')).toMatch(/invalid quotes/);
    expect(splitLine("Port")).toMatch(/no argument after keyword "Port"/);
  });

  it("issue 13 bad input: an unparseable line is an error naming the file and line, for every bad line", () => {
    const path = file('Host a\n  HostName "unclosed\n  Port 99999\n  IdentitiesOnly maybe\n');
    const message = thrown(() => loadSshConfigFile(path, { home }));
    expect(message).toContain(`${path}:2:3: invalid quotes`);
    expect(message).toContain(`${path}:3:3: Port: expected a port number 1..65535, found "99999"`);
    expect(message).toContain(`${path}:4:3: IdentitiesOnly: expected yes or no`);
    expect(() => loadSshConfigFile(path, { home })).toThrow(FileError);
  });

  it("an option unknown to OpenSSH is a warning naming file and line, unless IgnoreUnknown covers it", () => {
    const config = load("IgnoreUnknown UseKeychain,Add*\nHost a\n  HostNmae db1\n  UseKeychain yes\n  AddSomething 1\n");
    expect(config.warnings).toHaveLength(1);
    expect(config.warnings[0]).toMatchObject({ line: 3, message: expect.stringContaining('unknown option "HostNmae"') });
  });
});

describe("issue 13: Host and Match decide which lines apply", () => {
  const text = `Host db? !db9
  User pattern
Host *.prod web-*
  Port 2200
Host DB1
  Port 1111
Match originalhost db1 user pattern
  IdentityFile ~/.ssh/match_user
Match host *.internal !originalhost skip
  Port 3333
Match localuser dba
  ConnectTimeout 7
Match all
  IdentityFile ~/.ssh/all
`;
  it("* and ? patterns, !negation excluding whatever else matches, case as written", () => {
    expect(lookup(text, "db1").user?.value).toBe("pattern");
    expect(lookup(text, "db9").user).toBeUndefined();
    expect(lookup(text, "db10").user).toBeUndefined();
    expect(lookup(text, "x.prod").port?.value).toBe(2200);
    expect(lookup(text, "web-3").port?.value).toBe(2200);
    expect(lookup(text, "db1").port).toBeUndefined(); // Host DB1 matches DB1 only
    expect(lookup(text, "DB1").port?.value).toBe(1111);
  });

  it("Match originalhost, user (the value obtained so far), localuser, all", () => {
    expect(lookup(text, "db1").identityFiles.map((f) => f.value)).toEqual(["~/.ssh/match_user", "~/.ssh/all"]);
    expect(lookup(text, "db2").identityFiles.map((f) => f.value)).toEqual(["~/.ssh/all"]);
    expect(lookup(text, "anything").connectTimeout?.value).toBe(7);
    // The inventory's user comes first, like ssh -l: Match user sees it.
    const config = load(text);
    expect(lookupHost(config, "db1", { localUser: "dba", preset: { user: "other" } }).identityFiles.map((f) => f.value)).toEqual(["~/.ssh/all"]);
  });

  it("Match host tests the HostName obtained so far (its %h expanded), case-insensitively; a negated criterion inverts", () => {
    const config = "Host a b skip\n  HostName %h.INTERNAL\n" + text;
    expect(lookup(config, "a").port?.value).toBe(3333);
    expect(lookup(config, "skip").port).toBeUndefined();
    expect(lookup(text, "a.internal").port?.value).toBe(3333);
  });

  it("issue 13 bad input: a Match criterion pgprov cannot evaluate is refused, naming file and line, never guessed", () => {
    const path = file("Host a\n  User x\nMatch exec \"test -f /tmp/x\"\n  User y\n");
    expect(thrown(() => loadSshConfigFile(path, { home }))).toBe(
      `${path}:3:1: Match exec is not supported: pgprov runs no command from an ssh configuration; pgprov honours Match all, host, originalhost, user and localuser`,
    );
    expect(thrown(() => load("Match canonical host a\n  User x\n"))).toMatch(/:1:1: Match canonical is not supported/);
    expect(thrown(() => load("Match color blue\n  User x\n"))).toMatch(/:1:1: unknown Match criterion "color"/);
    expect(thrown(() => load("Match host\n  User x\n"))).toMatch(/:1:1: Match host needs a pattern/);
  });

  it("the first value obtained wins; IdentityFile accumulates; keywords in any case", () => {
    const found = lookup("Host a\n  hostname first\n  IdentityFile k1\nHost *\n  HOSTNAME second\n  identityfile k2\n", "a");
    expect(found.hostname).toMatchObject({ value: "first", at: { line: 2 } });
    expect(found.identityFiles.map((f) => [f.value, f.at.line])).toEqual([["k1", 3], ["k2", 6]]);
  });

  it("ProxyJump and ProxyCommand exclude each other, the first given wins (ProxyJump none leaves ProxyCommand free)", () => {
    const jumpFirst = lookup("Host a\n  ProxyJump j\n  ProxyCommand nc %h %p\n", "a");
    expect([jumpFirst.proxyJump?.value, jumpFirst.proxyCommand]).toEqual([[{ host: "j" }], undefined]);
    const commandFirst = lookup("Host a\n  ProxyCommand nc %h %p\n  ProxyJump j\n", "a");
    expect([commandFirst.proxyJump, commandFirst.proxyCommand?.value]).toEqual([undefined, "nc %h %p"]);
    expect(lookup("Host a\n  ProxyJump none\n  ProxyCommand nc %h %p\n", "a")).toMatchObject({ proxyJump: { value: [] }, proxyCommand: { value: "nc %h %p" } });
  });
});

describe("issue 13: Include", () => {
  it("relative paths are under ~/.ssh, ~/ is the home, globs are sorted, dot files and no match are skipped", () => {
    file("Host *\n  User from-b\n", "inc/b.conf");
    file("Host *\n  User from-a\n  Port 2001\n", "inc/a.conf");
    file("Host *\n  User hidden\n", "inc/.hidden.conf");
    file("Host *\n  Port 2002\n  IdentityFile ~/tilde\n", "tilde.conf");
    const found = lookup("Include inc/*.conf ~/.ssh/tilde.conf nothing/*.conf\n", "x");
    expect(found.user).toMatchObject({ value: "from-a", at: { file: join(home, ".ssh/inc/a.conf"), line: 2 } });
    expect(found.port?.value).toBe(2001);
    expect(found.identityFiles.map((f) => f.value)).toEqual(["~/tilde"]);
    expect(glob(join(home, ".ssh/inc/*.conf"))).toEqual([join(home, ".ssh/inc/a.conf"), join(home, ".ssh/inc/b.conf")]);
  });

  it("an Include in a block that does not apply applies nothing, and Host lines inside an included file do not leak out", () => {
    file("Host *\n  User never\n", "inc2/all.conf");
    file("Host other\n  Port 9\n", "inc2/other.conf");
    expect(lookup("Host nomatch\n  Include inc2/all.conf\nHost *\n  User fallback\n", "x").user?.value).toBe("fallback");
    // After the Include, the including file's block (Host x) is still the one in force.
    expect(lookup("Host x\n  Include inc2/other.conf\n  User after\n", "x").user?.value).toBe("after");
  });

  it("issue 13 bad input: an Include that recurses is stopped at OpenSSH's depth of 16, naming file and line", () => {
    const path = file("Host *\n  User x\n", "self.conf");
    writeFileSync(path, `Include ${path}\n`);
    expect(thrown(() => loadSshConfigFile(path, { home }))).toMatch(new RegExp(`${path}:1:1: Include nested more than 16 deep`));
  });

  it("a configuration others may write is refused, as OpenSSH refuses it", () => {
    const inc = file("User x\n", "writable.conf");
    chmodSync(inc, 0o666);
    expect(thrown(() => load("Include writable.conf\n"))).toMatch(/:1:1: .*writable\.conf: bad owner or permissions/);
    // A file named with -F (the inventory's ssh.config) OpenSSH reads as it is; so does pgprov.
    expect(loadSshConfigFile(inc, { home }).files).toHaveLength(1);
  });

  it("~/.ssh/config may be missing; a named file must exist", () => {
    const empty = mkdtempSync(join(tmpdir(), "pgprov-sshconfig-nohome-"));
    expect(loadDefaultSshConfig({ home: empty }).files.every((f) => !f.path.startsWith(empty))).toBe(true);
    expect(thrown(() => loadSshConfigFile(join(empty, "nope"), { home }))).toMatch(/cannot read ssh configuration .*nope/);
  });

  it("parseSshConfig reads text with no file of its own", () => {
    expect(lookupHost(parseSshConfig("Host a\n  Port 7\n", "inline", { home }), "a").port?.value).toBe(7);
  });
});

describe("issue 13: tokens in paths", () => {
  it("IdentityFile and UserKnownHostsFile expand ~ and %d %u %l %L %h %r %p %n %i %%, and ${VAR}", () => {
    const config = load("Host db1\n  HostName DB1.Example.org\n  User postgres\n  Port 2222\n  IdentityFile ~/.ssh/%u_%r@%h:%p_%n_%l_%L_%i_%%\n  IdentityFile ${KEYS}/%d/x\n  UserKnownHostsFile %d/kh_%h\n");
    const c = connect(config, "db1");
    expect(c.identityFiles.map((f) => f.value)).toEqual([
      `${home}/.ssh/dba_postgres@db1.example.org:2222_db1_admin.example.org_admin_1000_%`,
      `/srv/keys/${home}/x`,
    ]);
    expect(c.userKnownHostsFiles.value).toEqual([`${home}/kh_db1.example.org`]);
  });

  it("issue 13 bad input: an unknown token or variable names file and line", () => {
    const path = file("Host a\n  IdentityFile ~/.ssh/%q\n");
    expect(thrown(() => connect(loadSshConfigFile(path, { home }), "a"))).toMatch(new RegExp(`^${path}:2: "~/.ssh/%q": unknown token %q`));
    expect(thrown(() => connect(load("Host a\n  IdentityFile ${NOPE}/k\n"), "a"))).toMatch(/:2: "\$\{NOPE\}\/k": environment variable NOPE is not set/);
  });
});

describe("issue 13: options that would weaken host key checking are ignored with a warning", () => {
  it("StrictHostKeyChecking no / accept-new and UserKnownHostsFile /dev/null: warned with file and line, host keys still verified", () => {
    const path = file("Host lax\n  StrictHostKeyChecking accept-new\n  UserKnownHostsFile /dev/null\nHost *\n  StrictHostKeyChecking no\n");
    const config = loadSshConfigFile(path, { home });
    const c = connect(config, "lax");
    expect(c.warnings.map((w) => `${w.file}:${w.line}: ${w.message}`)).toEqual([
      `${path}:2: StrictHostKeyChecking accept-new ignored: pgprov always verifies host keys (new ones are accepted only with --accept-new-host-keys) (applies to lax)`,
      `${path}:3: UserKnownHostsFile /dev/null ignored: pgprov always verifies host keys against a known_hosts file (applies to lax)`,
    ]);
    expect(c.userKnownHostsFiles).toMatchObject({ value: [`${home}/.ssh/known_hosts`, `${home}/.ssh/known_hosts2`], from: { kind: "default" } });
    expect(connect(config, "other").warnings).toEqual([expect.objectContaining({ line: 5, message: expect.stringContaining("StrictHostKeyChecking no ignored") })]);
    expect(connect(load("Host *\n  StrictHostKeyChecking yes\n"), "x").warnings).toEqual([]);
  });

  it("ConnectTimeout none does not unbound a connection attempt", () => {
    const c = connect(load("ConnectTimeout none\n"), "x");
    expect(c.connectTimeout).toMatchObject({ value: 10, from: { kind: "default" } });
    expect(c.warnings[0]?.message).toMatch(/ConnectTimeout none ignored/);
  });

  it("ProxyCommand cannot be honoured: refused for the host it applies to, naming file and line; the inventory's proxy_jump wins over it", () => {
    const path = file("Host behind\n  ProxyCommand ssh -W %h:%p gw\nHost direct\n  ProxyCommand none\n");
    const config = loadSshConfigFile(path, { home });
    expect(thrown(() => connect(config, "behind"))).toMatch(new RegExp(`^${path}:2: ProxyCommand applies to behind, and pgprov cannot run it .*use ProxyJump`));
    expect(connect(config, "direct").via).toEqual([]);
    expect(connect(config, "behind", { ssh: { proxy_jump: "gw" } }).via.map((e) => e.name)).toEqual(["gw"]);
  });
});

describe("issue 13: precedence: the host's inventory keys, the inventory's ssh section, ssh config, defaults", () => {
  const config = () =>
    load("Host pg*\n  HostName %h.db.example\n  User cfguser\n  Port 2222\n  IdentityFile ~/.ssh/cfg_key\n  UserKnownHostsFile ~/.ssh/cfg_known\n  ConnectTimeout 20\n  ServerAliveInterval 15\n  IdentitiesOnly yes\n");

  it("each setting from the first place that gives it, saying where", () => {
    const hosts = { pg1: { address: "10.0.0.11", ssh: { user: "hostuser" } }, pg2: {} };
    const ssh = { user: "invuser", private_key: "/inv/key", known_hosts: "/inv/known_hosts" };
    const c1 = connect(config(), "pg1", { hosts, ssh });
    expect(c1.hostname).toEqual({ value: "10.0.0.11", from: { kind: "host", where: "inventory.yml: hosts.pg1.address" } });
    expect(c1.user).toEqual({ value: "hostuser", from: { kind: "host", where: "inventory.yml: hosts.pg1.ssh.user" } });
    expect(c1.port).toMatchObject({ value: 2222, from: { kind: "ssh-config", where: expect.stringMatching(/:4$/) } });
    expect(c1.identityFiles.map((f) => [f.value, f.from.kind])).toEqual([["/inv/key", "inventory"], [`${home}/.ssh/cfg_key`, "ssh-config"]]);
    expect(c1.userKnownHostsFiles).toEqual({ value: ["/inv/known_hosts"], from: { kind: "inventory", where: "inventory.yml: ssh.known_hosts" } });
    expect(c1.globalKnownHostsFiles).toMatchObject({ value: ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"], from: { kind: "default" } });
    expect([c1.connectTimeout.value, c1.serverAliveInterval.value, c1.serverAliveCountMax.value, c1.identitiesOnly.value]).toEqual([20, 15, 3, true]);
    expect(c1.identityAgent).toEqual({ value: "/run/agent.sock", from: { kind: "default", where: "SSH_AUTH_SOCK" } });

    const c2 = connect(config(), "pg2", { hosts, ssh });
    expect([c2.hostname.value, c2.user.value, c2.user.from.kind]).toEqual(["pg2.db.example", "invuser", "inventory"]);

    const bare = connect(undefined, "pg3"); // ssh.config: false
    expect([bare.hostname.value, bare.user.value, bare.port.value, bare.connectTimeout.value]).toEqual(["pg3", "root", 22, 10]);
    expect(bare.identityFiles.map((f) => f.value)).toEqual(["id_ed25519", "id_ecdsa", "id_rsa"].map((k) => `${home}/.ssh/${k}`));
    expect(bare.identityFiles.every((f) => f.from.kind === "default")).toBe(true);
  });

  it("IdentityAgent: none, a path with tokens, or an environment variable", () => {
    expect(connect(load("IdentityAgent none\n"), "a").identityAgent.value).toBeUndefined();
    expect(connect(load("IdentityAgent ~/agent-%r.sock\n"), "a").identityAgent.value).toBe(`${home}/agent-root.sock`);
    expect(connect(load("IdentityAgent $KEYS\n"), "a").identityAgent.value).toBe("/srv/keys");
  });

  it("issue 13 bad input: a port out of range in the inventory names the key and host", () => {
    expect(thrown(() => connect(undefined, "pg1", { ssh: { port: 70000 } }))).toBe("inventory.yml: ssh.port: 70000 is not a port number 1..65535 (host pg1)");
  });
});

describe("issue 13: ProxyJump", () => {
  it("parses [user@]host[:port], [v6]:port, ssh:// and none; refuses bad ports and empty hosts", () => {
    expect(parseProxyJump("ops@bastion:2222,[2001:db8::1]:22,ssh://u@h:1,plain,::1")).toEqual([
      { host: "bastion", user: "ops", port: 2222 },
      { host: "2001:db8::1", port: 22 },
      { host: "h", user: "u", port: 1 },
      { host: "plain" },
      { host: "::1" },
    ]);
    expect(parseProxyJump("NONE")).toEqual([]);
    expect(parseProxyJump("b:99999")).toMatch(/port "99999" is not a port number 1..65535 in ProxyJump "b:99999"/);
    expect(parseProxyJump("u@:22")).toMatch(/no host/);
  });

  it("a chain is resolved hop by hop: the first hop as its own configuration says, each later one through the one before", () => {
    const config = load(
      "Host target\n  ProxyJump edge,ops@inner:2022\nHost edge\n  HostName 198.51.100.1\n  ProxyJump outer\nHost inner\n  ProxyJump ignored-for-later-hops\n  User innercfg\nHost outer\n  User outeruser\n",
    );
    const c = connect(config, "target");
    expect(c.via.map((e) => `${e.name}=${e.user.value}@${e.hostname.value}:${e.port.value}`)).toEqual(["outer=outeruser@outer:22", "edge=root@198.51.100.1:22", "inner=ops@inner:2022"]);
    expect(c.via[2]!.user.from).toEqual({ kind: "proxy-jump", where: `${join(home, ".ssh", `config-${n}`)}:2` });
    expect(describePath(c)).toBe("via outeruser@outer:22 -> root@198.51.100.1:22 -> ops@inner:2022");
  });

  it("issue 13 bad input: a ProxyJump cycle is an error naming the chain", () => {
    const config = load("Host a\n  ProxyJump b\nHost b\n  ProxyJump c\nHost c\n  ProxyJump a\n");
    expect(thrown(() => connect(config, "a"))).toMatch(/^ProxyJump cycle: a -> b -> c -> a \(last hop from .*:6\)$/);
    expect(thrown(() => connect(load("Host self\n  ProxyJump x,self\n"), "self"))).toMatch(/^ProxyJump cycle: self -> self/);
  });

  it("a path longer than 8 jump hosts is refused as a mistake", () => {
    const long = Array.from({ length: 10 }, (_, i) => `h${i}`).join(",");
    expect(thrown(() => connect(load(`Host t\n  ProxyJump ${long}\n`), "t"))).toMatch(/^t: more than 8 jump hosts on the way \(h0 -> .* -> h8 -> t\); ProxyJump from .*:2$/);
  });

  it("ssh.proxy_jump applies to every host but the bastion itself; a bastion from the inventory uses its address; proxy_jump: none opts out", () => {
    const hosts = { pg1: { address: "10.0.0.11" }, pg2: { address: "10.0.0.12" }, pg3: { address: "10.0.0.13", ssh: { proxy_jump: "none" } } };
    const ssh = { proxy_jump: "root@pg1", user: "admin", private_key: "/inv/key", known_hosts: "/inv/kh" };
    const pg2 = connect(undefined, "pg2", { hosts, ssh });
    expect(pg2.via.map((e) => `${e.user.value}@${e.hostname.value}:${e.port.value}`)).toEqual(["root@10.0.0.11:22"]);
    expect(pg2.viaFrom).toEqual({ kind: "inventory", where: "inventory.yml: ssh.proxy_jump" });
    expect(connect(undefined, "pg1", { hosts, ssh }).via).toEqual([]);
    expect(connect(undefined, "pg3", { hosts, ssh }).via).toEqual([]);
    // One bastion connection can serve every host behind it.
    const pg4 = connect(undefined, "pg4", { hosts: { ...hosts, pg4: { address: "10.0.0.14" } }, ssh });
    expect(endpointKey(pg4.via)).toBe(endpointKey(pg2.via));
    expect(endpointKey(pg2.via)).toBe("root@10.0.0.11:22");
  });

  it("a bastion outside the inventory gets the inventory's key, known_hosts and timeout, not its user, port or jump chain", () => {
    const config = load("Host bastion\n  HostName 203.0.113.5\n");
    const c = connect(config, "pg1", { hosts: { pg1: { address: "10.0.0.11" } }, ssh: { user: "admin", port: 2200, proxy_jump: "bastion", private_key: "/inv/key", known_hosts: "/inv/kh", connect_timeout: 5 } });
    const [b] = c.via;
    expect([b!.hostname.value, b!.user.value, b!.port.value, b!.connectTimeout.value]).toEqual(["203.0.113.5", "root", 22, 5]);
    expect(b!.identityFiles.map((f) => f.value)).toEqual(["/inv/key"]);
    expect(b!.userKnownHostsFiles.value).toEqual(["/inv/kh"]);
    expect([c.user.value, c.port.value]).toEqual(["admin", 2200]);
  });

  it("issue 13 bad input: a bad proxy_jump in the inventory names the key", () => {
    expect(thrown(() => connect(undefined, "pg1", { ssh: { proxy_jump: "b:0" } }))).toBe('inventory.yml: ssh.proxy_jump: port "0" is not a port number 1..65535 in ProxyJump "b:0"');
    expect(() => connect(undefined, "pg1", { ssh: { proxy_jump: "b:0" } })).toThrow(PgprovError);
  });
});
