/**
 * What switchover, failover and rejoin share: the cluster's hosts over SSH (each host's pgprov
 * lock held), SQL through the pg client, shell that must succeed, bounded waits that say what
 * they waited for, and timed steps printed as they happen.
 */
import { lastLines } from "../common/text.js";
import { PgprovError, withoutHostPrefix } from "../common/errors.js";
import { FACTS_SCRIPT, parseFacts } from "../engine/facts.js";
import { debianCluster, postgresVersion } from "../postgres/debian.js";
import type { Host, Inventory } from "../inventory/inventory.js";
import { shellQuote } from "../common/shell.js";
import { closeAll, connectAll, type Reached } from "../transport/fleet.js";
import { HostPostgres, type Row } from "../transport/postgres.js";
import { type HostConnection, RemoteError } from "../transport/ssh.js";
import { type DataDirectory, dataDirectoryProbe, FENCE_MARKER, parseDataDirectory } from "../postgres/data-directory.js";
import type { EndOfWal } from "./timeline.js";
import type { ClusterEmit, OperationName, OperationPlan } from "./events.js";

export type Paths = ReturnType<typeof debianCluster>;

/**
 * TEST-ONLY fault injection: with PGPROV_TEST_CRASH_AT=OPERATION:POINT in the environment, pgprov
 * SIGKILLs itself when it reaches that point (as a crash or a power cut of the operator's machine
 * would), so the end-to-end tests can prove what an interrupted operation leaves on the hosts.
 * Nobody else has a reason to set it. Points: switchover:promoted.
 */
export function crashPoint(point: string): void {
  if (process.env.PGPROV_TEST_CRASH_AT === point) process.kill(process.pid, "SIGKILL");
}

export interface OperationOptions {
  acceptNewHostKeys?: boolean;
  /** Every check runs, and the plan they chose is reported; nothing changes, and no lock is taken. */
  dryRun?: boolean;
  /**
   * Asked once the checks have chosen the plan, before anything changes (the CLI asks a person
   * at a terminal); false stops the operation with nothing changed. Undefined: no question.
   */
  confirm?: (plan: OperationPlan) => Promise<boolean>;
  /** Steps, the plan, and the cluster playbook's events. */
  emit: ClusterEmit;
}

export class ClusterOperation {
  private readonly started = performance.now();
  private readonly postgres = new Map<string, Promise<HostPostgres>>();
  private readonly paths = new Map<string, Paths>();

  private constructor(
    readonly inventory: Inventory,
    private readonly reached: Reached<Host>[],
    private readonly name: OperationName | undefined,
    private readonly options: Omit<OperationOptions, "acceptNewHostKeys">,
  ) {}

  /**
   * Connects to every host; an operation that changes them (not a dry run) holds each host's lock.
   * `name` undefined: hosts only read (check), no steps reported.
   */
  static async open(inventory: Inventory, name: OperationName | undefined, options: OperationOptions): Promise<ClusterOperation> {
    const exclusive = name !== undefined && !options.dryRun;
    const reached = await connectAll(inventory.hosts, inventory.ssh, { acceptNewHostKeys: options.acceptNewHostKeys ?? false, exclusive });
    return new ClusterOperation(inventory, reached, name, options);
  }

  /** Reports a step with the time since the operation started. */
  step(message: string): void {
    if (this.name) this.options.emit({ type: "step", operation: this.name, seconds: Math.round(this.elapsed() * 100) / 100, message });
  }

  /**
   * The checks have run and chosen the steps: they are reported, with the facts they were chosen
   * by. A dry run ends here (false); otherwise the caller carries them out, once confirmed when
   * a confirmation is asked for.
   */
  async proceed(facts: OperationPlan["facts"], steps: string[]): Promise<boolean> {
    const plan: OperationPlan = { operation: this.name!, facts, steps };
    this.options.emit({ type: "plan", dryRun: this.options.dryRun === true, ...plan });
    if (this.options.dryRun) return false;
    if (this.options.confirm && !(await this.options.confirm(plan))) throw new PgprovError(`${plan.operation} not confirmed: nothing was changed`);
    return true;
  }

