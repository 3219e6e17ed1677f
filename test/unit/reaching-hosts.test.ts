/**
 * Issue 13, as the inventory wires it: each host's connection resolved from its own keys, the
 * inventory's ssh section, ssh's configuration (ssh.config), then defaults; bad input stopped at
 * load, naming where; keys unlocked once, a wrong passphrase naming the key file; known_hosts
 * files read together, a host CA named as a limitation. (The configuration's own rules:
 * sshconfig.test.ts.)
 */
import { execFileSync } from "node:child_process";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { once } from "node:events";
import { createServer } from "node:net";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Secret } from "../../src/common/secret.js";
import { loadInventory } from "../../src/inventory/inventory.js";
import { resolveConnection } from "../../src/sshconfig/connection.js";
import { localContext } from "../../src/sshconfig/expand.js";
import { Identities } from "../../src/transport/identities.js";
import { KnownHosts } from "../../src/transport/known-hosts.js";
import { thrown, yamlFiles } from "./yaml-files.js";

const { dir, write, problems } = yamlFiles("reaching", loadInventory);
const HOSTS = "hosts:\n  pg1: { address: 10.0.0.11, role: primary }\n  pg2: { address: 10.0.0.12, role: standby }\n  pg3: { address: 10.0.0.13, role: standby }\n";

function sshConfig(text: string): string {
  const path = join(dir, `ssh_config_${Math.random().toString(36).slice(2)}`);
  writeFileSync(path, text);
  chmodSync(path, 0o600);
  return path;
}


function keyPair(name: string, passphrase = ""): string {
  const path = join(dir, name);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", passphrase, "-C", name, "-f", path]);
  return path;
}

describe("issue 13: precedence: host's inventory keys, then inventory ssh, then ssh config, then defaults", () => {
  it("each host's connection takes each setting from the first place that gives it", () => {
    writeFileSync(join(dir, "inv_key"), "k");
    const config = sshConfig("Host pg*\n  User cfguser\n  Port 2222\n  IdentityFile /keys/cfg\n  ConnectTimeout 7\nHost pg3\n  ProxyJump jump.example\n");
    const file = write(
        `ssh:\n  config: ${config}\n  port: 2200\nhosts:\n  pg1: { address: 10.0.0.11, role: primary, ssh: { user: hostuser, port: 2201, private_key: ./inv_key, proxy_jump: none } }\n` +
          `  pg2: { address: 10.0.0.12, role: standby }\n  pg3: { address: 10.0.0.13, role: standby }\n`,
    );
    const inv = loadInventory(file);
    const [pg1, pg2, pg3] = inv.hosts.map((h) => h.connection);
    expect([pg1!.user.value, pg1!.port.value, pg1!.user.from.kind, pg1!.port.from.kind]).toEqual(["hostuser", 2201, "host", "host"]);
    // The inventory's key first, then the configuration's, as `ssh -i` does.
    expect(pg1!.identityFiles.map((f) => f.value)).toEqual([join(dir, "inv_key"), "/keys/cfg"]);
    expect([pg2!.user.value, pg2!.port.value, pg2!.port.from.where]).toEqual(["cfguser", 2200, `${file}: ssh.port`]);
    expect(pg2!.connectTimeout).toMatchObject({ value: 7, from: { kind: "ssh-config", where: `${config}:5` } });
    expect(pg2!.hostname.value).toBe("10.0.0.12");
    expect(pg2!.via).toEqual([]);
    expect(pg3!.via.map((e) => e.name)).toEqual(["jump.example"]);
  });

  it("ssh.config: false reads no configuration; then pgprov's defaults: root, 22, OpenSSH's default keys and known_hosts files", () => {
    const inv = loadInventory(write(`ssh:\n  config: false\n${HOSTS}`));
    const c = inv.hosts[1]!.connection;
    expect([c.user.value, c.port.value, c.connectTimeout.value]).toEqual(["root", 22, 10]);
    const home = localContext().home;
    expect(c.identityFiles.map((f) => f.value)).toEqual(["id_ed25519", "id_ecdsa", "id_rsa"].map((k) => `${home}/.ssh/${k}`));
    expect(c.globalKnownHostsFiles.value).toEqual(["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"]);
  });

  it("ssh.proxy_jump applies to every host but the bastion itself, which is reached directly", () => {
    const inv = loadInventory(write(`ssh:\n  config: false\n  proxy_jump: root@pg1\n${HOSTS}`));
    expect(inv.hosts.map((h) => h.connection.via.map((e) => `${e.user.value}@${e.hostname.value}:${e.port.value}`))).toEqual([[], ["root@10.0.0.11:22"], ["root@10.0.0.11:22"]]);
  });

  it("StrictHostKeyChecking no is ignored with a warning naming file and line", () => {
    const config = sshConfig("Host *\n  StrictHostKeyChecking no\n");
    const inv = loadInventory(write(`ssh:\n  config: ${config}\n${HOSTS}`));
    expect(inv.ssh.warnings.map((w) => `${w.file}:${w.line}`)).toEqual([`${config}:2`]);
    expect(inv.ssh.warnings[0]!.message).toMatch(/StrictHostKeyChecking no ignored: pgprov always verifies host keys/);
  });
});

