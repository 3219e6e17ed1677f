/**
 * What OpenSSH's configuration says for one destination, as `ssh -G` works it out: the files in
 * order, a `Host` or `Match` line switching the lines below it on or off, an Include read in
 * place (nothing in it applies when it stands in a block that does not apply), and for each
 * option the first value obtained wins, except IdentityFile, which accumulates.
 */
import { userInfo } from "node:os";
import type { JumpHop } from "./jump.js";
import type { ConfigFile, ConfigNode, MatchCriterion, OptionValue, SshConfig, Where } from "./load.js";
import { matchHostLine, matchPatternList } from "./patterns.js";

export interface Found<T> {
  value: T;
  at: Where;
}

/** The options pgprov reads, as the configuration gives them (tokens not yet expanded). */
export interface HostConfig {
  hostname?: Found<string>;
  user?: Found<string>;
  port?: Found<number>;
  /** Every IdentityFile that applied, in order. */
  identityFiles: Found<string>[];
  identitiesOnly?: Found<boolean>;
  identityAgent?: Found<string>;
  /** `[]` for `ProxyJump none`. */
  proxyJump?: Found<JumpHop[]>;
  proxyCommand?: Found<string>;
  userKnownHostsFiles?: Found<string[]>;
  globalKnownHostsFiles?: Found<string[]>;
  /** Seconds; 0 for `none`. */
  connectTimeout?: Found<number>;
  serverAliveInterval?: Found<number>;
  serverAliveCountMax?: Found<number>;
  strictHostKeyChecking?: Found<string>;
  hostKeyAlias?: Found<string>;
  knownHostsCommand?: Found<string>;
}

/**
 * What is already decided before the files are read, as `ssh -l USER -p PORT -o HostName=...`
 * would have it: `Match user` and `Match host` see these, and the files' own values for them
 * are still reported (a caller shows them as overridden).
 */
export interface Preset {
  hostname?: string;
  user?: string;
}

export interface LookupContext {
  preset?: Preset;
  /** The local user name, for `Match localuser` and the default `Match user`. */
  localUser?: string;
}

const FIELDS: Record<string, keyof HostConfig> = {
  hostname: "hostname",
  user: "user",
  port: "port",
  identitiesonly: "identitiesOnly",
  identityagent: "identityAgent",
  proxyjump: "proxyJump",
  proxycommand: "proxyCommand",
  userknownhostsfile: "userKnownHostsFiles",
  globalknownhostsfile: "globalKnownHostsFiles",
  connecttimeout: "connectTimeout",
  serveraliveinterval: "serverAliveInterval",
  serveralivecountmax: "serverAliveCountMax",
  stricthostkeychecking: "strictHostKeyChecking",
  hostkeyalias: "hostKeyAlias",
  knownhostscommand: "knownHostsCommand",
};

export function lookupHost(config: SshConfig, alias: string, context: LookupContext = {}): HostConfig {
  const found: HostConfig = { identityFiles: [] };
  const localUser = context.localUser ?? userInfo().username;
  const preset = context.preset ?? {};

  const matches = (criterion: MatchCriterion): boolean => {
    let result: boolean;
    switch (criterion.name) {
      case "all":
        result = true;
        break;
      case "host": {
        // OpenSSH matches the HostName obtained so far, its %h expanded, or else the alias.
        const hostname = preset.hostname ?? found.hostname?.value.replace(/%(%|h)/g, (_, t: string) => (t === "h" ? alias : "%"));
        result = matchPatternList(hostname ?? alias, criterion.patterns, true) === 1;
        break;
      }
      case "originalhost":
        result = matchPatternList(alias, criterion.patterns, true) === 1;
        break;
      case "user":
        result = matchPatternList(preset.user ?? found.user?.value ?? localUser, criterion.patterns, false) === 1;
        break;
      case "localuser":
        result = matchPatternList(localUser, criterion.patterns, false) === 1;
        break;
    }
    return criterion.negated ? !result : result;
  };

  const set = (keyword: string, value: OptionValue, at: Where): void => {
    if (keyword === "identityfile") {
      found.identityFiles.push({ value: value as string, at });
      return;
    }
    // ProxyJump and ProxyCommand exclude each other, the first one given wins; `ProxyJump none`
    // leaves ProxyCommand free, as in OpenSSH.
    if (keyword === "proxyjump" && (value as JumpHop[]).length > 0 && found.proxyCommand) return;
    if (keyword === "proxycommand" && found.proxyJump && found.proxyJump.value.length > 0) return;
    const field = FIELDS[keyword];
    if (field === undefined || found[field] !== undefined) return;
    (found as unknown as Record<string, Found<OptionValue>>)[field] = { value, at };
  };

  /** One file; `active` is the state of the block it starts in, `never` when it is included from a block that does not apply. */
  const walk = (file: ConfigFile, startActive: boolean, never: boolean): void => {
    let active = startActive;
    for (const node of file.nodes) active = step(node, active, never);
  };

  const step = (node: ConfigNode, active: boolean, never: boolean): boolean => {
    switch (node.kind) {
      case "host":
        return !never && matchHostLine(alias, node.patterns);
      case "match":
        return !never && node.criteria.every(matches);
      case "include":
        for (const file of node.files) walk(file, active, never || !active);
        return active;
      case "option":
        if (active && !never) set(node.keyword, node.value, node.at);
        return active;
    }
  };

  for (const file of config.files) walk(file, true, false);
  return found;
}
