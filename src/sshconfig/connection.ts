/**
 * How pgprov reaches one host: each setting taken from the first place that gives it, in this
 * order: the host's own inventory keys (`hosts.NAME.ssh`, `hosts.NAME.address`), the inventory's
 * `ssh` section, OpenSSH's configuration, then defaults. Each setting says where it came from,
 * for `pgprov ping` to show. The inventory plays the part of ssh's command line (`-l`, `-p`,
 * `-i`, `-J`): it wins over the configuration, and `Match user` sees its user.
 *
 * Jump hosts are resolved the way `ssh -J` does: every hop is itself looked up in the
 * configuration; the first hop of a chain is reached the way its own configuration says (maybe
 * through further jump hosts), each later hop through the one before it. Pure: the
 * configuration is read beforehand (load.ts), and nothing here touches the network.
 */
import { isIP } from "node:net";
import { PgprovError, type SourceProblem } from "../common/errors.js";
import { expandPath, type Local, type TokenValues } from "./expand.js";
import { formatHop, parseProxyJump, type JumpHop } from "./jump.js";
import type { SshConfig, Where } from "./load.js";
import { lookupHost, type Found, type HostConfig } from "./lookup.js";

/** The keys of the inventory that reach a host, for one host or for all (`ssh:`). */
export interface InventorySsh {
  user?: string;
  port?: number;
  /** Already resolved against the inventory's directory. */
  private_key?: string;
  /** `none`, or `[user@]host[:port]`, comma-separated for a chain. */
  proxy_jump?: string;
  /** Already resolved against the inventory's directory. */
  known_hosts?: string;
  /** Seconds. */
  connect_timeout?: number;
}

export interface Layer {
  keys: InventorySsh;
  /** Where these keys are written, for origins and errors: `inventory.yml: hosts.pg1.ssh`. */
  where: string;
}

export interface InventoryHost {
  address?: string;
  ssh?: InventorySsh;
}

export interface ConnectionInput {
  /** The inventory's name for the host: what is looked up in the ssh configuration. */
  name: string;
  /** The inventory's file, for origins: `inventory.yml`. */
  inventoryFile: string;
  /** All hosts of the inventory: the target, and any jump host that is one of them. */
  hosts: Record<string, InventoryHost>;
  /** The inventory's `ssh` section. */
  ssh?: InventorySsh;
  /** Undefined when the inventory says `ssh.config: false`. */
  config?: SshConfig;
  local: Local;
  /** pgprov's own defaults where OpenSSH's differ. */
  defaults?: Partial<Defaults>;
}

export interface Defaults {
  /** pgprov has always defaulted to root; OpenSSH would take the local user. */
  user: string;
  port: number;
  /** Tried when nothing names a key, in this order (missing ones are skipped). */
  identityFiles: string[];
  userKnownHostsFiles: string[];
  globalKnownHostsFiles: string[];
  /** Seconds: a connection attempt is always bounded, unlike OpenSSH's default. */
  connectTimeout: number;
  serverAliveInterval: number;
  serverAliveCountMax: number;
}

export const DEFAULTS: Defaults = {
  user: "root",
  port: 22,
  identityFiles: ["~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa"],
  userKnownHostsFiles: ["~/.ssh/known_hosts", "~/.ssh/known_hosts2"],
  globalKnownHostsFiles: ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"],
  connectTimeout: 10,
  serverAliveInterval: 0,
  serverAliveCountMax: 3,
};

export type OriginKind = "host" | "inventory" | "ssh-config" | "proxy-jump" | "default";

export interface Setting<T> {
  value: T;
  from: { kind: OriginKind; where: string };
}

/** One SSH connection: to the host itself, or to a jump host on the way. */
export interface Endpoint {
  /** The name looked up in the ssh configuration (the inventory's name, or a ProxyJump host). */
  name: string;
  hostname: Setting<string>;
  user: Setting<string>;
  port: Setting<number>;
  /** In the order to offer them; paths expanded. From defaults, a missing file is no error. */
  identityFiles: Setting<string>[];
  identitiesOnly: Setting<boolean>;
  /** The agent's socket, undefined for none. */
  identityAgent: Setting<string | undefined>;
  userKnownHostsFiles: Setting<string[]>;
  globalKnownHostsFiles: Setting<string[]>;
  /** The name host keys are looked up under in known_hosts, when not the host name. */
  hostKeyAlias?: Setting<string>;
  connectTimeout: Setting<number>;
  serverAliveInterval: Setting<number>;
  serverAliveCountMax: Setting<number>;
}

export interface Connection extends Endpoint {
  /** The jump hosts, the first one connected to first; empty for a direct connection. */
  via: Endpoint[];
  /** Where the jump chain came from, when there is one. */
  viaFrom?: Setting<string>["from"];
  /** Options read but not honoured, each naming its file and line. */
  warnings: SourceProblem[];
}