describe("issue 13 bad input: named where it is written, before anything connects", () => {
  it("a port out of range, a bad proxy_jump, a passphrase with no key: file:line:col", () => {
    expect(problems(`ssh:\n  config: false\nhosts:\n  pg1: { address: 10.0.0.11, role: primary, ssh: { port: 70000 } }\n`)).toEqual([
      "4:58: hosts.pg1.ssh.port: too big: expected number to be <=65535, found 70000",
    ]);
    expect(problems(`ssh:\n  config: false\n  proxy_jump: "root@:22"\n${HOSTS}`)[0]).toMatch(/^3:15: ssh.proxy_jump: no host: "root@:22"/);
    expect(problems(`ssh:\n  config: false\n  passphrase: { env: X }\n${HOSTS}`)).toEqual(["3:15: ssh.passphrase unlocks ssh.private_key, which is not set"]);
  });

  it("a ProxyJump cycle names the hosts and where the jump is written", () => {
    const file = write(`ssh:\n  config: false\nhosts:\n  pg1: { address: 10.0.0.11, role: primary, ssh: { proxy_jump: pg2 } }\n  pg2: { address: 10.0.0.12, role: standby, ssh: { proxy_jump: pg1 } }\n`);
    expect(thrown(() => loadInventory(file))).toBe(`ProxyJump cycle: pg1 -> pg2 -> pg1 (last hop from ${file}: hosts.pg2.ssh.proxy_jump)`);
  });

  it("an unparseable ssh config line names the file and line", () => {
    const config = sshConfig("Host pg*\n  Port twenty\n");
    expect(thrown(() => loadInventory(write(`ssh:\n  config: ${config}\n${HOSTS}`)))).toMatch(new RegExp(`^${config}:2:\\d+: .*Port`));
  });

  it("a user from ssh config that pg_ident.conf could not take is refused, naming the line", () => {
    const config = sshConfig("Host pg2\n  User \"a b\"\n");
    expect(thrown(() => loadInventory(write(`ssh:\n  config: ${config}\n${HOSTS}`)))).toBe(`${config}:2: "a b" is not a user name pgprov can use (letters, digits, _ and -) (host pg2)`);
  });
});

