/**
 * SQL on a host's PostgreSQL, with the `pg` client, through the SSH connection: sshd connects to
 * the server's Unix socket, so port 5432 need not be open to the machine running pgprov, and no
 * password is involved. The server authenticates the SSH user by peer, mapped to the `postgres`
 * role by the pg_ident map pgprov installs ("pgprov"). Typed rows, not parsed psql output.
 */
import type { Client, QueryResult } from "pg";
import type { ClientChannel } from "ssh2";
import { RemoteError, type HostConnection } from "./ssh.js";

export interface PostgresTarget {
  port: number;
  /** Bound on connecting and on each query. */
  timeoutMs?: number;
}

export type Row = Record<string, unknown>;

const CLOSE_TIMEOUT_MS = 5_000;

export class HostPostgres {
  private constructor(private readonly host: string, private readonly client: Client) {}

  static async connect(connection: HostConnection, target: PostgresTarget): Promise<HostPostgres> {
    const timeoutMs = target.timeoutMs ?? 15_000;
    const socket = `/var/run/postgresql/.s.PGSQL.${target.port}`;
    const channel = await connection.openUnixSocket(socket, timeoutMs);
    const { default: pg } = await import("pg");
    const client = new pg.Client({
      user: "postgres",
      database: "postgres",
      stream: () => asSocket(channel) as never,
      connectionTimeoutMillis: timeoutMs,
      query_timeout: timeoutMs,
      application_name: "pgprov",
    });
    // An error after connecting (the channel dies) must not crash the process.
    client.on("error", () => {});
    try {
      await client.connect();
    } catch (e) {
      channel.close();
      throw new RemoteError(`host ${connection.host.name}: cannot connect to PostgreSQL on ${socket}: ${(e as Error).message}`);
    }
    return new HostPostgres(connection.host.name, client);
  }

  /** Several statements in one round trip (the simple query protocol): one result each. */
  async queries(sql: string): Promise<Row[][]> {
    try {
      const result = (await this.client.query(sql)) as QueryResult | QueryResult[];
      return (Array.isArray(result) ? result : [result]).map((r) => r.rows as Row[]);
    } catch (e) {
      throw new RemoteError(`host ${this.host}: SQL failed: ${(e as Error).message}`);
    }
  }

  async query(sql: string, values: unknown[] = []): Promise<Row[]> {
    try {
      return (await this.client.query(sql, values)).rows as Row[];
    } catch (e) {
      throw new RemoteError(`host ${this.host}: SQL failed: ${(e as Error).message}`);
    }
  }

  /** Bounded: on a connection already lost, pg's end() may wait for an end that never comes. */
  async close(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolvePromise) => (timer = setTimeout(resolvePromise, CLOSE_TIMEOUT_MS)));
    await Promise.race([this.client.end().catch(() => {}), bound]);
    clearTimeout(timer);
  }
}

/** What pg expects of its socket, on top of the SSH channel (already connected). */
function asSocket(channel: ClientChannel): ClientChannel {
  return Object.assign(channel, {
    setNoDelay: () => channel,
    setKeepAlive: () => channel,
    connect: () => {
      process.nextTick(() => channel.emit("connect"));
      return channel;
    },
  });
}
