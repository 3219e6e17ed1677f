/**
 * ProxyJump values: `none`, or a comma-separated chain of `[user@]host[:port]` or
 * `ssh://[user@]host[:port]`, as OpenSSH's readconf.c parse_jump() reads them. The first hop is
 * the one connected to first.
 */
import { parsePort } from "./lexer.js";

export interface JumpHop {
  /** Looked up in the ssh configuration like any destination. */
  host: string;
  user?: string;
  port?: number;
}

/** The hops, `[]` for `none`, or a message saying what is wrong. */
export function parseProxyJump(text: string): JumpHop[] | string {
  if (text.toLowerCase() === "none") return [];
  const hops: JumpHop[] = [];
  for (const part of text.split(",")) {
    const hop = parseHop(part);
    if (typeof hop === "string") return `${hop} in ProxyJump "${text}"`;
    hops.push(hop);
  }
  return hops;
}

function parseHop(part: string): JumpHop | string {
  let rest = part;
  if (rest.startsWith("ssh://")) {
    rest = rest.slice("ssh://".length).replace(/\/$/, "");
    if (rest.includes("/")) return `a path is not allowed: "${part}"`;
  }
  let user: string | undefined;
  const at = rest.lastIndexOf("@");
  if (at >= 0) {
    user = rest.slice(0, at);
    rest = rest.slice(at + 1);
    if (user === "") return `an empty user name: "${part}"`;
  }
  let host = rest;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(rest);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2];
  } else if (rest.indexOf(":") !== -1 && rest.indexOf(":") === rest.lastIndexOf(":")) {
    [host, portText] = rest.split(":") as [string, string];
  }
  if (host === "") return `no host: "${part}"`;
  if (/[\s]/.test(host)) return `a host name cannot hold whitespace: "${part}"`;
  const hop: JumpHop = { host };
  if (user !== undefined) hop.user = user;
  if (portText !== undefined) {
    const port = parsePort(portText);
    if (port === undefined) return `port "${portText}" is not a port number 1..65535`;
    hop.port = port;
  }
  return hop;
}

export function formatHop(hop: JumpHop): string {
  const host = hop.host.includes(":") ? `[${hop.host}]` : hop.host;
  return `${hop.user !== undefined ? `${hop.user}@` : ""}${host}${hop.port !== undefined ? `:${hop.port}` : ""}`;
}
