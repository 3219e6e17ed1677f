/**
 * OpenSSH's expansions of a path in its configuration (IdentityFile, UserKnownHostsFile,
 * IdentityAgent): `~/` first, then `${VAR}` and %-tokens, as ssh.c does before using them.
 */
import { createHash } from "node:crypto";
import { hostname as localHostname, userInfo } from "node:os";
import { PgprovError } from "../common/errors.js";

/** What the machine running pgprov contributes to expansions; tests give their own. */
export interface Local {
  user: string;
  home: string;
  /** gethostname(), for %l (and %L, its first label). */
  hostname: string;
  uid: number;
  env: Record<string, string | undefined>;
}

export function localContext(): Local {
  const info = userInfo();
  return { user: info.username, home: info.homedir, hostname: localHostname(), uid: info.uid, env: process.env };
}

/** The destination's side of the tokens. */
export interface TokenValues {
  /** %h: the host name connected to (after HostName). */
  hostname: string;
  /** %n: the name as given (the alias). */
  alias: string;
  /** %r */
  user: string;
  /** %p */
  port: number;
  /** %k: HostKeyAlias, or the alias. */
  hostKeyAlias?: string;
}

/**
 * `~` and `~/...` as OpenSSH's tilde expansion reads them: `home` is the home directory of the user
 * running pgprov. Any other path unchanged; undefined for `~user`, which pgprov does not look up.
 */
export function homePath(path: string, home: string): string | undefined {
  if (path === "~" || path.startsWith("~/")) return home + path.slice(1);
  return path.startsWith("~") ? undefined : path;
}

/** The message for a `~user` path, after where it is written. */
export function otherHomeRefused(text: string): string {
  return `"${text}": "~user" paths are not supported; write the path in full`;
}

/** `place` names where `text` was written, for errors: `FILE:LINE` or an inventory key. */
export function expandPath(text: string, place: string, local: Local, values: TokenValues): string {
  const home = homePath(text, local.home);
  if (home === undefined) throw new PgprovError(`${place}: ${otherHomeRefused(text)}`);
  const path = home.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
    const value = local.env[name];
    if (value === undefined) throw new PgprovError(`${place}: "${text}": environment variable ${name} is not set`);
    return value;
  });
  return expandTokens(path, place, local, values, text);
}

/** %-tokens: the set OpenSSH 9 gives IdentityFile (UserKnownHostsFile's is the same less %C). */
export function expandTokens(text: string, place: string, local: Local, values: TokenValues, written = text): string {
  const shortHost = local.hostname.split(".")[0]!;
  const tokens: Record<string, () => string> = {
    "%": () => "%",
    C: () => createHash("sha1").update(`${local.hostname}${values.hostname}${values.port}${values.user}`).digest("hex"),
    d: () => local.home,
    h: () => values.hostname,
    i: () => String(local.uid),
    k: () => values.hostKeyAlias ?? values.alias,
    L: () => shortHost,
    l: () => local.hostname,
    n: () => values.alias,
    p: () => String(values.port),
    r: () => values.user,
    u: () => local.user,
  };
  return text.replace(/%(.?)/g, (whole, key: string) => {
    const token = tokens[key];
    if (!token) throw new PgprovError(`${place}: "${written}": unknown token ${whole === "%" ? "% at the end" : whole} (known: %% %C %d %h %i %k %L %l %n %p %r %u)`);
    return token();
  });
}
