/**
 * Issue 13: reaching real servers the way OpenSSH does. pg2 and pg3 accept SSH only from pg1's
 * address (sshd's AllowUsers), so everything on them goes through pg1 as a jump host: a
 * bootstrap, a no-op rerun (measured against a direct one), a switchover; then an ssh config
 * file (Host pg*, User, Port 2222, IdentityFile, ProxyJump), a key with a passphrase, an agent
 * holding the only key, and a non-root sudo user, all through the bastion on the one cluster.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { type Lab, type LabHost, labDown, labExec, labUp } from "../lab/lab.js";
import { eventually, inventoryCopy, inventoryRoles, liveRoles, pgprov, recapOf } from "./helpers.js";

let lab: Lab;
let hosts: LabHost[];
/** The cluster's inventory, through pg1: bootstrapped once, shared by every test. */
let inventory: string;
let pg1: LabHost;
/** No agent and no key of the machine's user: each test names what it offers. */
const NO_AGENT = { SSH_AUTH_SOCK: "" };
const ALLOW = (users: string[]) => `AllowUsers ${users.map((u) => `${u}@${pg1.address}`).join(" ")}`;

/** pg2 and pg3 take SSH only from pg1's address, for these users. */
async function onlyFromBastion(users: string[] | undefined): Promise<void> {
  for (const h of hosts.slice(1)) {
    const line = users ? `echo '${ALLOW(users)}' >> /etc/ssh/sshd_config; ` : "";
    const r = await labExec(h, `sed -i '/^AllowUsers/d' /etc/ssh/sshd_config; ${line}sshd -t && systemctl reload ssh`);
    expect(r.code, r.stderr).toBe(0);
  }
}

/** A new key pair beside inventory `file`, its public key accepted by `user` on every host. */
async function authorizedKey(file: string, name: string, passphrase = "", user = "root"): Promise<string> {
  const path = join(dirname(file), name);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", passphrase, "-C", name, "-f", path]);
  const pub = readFileSync(`${path}.pub`, "utf8").trim();
  for (const h of hosts) {
    const home = user === "root" ? "/root" : `/home/${user}`;
    const r = await labExec(h, `echo '${pub}' >> ${home}/.ssh/authorized_keys`);
    expect(r.code, r.stderr).toBe(0);
  }
  return path;
}

/**
 * A copy of the cluster's inventory (its roles as they are now, its replication password) in a
 * directory of its own, with another ssh section.
 */
function withSsh(ssh: Record<string, unknown>): string {
  return inventoryCopy(lab, (doc) => {
    const current = parse(readFileSync(inventory, "utf8")) as Record<string, unknown>;
    for (const key of ["apt", "postgresql", "replication", "hosts"]) doc.set(key, current[key]);
    doc.set("ssh", ssh);
  });
}

/** sshd's accepted logins on `host` so far (its journal). */
async function acceptedLogins(host: LabHost): Promise<number> {
  const r = await labExec(host, "journalctl -u ssh --no-pager -o cat | grep -c '^Accepted publickey' || true");
  return Number(r.stdout.trim());
}

beforeAll(async () => {
  lab = await labUp({ hosts: 3 });
  hosts = lab.hosts;
  pg1 = hosts[0]!;
  inventory = inventoryCopy(lab, (doc) => {
    doc.set("apt", { proxy: lab.aptProxy });
    doc.set("postgresql", { clients: [lab.subnet] });
    doc.setIn(["ssh", "proxy_jump"], "root@pg1");
    doc.setIn(["ssh", "config"], false);
  });
  // One replication password for every copy of the inventory, so a copy's run changes nothing.
  const secret = join(dirname(inventory), "replication.secret");
  writeFileSync(secret, "e2e-replication-password\n", { mode: 0o600 });
  const text = readFileSync(inventory, "utf8");
  writeFileSync(inventory, `${text}replication:\n  password: { file: ${secret} }\n`);
  await onlyFromBastion(["root", "deploy"]);
});
afterAll(async () => {
  await labDown();
});