  elapsed(): number {
    return (performance.now() - this.started) / 1000;
  }

  /** The open connections, for an apply run inside this operation (it holds the locks). */
  get connections(): Reached<Host>[] {
    return this.reached;
  }

  reachable(host: Host): boolean {
    return this.reached.some((r) => r.host === host && "connection" in r);
  }

  /** Why a host cannot be reached, for messages. */
  unreachableReason(host: Host): string {
    const r = this.reached.find((x) => x.host === host);
    return r && "error" in r ? r.error.detail : "reachable";
  }

  connection(host: Host): HostConnection {
    const r = this.reached.find((x) => x.host === host);
    if (!r || !("connection" in r)) throw new PgprovError(`${host.name} cannot be reached: ${this.unreachableReason(host)}`);
    return r.connection;
  }

  /** Runs a script that must succeed; the error names the host, what it was for, and stderr. */
  async shell(host: Host, script: string, purpose: string, timeoutMs = 120_000): Promise<string> {
    const r = await this.connection(host).run(script, { timeoutMs, purpose });
    if (r.code !== 0) {
      throw new PgprovError(`host ${host.name}: ${purpose} failed (exit ${r.code})\n  command: ${script.split("\n")[0]}\n  stderr: ${lastLines(r.stderr.trim(), 5).join("\n          ")}`);
    }
    return r.stdout;
  }

  async sql(host: Host, query: string): Promise<Row[]> {
    let client = this.postgres.get(host.name);
    if (!client) {
      client = HostPostgres.connect(this.connection(host), { port: this.inventory.postgresql.port });
      client.catch(() => this.postgres.delete(host.name));
      this.postgres.set(host.name, client);
    }
    return (await client).query(query);
  }

  /** SQL that may fail because the server is down: undefined then. */
  async trySql(host: Host, query: string): Promise<Row[] | undefined> {
    const r = await this.trySqlResult(host, query);
    return "rows" in r ? r.rows : undefined;
  }

  /** SQL that may fail because the server is down or refuses: the rows, or why not. */
  async trySqlResult(host: Host, query: string): Promise<{ rows: Row[] } | { error: string }> {
    try {
      return { rows: await this.sql(host, query) };
    } catch (e) {
      if (e instanceof RemoteError || e instanceof PgprovError) return { error: withoutHostPrefix(e.message) };
      throw e;
    }
  }

  /** Forget a host's SQL connection (its server is about to stop or restart). */
  async dropSql(host: Host): Promise<void> {
    const client = this.postgres.get(host.name);
    this.postgres.delete(host.name);
    await client?.then((c) => c.close()).catch(() => {});
  }

  async pathsOf(host: Host): Promise<Paths> {
    let paths = this.paths.get(host.name);
    if (!paths) {
      const facts = parseFacts(await this.shell(host, FACTS_SCRIPT, "reading the host's facts"));
      paths = debianCluster(postgresVersion(this.inventory.postgresql.version, facts));
      this.paths.set(host.name, paths);
    }
    return paths;
  }

  async dataDirectory(host: Host): Promise<DataDirectory> {
    const paths = await this.pathsOf(host);
    return parseDataDirectory(await this.shell(host, dataDirectoryProbe(paths.data_directory, paths.bin_directory), "reading the data directory"));
  }

