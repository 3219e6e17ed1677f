/**
 * The lab and the SSH transport, end to end: real hosts (systemd, sshd, own addresses) booted on
 * this machine, reached by `pgprov ping`, with host keys verified against known_hosts.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Lab, labDown, labExec, labLeftovers, labUp } from "../lab/lab.js";
import { labNet } from "../lab/lib/state.js";
import { inventoryCopy, pgprov } from "./helpers.js";

let lab: Lab;

beforeAll(async () => {
  lab = await labUp({ hosts: 2 });
});
afterAll(async () => {
  await labDown();
});

describe("lab and transport", () => {
  it("pgprov ping reaches every host, which runs systemd", async () => {
    const r = await pgprov(["ping", lab.inventoryPath]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines).toHaveLength(2);
    for (const [i, line] of lines.entries()) {
      expect(line).toMatch(new RegExp(`^pg${i + 1} +${lab.hosts[i]!.address.replace(/\./g, "\\.")} +ok +Debian GNU/Linux 12 \\(bookworm\\) +systemd running +rtt [0-9.]+ ms +direct +as root with .+$`));
    }
  });

  it("leaves the machine room for many hosts' systemd: inotify instances are not Debian's 128", () => {
    // At 128 (Debian's default, shared by every host: all run as the machine's root), about 40
    // hosts of labs side by side spent them, and the next host's systemd exited at boot, silently.
    expect(Number(readFileSync("/proc/sys/fs/inotify/max_user_instances", "utf8"))).toBeGreaterThanOrEqual(8192);
  });

  it("gives each host its own name, and the hosts reach each other", async () => {
    const [pg1, pg2] = lab.hosts;
    expect((await labExec(pg1!, "hostname")).stdout.trim()).toBe("pg1");
    expect((await labExec(pg2!, "hostname")).stdout.trim()).toBe("pg2");
    const reach = await labExec(pg1!, `timeout 5 bash -c 'echo > /dev/tcp/${pg2!.address}/22' && echo reached`);
    expect(reach.stdout.trim()).toBe("reached");
  });

  it("reports JSON per host", async () => {
    const r = await pgprov(["ping", lab.inventoryPath, "--json"]);
    const rows = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(rows.map((x) => [x.host, x.reachable, x.systemd])).toEqual([
      ["pg1", true, "running"],
      ["pg2", true, "running"],
    ]);
  });

  it("works as a non-root user through passwordless sudo", async () => {
    const inventory = inventoryCopy(lab, (doc) => doc.setIn(["ssh", "user"], "deploy"));
    const r = await pgprov(["ping", inventory]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/pg2 .* ok /);
  });

  it("says so when sudo wants a password", async () => {
    await labExec(
      lab.hosts[0]!,
      "useradd -m -s /bin/bash asks && echo 'asks ALL=(ALL) ALL' > /etc/sudoers.d/asks && install -d -o asks -m 700 /home/asks/.ssh && install -o asks -m 600 /root/.ssh/authorized_keys /home/asks/.ssh/",
    );
    const inventory = inventoryCopy(lab, (doc) => doc.setIn(["ssh", "user"], "asks"));
    const r = await pgprov(["ping", inventory]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^pg1 .* UNREACHABLE +sudo asks for a password; pgprov needs passwordless sudo/m);
  });

  it("refuses a host whose key differs from known_hosts, and still reaches the others", async () => {
    const inventory = inventoryCopy(lab);
    const knownHosts = join(dirname(inventory), "known_hosts");
    // Replace pg1's recorded keys with a freshly made key: what a man in the middle would present.
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dirname(inventory), "other")]);
    const otherKey = readFileSync(join(dirname(inventory), "other.pub"), "utf8").split(" ").slice(0, 2).join(" ");
    const lines = readFileSync(knownHosts, "utf8").split("\n").filter((l) => l && !l.startsWith(`${lab.hosts[0]!.address} `));
    writeFileSync(knownHosts, [...lines, `${lab.hosts[0]!.address} ${otherKey}`, ""].join("\n"));

    const r = await pgprov(["ping", inventory, "--accept-new-host-keys"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^pg1 +\S+ +UNREACHABLE +host key mismatch: the server presented ssh-ed25519 SHA256:\S+, which differs/m);
    expect(r.stdout).toMatch(/^pg2 .* ok /m);
    // A changed key is never recorded, not even with --accept-new-host-keys.
    expect(readFileSync(knownHosts, "utf8")).toBe([...lines, `${lab.hosts[0]!.address} ${otherKey}`, ""].join("\n"));
  });

  it("refuses an unknown host, naming its fingerprint and the flag, and records it when told to", async () => {
    const inventory = inventoryCopy(lab);
    const knownHosts = join(dirname(inventory), "known_hosts");
    writeFileSync(knownHosts, "");
    const refused = await pgprov(["ping", inventory]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/^pg1 .* UNREACHABLE +unknown host key ssh-ed25519 SHA256:\S+, not in .*known_hosts; .* --accept-new-host-keys/m);

    const accepted = await pgprov(["ping", inventory, "--accept-new-host-keys"]);
    expect(accepted.code).toBe(0);
    expect(accepted.stdout).toMatch(/recorded the host key of pg1: ssh-ed25519 SHA256:/);
    // The recorded keys are the hosts' real ones: OpenSSH's own client accepts them.
    const ssh = execFileSync(
      "ssh",
      ["-i", lab.privateKeyPath, "-o", `UserKnownHostsFile=${knownHosts}`, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", `root@${lab.hosts[1]!.address}`, "hostname"],
      { encoding: "utf8" },
    );
    expect(ssh.trim()).toBe("pg2");
    expect((await pgprov(["ping", inventory])).code).toBe(0);
  });

  it("names the reason when a host does not answer", async () => {
    const inventory = inventoryCopy(lab, (doc) => doc.setIn(["ssh", "port"], 2222));
    const r = await pgprov(["ping", inventory]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`^pg1 .* UNREACHABLE +connection refused at ${lab.hosts[0]!.address.replace(/\./g, "\\.")}:2222`, "m"));
  });

  it("down leaves no namespace, veth, bridge, mount or process behind", async () => {
    await labDown();
    expect(await labLeftovers()).toEqual([]);
    // Only this lab's names: other test files' labs may be up beside it.
    const net = labNet();
    const netns = execFileSync("ip", ["netns", "list"], { encoding: "utf8" }).split("\n");
    expect(netns.filter((l) => l.startsWith(net.netnsPrefix))).toEqual([]);
    const links = execFileSync("ip", ["-br", "link"], { encoding: "utf8" }).split("\n");
    expect(links.filter((l) => l.startsWith(net.vethPrefix) || l.startsWith(`${net.bridge} `))).toEqual([]);
    expect(readFileSync("/proc/self/mounts", "utf8")).not.toContain(`${lab.dir}/hosts/`);
  });
});
