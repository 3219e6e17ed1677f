/**
 * The engine's one way to a host: run a batch of shell sections as one script, in one round trip,
 * and count the round trips. Unit tests give the engine a fake host; a run gives it this, over the
 * host's SSH connection and its one remote shell.
 */
import { lastLines } from "../common/text.js";
import { type HostConnection, RemoteError } from "../transport/ssh.js";
import { buildBatch, newNonce, parseBatch, type Section, type SectionResult } from "./batch.js";

export interface BatchOptions {
  timeoutMs: number;
  /** What the batch is for, for the message when it fails or runs out of time. */
  purpose: string;
  /** When the connection goes away, how long the host lets the batch finish (see Command.letFinish). */
  graceSeconds?: number;
  /** The batch's stderr as it comes (see Command.progress). */
  onStderr?: (text: string) => void;
}

export interface HostIO {
  /** One round trip: every section, in order, each with its own output and exit code. */
  run(sections: Section[], options: BatchOptions): Promise<SectionResult[]>;
  /** Round trips made so far (the recap's `commands`). */
  readonly roundTrips: number;
}

export class SshHostIO implements HostIO {
  constructor(private readonly connection: HostConnection) {}

  get roundTrips(): number {
    return this.connection.commands;
  }

  async run(sections: Section[], options: BatchOptions): Promise<SectionResult[]> {
    const nonce = newNonce();
    const result = await this.connection.run(buildBatch(sections, nonce), options);
    const parsed = parseBatch(result, nonce, sections.length);
    if (result.code !== 0 && parsed.every((r) => r.code === 0 || !r.ran)) {
      // The batch itself failed (no shell, a syntax error, killed): not any one task's fault.
      throw new RemoteError(`host ${this.connection.host.name}: the remote shell failed (exit ${result.code}) while running ${options.purpose}: ${lastLines(result.stderr, 5).join("\n")}`);
    }
    return parsed;
  }
}