  /**
   * Where a server's WAL ends: from SQL while it runs (exact for a server in recovery; a writable
   * one may write on), else pg_control's latest checkpoint, exact only after a clean shutdown as
   * a primary ("shut down"): after a crash, or a standby's restartpoint, its WAL may go on past it.
   */
  async endOfWal(host: Host): Promise<EndOfWal | undefined> {
    const [r] = (await this.trySql(
      host,
      "select pg_is_in_recovery() as in_recovery, (case when pg_is_in_recovery() then greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) else pg_current_wal_insert_lsn() end)::text as lsn",
    )) ?? [];
    if (r?.lsn) return { lsn: String(r.lsn), atLeast: r.in_recovery !== true };
    const d = await this.dataDirectory(host);
    return d.checkpointLsn ? { lsn: d.checkpointLsn, atLeast: d.state !== "shut down" } : undefined;
  }

  /** pg_controldata's "Latest checkpoint location" (after a clean shutdown: the end of its WAL). */
  async checkpointLsn(host: Host): Promise<string> {
    const paths = await this.pathsOf(host);
    const out = await this.shell(
      host,
      `LC_ALL=C ${shellQuote(paths.bin_directory)}/pg_controldata ${shellQuote(paths.data_directory)} | sed -n 's/^Latest checkpoint location: *//p'`,
      "reading pg_control",
    );
    return out.trim();
  }

  async stopServer(host: Host): Promise<void> {
    const service = shellQuote((await this.pathsOf(host)).service);
    await this.dropSql(host);
    await this.shell(host, `systemctl stop ${service}`, `stopping PostgreSQL`, 180_000);
  }

  async startServer(host: Host): Promise<void> {
    await this.shell(host, `systemctl start ${shellQuote((await this.pathsOf(host)).service)}`, "starting PostgreSQL", 180_000);
  }

  /**
   * Marks a stopped server's data directory as a standby's: however it starts again, it comes
   * back read-only. `systemctl disable` cannot promise that on Debian: postgresql-common's
   * generator starts every cluster whose start.conf says "auto" at boot, enabled or not.
   * `fencedBy`: a failover's fence also writes FENCE_MARKER with this note, first and in the same
   * script (never standby.signal without it), so that apply refuses the host until `pgprov rejoin`
   * has rewound or cloned it.
   */
  async writeStandbySignal(host: Host, fencedBy?: string): Promise<void> {
    const data = shellQuote((await this.pathsOf(host)).data_directory);
    const marker = fencedBy === undefined ? "" : `${data}/${FENCE_MARKER}`;
    const script = [
      ...(fencedBy === undefined ? [] : [`printf '%s\\n' ${shellQuote(fencedBy)} | runuser -u postgres -- tee ${marker} >/dev/null`]),
      `runuser -u postgres -- touch ${data}/standby.signal`,
      `sync ${marker} ${data}/standby.signal ${data}`,
    ].join(" && ");
    await this.shell(host, script, fencedBy === undefined ? "writing standby.signal" : `fencing: writing ${FENCE_MARKER} and standby.signal`);
  }

  /** Undoes writeStandbySignal, for an operation that stops before anything was promoted. */
  async removeStandbySignal(host: Host): Promise<void> {
    const data = shellQuote((await this.pathsOf(host)).data_directory);
    await this.shell(host, `rm -f ${data}/standby.signal && sync ${data}`, "removing standby.signal");
  }

  /** Polls until `check` is true; the error says what was waited for and what was seen last. */
  async waitFor(what: string, timeoutMs: number, check: () => Promise<{ done: boolean; seen: string }>): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let seen = "";
    for (;;) {
      const r = await check();
      if (r.done) return;
      seen = r.seen;
      if (Date.now() >= deadline) throw new PgprovError(`gave up after ${timeoutMs / 1000} s waiting for ${what} (last seen: ${seen})`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  async promote(host: Host): Promise<void> {
    const rows = await this.sql(host, "select pg_promote(true, 60) as promoted");
    if (rows[0]?.promoted !== true) throw new PgprovError(`host ${host.name}: pg_promote did not finish within 60 s`);
  }

  async close(): Promise<void> {
    await Promise.all([...this.postgres.values()].map((p) => p.then((c) => c.close()).catch(() => {})));
    closeAll(this.reached);
  }
}
