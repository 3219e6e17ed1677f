/**
 * The keys pgprov offers a server, as OpenSSH offers them: the agent's (unless IdentitiesOnly),
 * then each key file in order. Every key file is read and unlocked once per run, before anything
 * connects, so a wrong passphrase is an error naming the key file, never a host "unreachable".
 * A passphrase comes from the inventory (`{ env }` or `{ file }`), or is asked once on a
 * terminal; without either, a protected key the inventory names is an error, and one that only
 * ssh's configuration or OpenSSH's defaults name is skipped (the agent may hold it), as `ssh`
 * does in batch mode.
 */
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import ssh2, { type ParsedKey } from "ssh2";

// ssh2 is CommonJS: node's ESM loader (tsx, vitest) cannot name its exports, only its default.
const { utils } = ssh2;
import { PgprovError } from "../common/errors.js";
import type { Secret } from "../common/secret.js";
import type { Endpoint, Setting } from "../sshconfig/connection.js";

export interface Passphrase {
  secret: Secret;
  /** Where the inventory gives it, for messages: `inventory.yml: ssh.passphrase`. */
  where: string;
}

export interface Unlocking {
  /** Passphrases the inventory gives, by the key file's absolute path. */
  passphrases?: Map<string, Passphrase>;
  /** Asks for a key's passphrase (on a terminal); undefined when nobody can be asked. */
  ask?: (file: string) => Promise<string | undefined>;
}

/** What pgprov offers a server, in order. */
export type AuthMethod = { type: "agent"; socket: string } | { type: "publickey"; file: string; key: ParsedKey };

type Loaded = { file: string; key: ParsedKey } | { file: string; skipped: string };

export class Identities {
  private readonly loaded = new Map<string, Loaded>();
  /** Each agent socket, and why it cannot be used ("" when it can). */
  private readonly agents = new Map<string, string>();

  constructor(private readonly unlocking: Unlocking = {}) {}

  /** Reads every key file these endpoints may offer, one at a time (a terminal asks one question at a time). */
  async load(endpoints: Endpoint[]): Promise<void> {
    for (const e of endpoints) {
      for (const file of e.identityFiles) if (!this.loaded.has(file.value)) this.loaded.set(file.value, await this.read(file));
      const agent = e.identityAgent.value;
      // ssh2 fails the whole connection when the agent cannot be reached (a stale SSH_AUTH_SOCK);
      // OpenSSH goes on without it, and so does pgprov.
      if (agent && !this.agents.has(agent)) this.agents.set(agent, await agentProblem(agent));
    }
  }

  /** The methods to offer `endpoint`, in order, and the keys skipped (for the message when all fail). */
  methods(endpoint: Endpoint): { methods: AuthMethod[]; skipped: string[] } {
    const methods: AuthMethod[] = [];
    const skipped: string[] = [];
    const agent = endpoint.identityAgent.value;
    if (agent && !endpoint.identitiesOnly.value) {
      const problem = this.agents.get(agent);
      if (problem) skipped.push(`the agent at ${agent} (${problem})`);
      else methods.push({ type: "agent", socket: agent });
    }
    for (const f of endpoint.identityFiles) {
      const loaded = this.loaded.get(f.value);
      if (!loaded) throw new Error(`key ${f.value} was not loaded before connecting`);
      if ("key" in loaded) methods.push({ type: "publickey", file: loaded.file, key: loaded.key });
      else if (loaded.skipped) skipped.push(`${loaded.file} (${loaded.skipped})`);
    }
    return { methods, skipped };
  }

  private async read(file: Setting<string>): Promise<Loaded> {
    const path = file.value;
    const named = file.from.kind === "host" || file.from.kind === "inventory";
    let data: Buffer;
    try {
      data = readFileSync(path);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (named) throw new PgprovError(`${file.from.where}: cannot read the key ${path} (${code})`);
      // OpenSSH skips a missing key file, and the defaults are only candidates.
      return { file: path, skipped: file.from.kind === "default" ? "" : `${code}, from ${file.from.where}` };
    }
    const plain = firstKey(utils.parseKey(data));
    if (!(plain instanceof Error)) return usable(path, plain, file);
    if (!/passphrase|encrypted/i.test(plain.message)) {
      throw new PgprovError(`${path} (from ${file.from.where}) is not a private key pgprov can read: ${plain.message}`);
    }
    const given = this.unlocking.passphrases?.get(path);
    if (given) {
      const key = firstKey(utils.parseKey(data, given.secret.reveal()));
      if (key instanceof Error) throw new PgprovError(`the passphrase from ${given.where} does not unlock the key ${path} (wrong passphrase)`);
      return usable(path, key, file);
    }
    const answer = await this.unlocking.ask?.(path);
    if (answer !== undefined) {
      const key = firstKey(utils.parseKey(data, answer));
      if (key instanceof Error) throw new PgprovError(`the passphrase typed does not unlock the key ${path} (wrong passphrase)`);
      return usable(path, key, file);
    }
    if (named) {
      throw new PgprovError(
        `the key ${path} (${file.from.where}) is protected by a passphrase: give it in the inventory as passphrase: { env: NAME } or { file: PATH } beside private_key, or run pgprov on a terminal to be asked`,
      );
    }
    return { file: path, skipped: "protected by a passphrase, and none given" };
  }
}

/** Why the agent at `socket` cannot be used, or "" when it answers a connection (within 2 s). */
function agentProblem(socket: string): Promise<string> {
  return new Promise((resolvePromise) => {
    const conn = connect(socket);
    const done = (problem: string) => {
      clearTimeout(timer);
      conn.destroy();
      resolvePromise(problem);
    };
    const timer = setTimeout(() => done("no answer within 2 s"), 2_000);
    conn.once("connect", () => done(""));
    conn.once("error", (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
  });
}

function firstKey(parsed: ParsedKey | ParsedKey[] | Error): ParsedKey | Error {
  if (parsed instanceof Error) return parsed;
  return Array.isArray(parsed) ? (parsed[0] ?? new Error("no key in the file")) : parsed;
}

function usable(path: string, key: ParsedKey, file: Setting<string>): Loaded {
  if (!key.isPrivateKey()) throw new PgprovError(`${path} (from ${file.from.where}) is a public key; name the private key file`);
  return { file: path, key };
}

/**
 * Asks for a key's passphrase on the terminal without echoing it; undefined when pgprov does not
 * run on one (cron, CI, a pipe): then nobody can be asked.
 */
export function terminalAsk(): Unlocking["ask"] {
  if (!process.stdin.isTTY || !process.stderr.isTTY) return undefined;
  return (file) =>
    new Promise((resolvePromise) => {
      const stdin = process.stdin;
      process.stderr.write(`Enter passphrase for key ${file}: `);
      stdin.setRawMode(true);
      stdin.resume();
      let typed = "";
      const done = (answer: string | undefined) => {
        stdin.off("data", onData);
        stdin.setRawMode(false);
        stdin.pause();
        process.stderr.write("\n");
        resolvePromise(answer);
      };
      const onData = (chunk: Buffer) => {
        for (const ch of chunk.toString("utf8")) {
          if (ch === "\r" || ch === "\n") return done(typed);
          if (ch === "\u0003" || ch === "\u0004") return done(undefined); // Ctrl-C, Ctrl-D: not answered
          if (ch === "\u007f" || ch === "\b") typed = typed.slice(0, -1);
          else typed += ch;
        }
      };
      stdin.on("data", onData);
    });
}