describe("issue 13: reaching hosts through a bastion, ssh config, keys and agents", () => {
  it("issue 13: without the jump host, apply fails fast naming the refusal, and changes nothing", async () => {
    const direct = withSsh({ private_key: "./id_ed25519", known_hosts: "./known_hosts", config: false });
    const started = Date.now();
    const r = await pgprov(["apply", direct], { env: NO_AGENT });
    expect(r.code).toBe(1);
    expect(Date.now() - started).toBeLessThan(60_000);
    for (const h of hosts.slice(1)) {
      expect(r.stdout).toContain(`host ${h.name} (${h.address}): the server at ${h.address}:22 refused user root with key ${join(dirname(direct), "id_ed25519")}`);
    }
    expect((await labExec(pg1, "dpkg-query -W postgresql-common 2>/dev/null")).code).not.toBe(0);
  });

  it("issue 13: a full bootstrap, a no-op rerun and a switchover through pg1 as the jump host, one connection to it", async () => {
    const boot = await pgprov(["apply", inventory], { env: NO_AGENT });
    expect(boot.code, boot.stdout + boot.stderr).toBe(0);

    const before = await acceptedLogins(pg1);
    const ping = await pgprov(["ping", inventory], { env: NO_AGENT });
    expect(ping.code, ping.stdout).toBe(0);
    expect(ping.stdout).toMatch(new RegExp(`^pg2 +${hosts[1]!.address} +ok .* via root@${pg1.address}:22 +as root with key \\S+id_ed25519$`, "m"));
    // pg1 as a host and pg1 as the jump host of pg2 and pg3: two logins, not three.
    await eventually("sshd on pg1 to log the logins", async () => (await acceptedLogins(pg1)) - before >= 2, 10_000);
    await new Promise((r) => setTimeout(r, 1000));
    expect((await acceptedLogins(pg1)) - before).toBe(2);

    // The no-op rerun, through the bastion and (sshd opened for a moment) direct.
    const t0 = performance.now();
    const viaBastion = await pgprov(["apply", inventory, "--json"], { env: NO_AGENT });
    const viaSeconds = (performance.now() - t0) / 1000;
    expect(viaBastion.code, viaBastion.stderr).toBe(0);
    // The same inventory file (so the same run state, read ahead alike) without its jump host.
    await onlyFromBastion(undefined);
    const jumping = readFileSync(inventory, "utf8");
    writeFileSync(inventory, jumping.replace(/^  proxy_jump: .*\n/m, ""));
    const t1 = performance.now();
    const directRun = await pgprov(["apply", inventory, "--json"], { env: NO_AGENT });
    const directSeconds = (performance.now() - t1) / 1000;
    writeFileSync(inventory, jumping);
    await onlyFromBastion(["root", "deploy"]);
    expect(directRun.code, directRun.stderr).toBe(0);
    const via = recapOf(viaBastion);
    const straight = recapOf(directRun);
    for (const h of hosts) {
      expect(via[h.name]!.changed, viaBastion.stdout.split("\n").filter((l) => l.includes('"status":"changed"')).join("\n")).toBe(0);
      expect(via[h.name]!.commands).toBeLessThanOrEqual(straight[h.name]!.commands + 1);
    }
    console.log(
      `issue 13 bench: no-op rerun via pg1 ${viaSeconds.toFixed(2)} s, round trips ${hosts.map((h) => `${h.name} ${via[h.name]!.commands}`).join(", ")}; ` +
        `direct ${directSeconds.toFixed(2)} s, round trips ${hosts.map((h) => `${h.name} ${straight[h.name]!.commands}`).join(", ")}`,
    );

    const switchover = await pgprov(["switchover", inventory, "--to", "pg2"], { env: NO_AGENT });
    expect(switchover.code, switchover.stdout + switchover.stderr).toBe(0);
    expect(inventoryRoles(inventory)).toEqual({ pg1: "standby", pg2: "primary", pg3: "standby" });
    expect(await liveRoles(hosts)).toEqual(inventoryRoles(inventory));
  });

  it("issue 13: a jump host that cannot be reached is named as the cause for each host behind it", async () => {
    const file = withSsh({ private_key: "./id_ed25519", known_hosts: "./known_hosts", proxy_jump: "root@pg1:2299", config: false });
    const r = await pgprov(["ping", file], { env: NO_AGENT });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^pg1 .* ok /m);
    for (const h of hosts.slice(1)) {
      expect(r.stdout).toMatch(new RegExp(`^${h.name} .*UNREACHABLE +via root@${pg1.address}:2299: behind jump host pg1, which cannot be reached`, "m"));
    }
    // The jump host's own failure once (see reaching-more.test.ts).
    expect(r.stdout).toMatch(new RegExp(`^jump host pg1 \\(${pg1.address}:2299, user root\\): connection refused at ${pg1.address}:2299.*; not reached behind it: pg2, pg3$`, "m"));
  });

  it("issue 13 bad input: a jump host with an unknown key is named as the jump host, before any change", async () => {
    const file = withSsh({ private_key: "./id_ed25519", known_hosts: "./known_hosts", proxy_jump: "root@pg1", config: false });
    const kh = join(dirname(file), "known_hosts");
    writeFileSync(kh, readFileSync(kh, "utf8").split("\n").filter((l) => !l.startsWith(`${pg1.address} `)).join("\n"));
    const r = await pgprov(["ping", file], { env: NO_AGENT });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`^jump host pg1 \\(${pg1.address}:22, user root\\): unknown host key ssh-ed25519 SHA256:.*; not reached behind it: pg2, pg3$`, "m"));
  });

  it("issue 13: a key with a passphrase from { env }; a wrong passphrase is an error naming the key file", async () => {
    const file = withSsh({ private_key: "./locked_key", passphrase: { env: "PGPROV_E2E_PASSPHRASE" }, known_hosts: "./known_hosts", proxy_jump: "root@pg1", config: false });
    const key = await authorizedKey(file, "locked_key", "correct horse");
    const ok = await pgprov(["ping", file], { env: { ...NO_AGENT, PGPROV_E2E_PASSPHRASE: "correct horse" } });
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout.match(new RegExp(`as root with key ${key}$`, "gm"))).toHaveLength(3);

    const wrong = await pgprov(["ping", file], { env: { ...NO_AGENT, PGPROV_E2E_PASSPHRASE: "wrong horse" } });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain(`the passphrase from ${file}: ssh.passphrase does not unlock the key ${key} (wrong passphrase)`);
    expect(wrong.stdout + wrong.stderr).not.toMatch(/UNREACHABLE|wrong horse|correct horse/);
  });

  it("issue 13: an ssh-agent holding the only accepted key, with no private_key", async () => {
    const file = withSsh({ known_hosts: "./known_hosts", proxy_jump: "root@pg1", config: false });
    const key = await authorizedKey(file, "agent_key");
    const socket = join(dirname(file), "agent.sock");
    const agent: ChildProcess = spawn("ssh-agent", ["-D", "-a", socket], { stdio: "ignore" });
    try {
      await eventually("the agent's socket", async () => existsSync(socket), 10_000);
      execFileSync("ssh-add", ["-q", key], { env: { ...process.env, SSH_AUTH_SOCK: socket } });
      // The key file is gone: only the agent has it.
      execFileSync("rm", ["-f", key]);
      const r = await pgprov(["apply", file], { env: { SSH_AUTH_SOCK: socket } });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const ping = await pgprov(["ping", file], { env: { SSH_AUTH_SOCK: socket } });
      expect(ping.stdout.match(new RegExp(`as root with agent \\(${socket}\\)$`, "gm"))).toHaveLength(3);
    } finally {
      agent.kill("SIGTERM");
    }
  });

  it("issue 13: a non-root user with passwordless sudo, through the bastion", async () => {
    for (const h of hosts) {
      const r = await labExec(
        h,
        "id deploy >/dev/null 2>&1 || useradd -m -s /bin/sh deploy; install -d -m 700 -o deploy -g deploy /home/deploy/.ssh; " +
          "echo 'deploy ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/deploy; chmod 440 /etc/sudoers.d/deploy",
      );
      expect(r.code, r.stderr).toBe(0);
    }
    const file = withSsh({ user: "deploy", private_key: "./deploy_key", known_hosts: "./known_hosts", proxy_jump: "pg1", config: false });
    await authorizedKey(file, "deploy_key", "", "deploy");
    for (const h of hosts) await labExec(h, "chown deploy:deploy /home/deploy/.ssh/authorized_keys && chmod 600 /home/deploy/.ssh/authorized_keys");
    const r = await pgprov(["apply", file], { env: NO_AGENT });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const status = await pgprov(["status", file], { env: NO_AGENT });
    expect(status.code, status.stdout + status.stderr).toBe(0);
    const ping = await pgprov(["ping", file], { env: NO_AGENT });
    expect(ping.stdout).toMatch(new RegExp(`^pg3 .* via deploy@${pg1.address}:22 +as deploy with key ${dirname(file)}/deploy_key$`, "m"));
  });

  it("issue 13: an ssh config file with Host pg*, User, Port 2222, IdentityFile; the inventory names only the hosts", async () => {
    for (const h of hosts) {
      const r = await labExec(h, "grep -q '^Port 2222' /etc/ssh/sshd_config || printf 'Port 22\\nPort 2222\\n' >> /etc/ssh/sshd_config; sshd -t && systemctl restart ssh");
      expect(r.code, r.stderr).toBe(0);
    }
    const file = withSsh({ config: "./ssh_config" });
    const dir = dirname(file);
    // OpenSSH records a host on another port than 22 as [address]:port.
    const lines = readFileSync(lab.knownHostsPath, "utf8").trim().split("\n").map((l) => l.replace(/^(\S+)/, "[$1]:2222"));
    writeFileSync(join(dir, "known_hosts_2222"), `${lines.join("\n")}\n`);
    writeFileSync(
      join(dir, "ssh_config"),
      `Host pg*\n  User root\n  Port 2222\n  IdentityFile ${dir}/id_ed25519\n  UserKnownHostsFile ${dir}/known_hosts_2222\n  IdentityAgent none\nHost pg2 pg3\n  ProxyJump pg1\n`,
      { mode: 0o600 },
    );
    const r = await pgprov(["apply", file], { env: NO_AGENT });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const ping = await pgprov(["ping", file], { env: NO_AGENT });
    expect(ping.code, ping.stdout).toBe(0);
    expect(ping.stdout).toMatch(new RegExp(`pg2 .* via root@${pg1.address}:2222 +as root with key ${dir}/id_ed25519`));
  });
});
