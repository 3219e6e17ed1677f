/**
 * The lab's network: one bridge on the machine holding the lab's first address, and per host a
 * network namespace whose eth0 is one end of a veth pair plugged into the bridge. No NAT and no
 * forwarding: the hosts reach each other and the bridge address (the apt proxy), nothing else.
 */
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { run, sleep } from "./proc.js";
import { labNet, PREFIX_LENGTH, type HostState } from "./state.js";

const ip = (args: string[], host?: string) => run("ip", args, { host, timeoutMs: 15_000 });

export async function createBridge(): Promise<void> {
  const { bridge, bridgeAddress } = labNet();
  await ip(["link", "add", bridge, "type", "bridge"]);
  // Never route what arrives from the hosts, even if the machine forwards between its own
  // interfaces: per-interface forwarding=0 keeps lab traffic on the bridge.
  writeFileSync(`/proc/sys/net/ipv4/conf/${bridge}/forwarding`, "0\n");
  await ip(["addr", "add", `${bridgeAddress}/${PREFIX_LENGTH}`, "dev", bridge]);
  await ip(["link", "set", bridge, "up"]);
}

/**
 * A host's namespace and cable. Run one host at a time: the first `ip netns add` on a machine
 * sets up /run/netns as a shared mount, and two doing it at once can race.
 */
export async function createHostNetwork(h: HostState): Promise<void> {
  const { bridge, bridgeAddress } = labNet();
  if (!existsSync(`/run/netns/${h.netns}`)) await ip(["netns", "add", h.netns], h.name);
  if (!linkExists(h.veth)) {
    await ip(["link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.netns], h.name);
    await ip(["link", "set", h.veth, "master", bridge, "up"], h.name);
  }
  const inNs = (args: string[]) => ip(["-n", h.netns, ...args], h.name);
  await inNs(["addr", "replace", `${h.address}/${PREFIX_LENGTH}`, "dev", "eth0"]);
  await inNs(["link", "set", "lo", "up"]);
  await inNs(["link", "set", "eth0", "up"]);
  await inNs(["route", "replace", "default", "via", bridgeAddress]);
}

export function linkExists(name: string): boolean {
  return existsSync(`/sys/class/net/${name}`);
}

/** The lab's namespaces, by name pattern. */
export function labNetns(): string[] {
  const { netnsPrefix } = labNet();
  try {
    return readdirSync("/run/netns").filter((n) => n.startsWith(netnsPrefix));
  } catch {
    return [];
  }
}

/** The lab's links in the machine's namespace: host veths and the bridge, by name pattern. */
export function labLinks(): string[] {
  const { vethPrefix, bridge } = labNet();
  return readdirSync("/sys/class/net").filter((n) => n.startsWith(vethPrefix) || n === bridge);
}

/** Remove namespaces, veths and the bridge. Processes inside must be gone already. */
export async function removeNetwork(log: (l: string) => void): Promise<void> {
  const { bridge } = labNet();
  for (const ns of labNetns()) {
    await run("ip", ["netns", "delete", ns], { allowFail: true }).then((r) => {
      if (r.code !== 0) log(`ip netns delete ${ns}: ${r.stderr.trim()}`);
    });
  }
  // A namespace is destroyed asynchronously once unreferenced, taking the veth's inner end and
  // with it the pair; delete what is still there rather than wait for it.
  for (const link of labLinks().filter((l) => l !== bridge)) {
    await run("ip", ["link", "delete", link], { allowFail: true });
  }
  if (linkExists(bridge)) await run("ip", ["link", "delete", bridge], { allowFail: true });
  for (let i = 0; i < 50 && labLinks().length > 0; i++) await sleep(100);
}

/**
 * Connect to address:port; true when it accepts (and, with `banner`, when the first bytes it
 * sends start with that, e.g. "SSH-": sshd accepting is not enough, it must answer).
 */
export function probeTcp(address: string, port: number, timeoutMs: number, banner?: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port });
    let got = "";
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.on("error", () => done(false));
    socket.on("connect", () => {
      if (!banner) done(true);
    });
    socket.on("data", (d) => {
      got += d.toString("latin1");
      if (got.length >= banner!.length) done(got.startsWith(banner!));
    });
  });
}