/** OpenSSH has no bound; pgprov refuses longer paths as a configuration mistake. */
export const MAX_JUMP_HOPS = 8;

export function resolveConnection(input: ConnectionInput): Connection {
  const warnings: SourceProblem[] = [];
  const resolver = new Resolver(input, { ...DEFAULTS, ...input.defaults }, warnings);
  const connection = resolver.destination(input.name, {}, []);
  return { ...connection, warnings: dedupe(warnings) };
}

/** A stable key for a connection and the path to it: equal keys can share one SSH connection. */
export function endpointKey(path: Endpoint[]): string {
  return path.map((e) => `${e.user.value}@${bracket(e.hostname.value)}:${e.port.value}`).join(" -> ");
}

/** `direct`, or `via root@bastion:22 -> ...`, for `pgprov ping`. */
export function describePath(connection: Connection): string {
  return connection.via.length === 0 ? "direct" : `via ${endpointKey(connection.via)}`;
}

function bracket(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

function dedupe(problems: SourceProblem[]): SourceProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${p.file}:${p.line}:${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** The command-line-like part of a hop: `user@host:port` in a ProxyJump, and where it was written. */
interface HopSpec {
  user?: string;
  port?: number;
  where?: string;
  /** Later hops of a chain are reached through the one before, whatever their own ProxyJump says. */
  noJump?: boolean;
}

const at = (w: Where): string => `${w.file}:${w.line}`;
const fromConfig = <T>(f: Found<T>): Setting<T> => ({ value: f.value, from: { kind: "ssh-config", where: at(f.at) } });

/** A ProxyJump chain that comes back to a host on it. */
export class ProxyJumpCycle extends PgprovError {
  override readonly name = "ProxyJumpCycle";
  /** The hosts of the loop itself: the same cycle met from another of its hosts, or from behind it, has the same. */
  readonly members: string[];
  constructor(chain: string[], name: string, where: string | undefined) {
    super(`ProxyJump cycle: ${[...chain, name].join(" -> ")}${where ? ` (last hop from ${where})` : ""}`);
    this.members = chain.slice(chain.indexOf(name));
  }
}

class Resolver {
  constructor(
    private readonly input: ConnectionInput,
    private readonly defaults: Defaults,
    private readonly warnings: SourceProblem[],
  ) {}

  /** `chain`: the names being resolved on the way here, for cycles. */
  destination(name: string, spec: HopSpec, chain: string[]): Connection {
    if (chain.includes(name)) {
      throw new ProxyJumpCycle(chain, name, spec.where);
    }
    const inventoryHost = this.input.hosts[name];
    const isTarget = chain.length === 0;
    // The inventory's ssh section speaks of the database hosts: its user, port and jump chain are
    // not a bastion's unless that bastion is one of the inventory's hosts. Its key, known_hosts
    // and timeout are this machine's and apply to every connection pgprov makes.
    const shared = this.input.ssh ?? {};
    const general: InventorySsh =
      isTarget || inventoryHost ? { ...shared } : { private_key: shared.private_key, known_hosts: shared.known_hosts, connect_timeout: shared.connect_timeout };
    if (general.proxy_jump !== undefined) general.proxy_jump = trimSelf(general.proxy_jump, name, inventoryHost?.address);
    const layers: { kind: OriginKind; layer: Layer }[] = [];
    if (inventoryHost?.ssh) layers.push({ kind: "host", layer: { keys: inventoryHost.ssh, where: `${this.input.inventoryFile}: hosts.${name}.ssh` } });
    layers.push({ kind: "inventory", layer: { keys: general, where: `${this.input.inventoryFile}: ssh` } });

    const first = <K extends keyof InventorySsh>(key: K): Setting<NonNullable<InventorySsh[K]>> | undefined => {
      for (const { kind, layer } of layers) {
        const value = layer.keys[key];
        if (value !== undefined) return { value: value as NonNullable<InventorySsh[K]>, from: { kind, where: `${layer.where}.${key}` } };
      }
      return undefined;
    };

    const address: Setting<string> | undefined =
      inventoryHost?.address !== undefined ? { value: inventoryHost.address, from: { kind: "host", where: `${this.input.inventoryFile}: hosts.${name}.address` } } : undefined;
    const specUser: Setting<string> | undefined = spec.user !== undefined ? { value: spec.user, from: { kind: "proxy-jump", where: spec.where ?? "ProxyJump" } } : undefined;
    const specPort: Setting<number> | undefined = spec.port !== undefined ? { value: spec.port, from: { kind: "proxy-jump", where: spec.where ?? "ProxyJump" } } : undefined;
    const presetUser = specUser ?? first("user");

    const found: HostConfig = this.input.config
      ? lookupHost(this.input.config, name, { preset: { hostname: address?.value, user: presetUser?.value }, localUser: this.input.local.user })
      : { identityFiles: [] };
    this.securityWarnings(name, found);

    const hostname: Setting<string> = address ?? (found.hostname ? { ...fromConfig(found.hostname), value: hostnameOf(found.hostname.value, name) } : { value: lowerName(name), from: { kind: "default", where: "the host's name" } });
    const user = presetUser ?? (found.user ? fromConfig(found.user) : { value: this.defaults.user, from: { kind: "default", where: "pgprov's default" } });
    const inventoryPort = first("port");
    if (inventoryPort && !(Number.isInteger(inventoryPort.value) && inventoryPort.value >= 1 && inventoryPort.value <= 65535)) {
      throw new PgprovError(`${inventoryPort.from.where}: ${inventoryPort.value} is not a port number 1..65535 (host ${name})`);
    }
    const port = specPort ?? inventoryPort ?? (found.port ? fromConfig(found.port) : { value: this.defaults.port, from: { kind: "default", where: "OpenSSH's default" } });
    const hostKeyAlias = found.hostKeyAlias ? fromConfig(found.hostKeyAlias) : undefined;
    const values: TokenValues = { hostname: hostname.value, alias: name, user: user.value, port: port.value, hostKeyAlias: hostKeyAlias?.value };
    const expand = (s: Setting<string>): Setting<string> => ({ ...s, value: expandPath(s.value, s.from.where, this.input.local, values) });
    const expandList = (s: Setting<string[]>): Setting<string[]> => ({ ...s, value: s.value.map((v) => expandPath(v, s.from.where, this.input.local, values)) });

    // As with `ssh -i KEY`: the inventory's key comes first, the configuration's are added after it.
    const inventoryKey = first("private_key");
    const identityFiles = [...(inventoryKey ? [inventoryKey] : []), ...found.identityFiles.map(fromConfig)].map(expand);
    if (identityFiles.length === 0) identityFiles.push(...this.defaults.identityFiles.map((f) => expand({ value: f, from: { kind: "default", where: "OpenSSH's default keys" } })));

    const knownHosts = first("known_hosts");
    let userKnownHostsFiles: Setting<string[]> | undefined = knownHosts ? { ...knownHosts, value: [knownHosts.value] } : undefined;
    if (!userKnownHostsFiles && found.userKnownHostsFiles) {
      const files = found.userKnownHostsFiles.value.filter((f) => f !== "/dev/null");
      if (files.length > 0) userKnownHostsFiles = fromConfig({ ...found.userKnownHostsFiles, value: files });
    }
    userKnownHostsFiles ??= { value: this.defaults.userKnownHostsFiles, from: { kind: "default", where: "OpenSSH's default" } };
    const globalKnownHostsFiles = found.globalKnownHostsFiles ? fromConfig(found.globalKnownHostsFiles) : { value: this.defaults.globalKnownHostsFiles, from: { kind: "default" as const, where: "OpenSSH's default" } };

    const timeout = first("connect_timeout") ?? (found.connectTimeout && found.connectTimeout.value > 0 ? fromConfig(found.connectTimeout) : undefined);
    const endpoint: Endpoint = {
      name,
      hostname,
      user,
      port,
      identityFiles,
      identitiesOnly: found.identitiesOnly ? fromConfig(found.identitiesOnly) : { value: false, from: { kind: "default", where: "OpenSSH's default" } },
      identityAgent: this.agent(found.identityAgent, expand),
      userKnownHostsFiles: expandList(userKnownHostsFiles),
      globalKnownHostsFiles: expandList(globalKnownHostsFiles),
      connectTimeout: timeout ?? { value: this.defaults.connectTimeout, from: { kind: "default", where: "pgprov's default" } },
      serverAliveInterval: found.serverAliveInterval ? fromConfig(found.serverAliveInterval) : { value: this.defaults.serverAliveInterval, from: { kind: "default", where: "OpenSSH's default" } },
      serverAliveCountMax: found.serverAliveCountMax ? fromConfig(found.serverAliveCountMax) : { value: this.defaults.serverAliveCountMax, from: { kind: "default", where: "OpenSSH's default" } },
    };
    if (hostKeyAlias) endpoint.hostKeyAlias = hostKeyAlias;

    const jump = spec.noJump ? undefined : this.jumpChain(first("proxy_jump"), found, name);
    const via: Endpoint[] = [];
    if (jump) {
      const next = [...chain, name];
      jump.hops.forEach((hop, i) => {
        const hopSpec: HopSpec = { user: hop.user, port: hop.port, where: jump.from.where, noJump: i > 0 };
        const reached = this.destination(hop.host, hopSpec, next);
        via.push(...reached.via, stripVia(reached));
        if (via.length > MAX_JUMP_HOPS) {
          throw new PgprovError(`${name}: more than ${MAX_JUMP_HOPS} jump hosts on the way (${[...via.map((e) => e.name), name].join(" -> ")}); ProxyJump from ${jump.from.where}`);
        }
      });
    }
    const connection: Connection = { ...endpoint, via, warnings: [] };
    if (jump && via.length > 0) connection.viaFrom = jump.from;
    return connection;
  }

  private jumpChain(inventory: Setting<string> | undefined, found: HostConfig, name: string): { hops: JumpHop[]; from: Setting<string>["from"] } | undefined {
    if (inventory) {
      const hops = parseProxyJump(inventory.value);
      if (typeof hops === "string") throw new PgprovError(`${inventory.from.where}: ${hops}`);
      return { hops, from: inventory.from };
    }
    if (found.proxyCommand && found.proxyCommand.value.toLowerCase() !== "none" && !(found.proxyJump && found.proxyJump.value.length > 0)) {
      throw new PgprovError(`${at(found.proxyCommand.at)}: ProxyCommand applies to ${name}, and pgprov cannot run it (it makes its own connections); use ProxyJump, or proxy_jump in the inventory`);
    }
    if (found.proxyJump) return { hops: found.proxyJump.value, from: fromConfig(found.proxyJump).from };
    return undefined;
  }

  private agent(configured: Found<string> | undefined, expand: (s: Setting<string>) => Setting<string>): Setting<string | undefined> {
    const env = this.input.local.env.SSH_AUTH_SOCK;
    const fromEnv: Setting<string | undefined> = { value: env === "" ? undefined : env, from: { kind: "default", where: "SSH_AUTH_SOCK" } };
    if (!configured) return fromEnv;
    if (configured.value === "SSH_AUTH_SOCK") return { ...fromEnv, from: fromConfig(configured).from };
    if (configured.value.toLowerCase() === "none") return { value: undefined, from: fromConfig(configured).from };
    // `IdentityAgent $NAME` names an environment variable holding the socket's path.
    if (/^\$[A-Za-z_][A-Za-z0-9_]*$/.test(configured.value)) {
      return { value: this.input.local.env[configured.value.slice(1)] || undefined, from: fromConfig(configured).from };
    }
    return expand(fromConfig(configured));
  }

  /** Options that would weaken host key checking are ignored; each says so, once per line. */
  private securityWarnings(name: string, found: HostConfig): void {
    const warn = (f: Found<unknown>, message: string) => this.warnings.push({ ...f.at, message: `${message} (applies to ${name})` });
    const shkc = found.strictHostKeyChecking;
    if (shkc && ["no", "false", "off", "accept-new"].includes(shkc.value)) {
      warn(shkc, `StrictHostKeyChecking ${shkc.value} ignored: pgprov always verifies host keys (new ones are accepted only with --accept-new-host-keys)`);
    }
    if (found.userKnownHostsFiles?.value.includes("/dev/null")) {
      warn(found.userKnownHostsFiles, "UserKnownHostsFile /dev/null ignored: pgprov always verifies host keys against a known_hosts file");
    }
    if (found.knownHostsCommand) warn(found.knownHostsCommand, "KnownHostsCommand ignored: pgprov reads host keys from known_hosts files only");
    if (found.connectTimeout?.value === 0) warn(found.connectTimeout, "ConnectTimeout none ignored: pgprov always bounds a connection attempt");
  }
}

function stripVia(c: Connection): Endpoint {
  const { via: _via, viaFrom: _from, warnings: _warnings, ...endpoint } = c;
  return endpoint;
}

/** HostName's `%h` is the name given; a name (not an address) is lower-cased, as OpenSSH does. */
function hostnameOf(configured: string, alias: string): string {
  return lowerName(configured.replace(/%(%|h)/g, (_, t: string) => (t === "h" ? alias : "%")));
}

function lowerName(host: string): string {
  return isIP(host) ? host : host.toLowerCase();
}

/**
 * `ssh.proxy_jump` applies to every host but the jump hosts themselves: an inventory host named
 * in the chain is reached through the hops before it, not through itself.
 */
function trimSelf(chain: string, name: string, address: string | undefined): string {
  const hops = parseProxyJump(chain);
  if (typeof hops === "string") return chain;
  const self = hops.findIndex((h) => h.host === name || (address !== undefined && h.host === address));
  if (self < 0) return chain;
  return self === 0 ? "none" : hops.slice(0, self).map(formatHop).join(",");
}