// Unlocking a key runs bcrypt's KDF: seconds on a loaded machine.
describe("issue 13: keys", { timeout: 60_000 }, () => {
  const endpoint = (files: { value: string; kind: "inventory" | "default" | "ssh-config" }[], agent?: string) => {
    const c = resolveConnection({ name: "h", inventoryFile: "inv.yml", hosts: { h: { address: "10.0.0.1" } }, local: localContext() });
    return { ...c, identityFiles: files.map((f) => ({ value: f.value, from: { kind: f.kind, where: `${f.kind} place` } })), identityAgent: { value: agent, from: { kind: "default" as const, where: "SSH_AUTH_SOCK" } } };
  };

  it("the agent is offered together with key files, agent first; missing default keys are skipped quietly", async () => {
    const plain = keyPair("plain");
    const socket = join(dir, "agent.sock");
    const server = createServer(() => {}).listen(socket);
    await once(server, "listening");
    try {
      const ids = new Identities();
      const e = endpoint([{ value: plain, kind: "inventory" }, { value: join(dir, "no_such_id_rsa"), kind: "default" }], socket);
      await ids.load([e]);
      const { methods, skipped } = ids.methods(e);
      expect(methods.map((m) => (m.type === "agent" ? `agent ${m.socket}` : `key ${m.file}`))).toEqual([`agent ${socket}`, `key ${plain}`]);
      expect(skipped).toEqual([]);
    } finally {
      server.close();
    }
  });

  it("a stale agent socket (SSH_AUTH_SOCK of an agent that is gone) is skipped, as OpenSSH skips it, not a failure of every host", async () => {
    const plain = keyPair("plain2");
    const ids = new Identities();
    const e = endpoint([{ value: plain, kind: "inventory" }], join(dir, "gone.sock"));
    await ids.load([e]);
    expect(ids.methods(e)).toEqual({ methods: [expect.objectContaining({ type: "publickey", file: plain })], skipped: [`the agent at ${join(dir, "gone.sock")} (ENOENT)`] });
  });

  it("a passphrase from the inventory unlocks the key; a wrong one is an error naming the key file, never 'unreachable'", async () => {
    const locked = keyPair("locked", "right horse");
    const e = endpoint([{ value: locked, kind: "inventory" }]);
    const right = new Identities({ passphrases: new Map([[locked, { secret: new Secret("right horse", "env P"), where: "inv.yml: ssh.passphrase" }]]) });
    await right.load([e]);
    expect(right.methods(e).methods.map((m) => m.type)).toEqual(["publickey"]);
    const wrong = new Identities({ passphrases: new Map([[locked, { secret: new Secret("wrong horse", "env P"), where: "inv.yml: ssh.passphrase" }]]) });
    await expect(wrong.load([e])).rejects.toThrow(`the passphrase from inv.yml: ssh.passphrase does not unlock the key ${locked} (wrong passphrase)`);
  });

  it("asked once on a terminal for each protected key, however many hosts use it; without a terminal a named key is an error, a default one skipped", async () => {
    const locked = keyPair("asked", "typed");
    const asked: string[] = [];
    const ids = new Identities({ ask: async (f) => (asked.push(f), "typed") });
    await ids.load([endpoint([{ value: locked, kind: "ssh-config" }]), endpoint([{ value: locked, kind: "ssh-config" }])]);
    expect(asked).toEqual([locked]);
    await expect(new Identities().load([endpoint([{ value: locked, kind: "inventory" }])])).rejects.toThrow(/is protected by a passphrase: give it in the inventory as passphrase: \{ env: NAME \}/);
    const quiet = new Identities();
    const e = endpoint([{ value: locked, kind: "default" }]);
    await quiet.load([e]);
    expect(quiet.methods(e)).toEqual({ methods: [], skipped: [`${locked} (protected by a passphrase, and none given)`] });
  });
});

describe("issue 13: known_hosts", () => {
  const key = (name: string) => {
    const path = keyPair(`hk_${name}`);
    const [type, b64] = readFileSync(`${path}.pub`, "utf8").split(" ");
    return { line: `${type} ${b64}`, blob: Buffer.from(b64!, "base64") };
  };
  const a = key("a");
  const b = key("b");

  it("the user's files and the system's are read together; a new key goes to the user's first file", () => {
    const user = join(dir, "kh_user");
    const system = join(dir, "kh_system");
    writeFileSync(system, `10.0.0.5 ${a.line}\n10.0.0.6 ${a.line}\n`);
    writeFileSync(user, `10.0.0.6 ${b.line}\n`);
    const kh = new KnownHosts([user, join(dir, "kh_user2")], [system]);
    expect(kh.check("10.0.0.5", a.blob)).toEqual({ kind: "known" });
    expect(kh.check("10.0.0.5", b.blob)).toEqual({ kind: "changed", lines: [{ file: system, line: 1 }] });
    expect(kh.check("10.0.0.6", b.blob)).toEqual({ kind: "known" });
    kh.add("10.0.0.7", a.blob);
    expect(new KnownHosts([user], []).check("10.0.0.7", a.blob)).toEqual({ kind: "known" });
  });

  it("@cert-authority for a host is reported, so the error can name ssh2's limitation", () => {
    const file = join(dir, "kh_ca");
    writeFileSync(file, `@cert-authority *.db.example ${a.line}\n`);
    expect(new KnownHosts([file], []).check("pg1.db.example", b.blob)).toEqual({ kind: "unknown", authorities: [{ file, line: 1 }] });
  });
});
