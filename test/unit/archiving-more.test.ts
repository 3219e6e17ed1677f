/**
 * Issue 11, second reading: archiving and scheduled backups, the pure parts (inventory, rendered
 * configuration, check's judging). The hosts' side is in test/e2e/archiving-more.test.ts.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { chmodSync, writeFileSync } from "node:fs";
import { archiverQuery } from "../../src/cluster/backup-config.js";
import { ensureReplicationPassword, loadInventory } from "../../src/inventory/inventory.js";
import { hostVariables } from "../../src/cluster/variables.js";
import { render } from "../../src/playbook/template.js";
import { yamlFiles } from "./yaml-files.js";
import { type BackupStatus, parseDroppedWal } from "../../src/cluster/backup.js";
import { backupFindings, type HostHealth, judgeHealth } from "../../src/cluster/check.js";
import { checksSchema } from "../../src/inventory/schema.js";
import { oldArchiveWarning } from "../../src/cluster/apply.js";

const { write, problems } = yamlFiles("archiving-more", loadInventory);
const HOSTS = `hosts:\n  pg1: { address: 10.0.0.11, role: primary }\n  pg2: { address: 10.0.0.12, role: standby }\n  pg3: { address: 10.0.0.13, role: standby }\n  bk: { address: 10.0.0.20, role: backup }\n`;
const bookworm = { os_id: "debian", os_version: "12", os_codename: "bookworm", arch: "amd64", hostname: "x", cpus: 2, memory_mb: 1024 };
const trixie = { ...bookworm, os_version: "13", os_codename: "trixie" };
const template = (name: string) => readFileSync(join(import.meta.dirname, "../../templates", name), "utf8");
const playbook = readFileSync(join(import.meta.dirname, "../../playbooks/cluster.yml"), "utf8");

/** `text`: the inventory, or `{ file }` one written before (its .pgprov/ state kept). */
function rendered(text: string | { file: string }, name: string, file: string, facts = bookworm, factsOf?: (n: string) => typeof bookworm | undefined) {
  const inv = loadInventory(typeof text === "string" ? write(text) : text.file);
  ensureReplicationPassword(inv);
  const host = [...inv.hosts, ...(inv.backup?.host ? [inv.backup.host] : [])].find((h) => h.name === name)!;
  return render(template(file), hostVariables(inv, host, facts, { reclone: [], ...(factsOf ? { factsOf } : {}) }), file);
}

describe("issue 11 item 1: a repository outage does not fill the primary's disk; a quiet primary still archives", () => {
  it("issue 11 item 1: archive-push-queue-max (backup.archive_queue_max, 4GB by default) on the database hosts; archive_timeout (60 s by default)", () => {
    expect(rendered(HOSTS, "pg1", "pgbackrest.conf.hbs")).toMatch(/^archive-push-queue-max=4294967296$/m);
    expect(rendered(`backup: { archive_queue_max: 1GB, archive_timeout: 30 }\n${HOSTS}`, "pg1", "pgbackrest.conf.hbs")).toMatch(/^archive-push-queue-max=1073741824$/m);
    expect(rendered(HOSTS, "pg1", "pgprov.conf.hbs")).toMatch(/^archive_timeout = 60$/m);
    expect(rendered(`backup: { archive_timeout: 0 }\n${HOSTS}`, "pg1", "pgprov.conf.hbs")).not.toMatch(/archive_timeout/);
  });

  it("issue 11 item 1: a queue below four segments, and an archive_timeout of 1 s, are refused at file:line:col", () => {
    expect(problems(`backup: { archive_queue_max: 16MB, archive_timeout: 1 }\n${HOSTS}`)).toEqual([
      expect.stringMatching(/^1:30: backup\.archive_queue_max: at least 64MB/),
      expect.stringMatching(/^1:53: backup\.archive_timeout: seconds between 10 and 86400, or 0/),
    ]);
  });

  it("issue 11 item 1: WAL pgBackRest dropped is read from its log, and check says the archive has a gap until a backup is taken after it", () => {
    const line = "2026-11-27 18:01:02.345 P00   WARN: dropped WAL file '000000010000000000000042' because archive queue exceeded 64MB";
    const dropped = parseDroppedWal(`${line}\n`)!;
    expect(dropped).toEqual({ wal: "000000010000000000000042", time: new Date("2026-11-27T18:01:02.345Z") });
    const t = checksSchema.parse({});
    const status = (b: BackupStatus) => backupFindings(b, t, "pg1").find((f) => f.check === "archive_gap");
    const backup = (stop: string) => ({ label: "x", type: "full", stop: new Date(stop), ageSeconds: 10 });
    expect(status({ dropped, last: backup("2026-11-27T17:00:00Z") })).toMatchObject({ status: "critical", host: "pg1", message: expect.stringMatching(/the archive has a gap/) });
    expect(status({ dropped, last: backup("2026-11-27T19:00:00Z"), oldestStart: new Date("2026-11-27T10:00:00Z") })).toMatchObject({ status: "warning" });
    // Before the oldest backup kept: nothing restorable depends on it any more.
    expect(status({ dropped, last: backup("2026-11-28T19:00:00Z"), oldestStart: new Date("2026-11-28T10:00:00Z") })).toBeUndefined();
    expect(status({ last: backup("2026-11-27T19:00:00Z") })).toBeUndefined();
  });
});

describe("issue 11 item 2: archive gaps are noticed", () => {
  const archiver = { enabled: true, failing: false, stale: false, staleAfterSeconds: 300, failedCount: 0, lastArchivedTime: "2026-11-27 12:00:00+00" };
  const primary = (a: typeof archiver): HostHealth => ({
    host: "pg1",
    role: "primary",
    server: { inRecovery: false, version: "15.8", pendingRestart: [], slots: [], replication: { rows: [], archiver: a } },
  });
  const archiving = (a: typeof archiver, backups?: boolean) => judgeHealth([primary(a)], checksSchema.parse({}), "pg1", backups === undefined ? {} : { backups }).find((f) => f.check === "archiving");

  it("issue 11 item 2: a stale archiver (WAL written, nothing archived for 5 × archive_timeout) is critical", () => {
    expect(archiving(archiver)).toMatchObject({ status: "ok" });
    expect(archiving({ ...archiver, stale: true })).toMatchObject({ status: "critical", message: expect.stringMatching(/^archiving is stale: WAL was written, but nothing archived for more than 300 s/) });
  });

  it("issue 11 item 2: pgbackrest check's failure is a critical finding", () => {
    const t = checksSchema.parse({});
    const f = (b: BackupStatus) => backupFindings(b, t, "pg1").find((x) => x.check === "pgbackrest_check");
    const command = "runuser -u postgres -- pgbackrest --stanza=main check --archive-timeout=30";
    expect(f({ check: { ok: false, command, output: "ERROR: [082]: WAL segment 000000010000000000000003 was not archived before the 30000ms timeout" } })).toMatchObject({
      status: "critical",
      host: "pg1",
      message: `pgbackrest check fails (${command}): ERROR: [082]: WAL segment 000000010000000000000003 was not archived before the 30000ms timeout`,
    });
    expect(f({ check: { ok: true } })).toMatchObject({ status: "ok" });
  });

  it("issue 11 item 2: apply runs pgBackRest's check on the primary only when its archiver fails or is stale", () => {
    const play = playbook.slice(playbook.indexOf("- name: Archiving"));
    expect(play).toMatch(/hosts: primary\n/);
    expect(play).toMatch(/command: \{ cmd: "\{\{ backup\.archive_check \}\}", unless: "\{\{ backup\.archiver_healthy \}\}"/);
    const inv = loadInventory(write(HOSTS));
    const vars = hostVariables(inv, inv.primary, bookworm).backup as { archive_check: string; archiver_healthy: string };
    expect(vars.archive_check).toBe("runuser -u postgres -- pgbackrest --stanza=main check --archive-timeout=60");
    expect(vars.archiver_healthy).toMatch(/select not \(failing or stale\) from \(select .* from pg_stat_archiver\) a' \| grep -qx t$/s);
  });
});

describe("issue 11 item 3: the first full backup counts only when complete", () => {
  it("issue 11 item 3: has_full_backup asks pgBackRest's info (its list has complete backups only), not the directory", () => {
    const inv = loadInventory(write(HOSTS));
    const vars = hostVariables(inv, inv.backup!.host!, bookworm).backup as { has_full_backup: string };
    expect(vars.has_full_backup).toBe(`info=$(runuser -u postgres -- pgbackrest --stanza=main info --output=json) || exit 0; printf '%s' "$info" | grep -q '"status":{"code":2,' && exit 1; exit 0`);
  });
});

describe("issue 11 item 4: the backup's standby", () => {
  it("issue 11 item 4: a delayed standby is not among the repository's database hosts; the primary's standbys come before cascading ones", () => {
    const conf = rendered(
      `hosts:\n  pg1: { address: 10.0.0.11, role: primary }\n  pg2: { address: 10.0.0.12, role: standby, apply_delay: 1h }\n  pg3: { address: 10.0.0.13, role: standby, upstream: pg4 }\n  pg4: { address: 10.0.0.14, role: standby }\n  bk: { address: 10.0.0.20, role: backup }\n`,
      "bk",
      "pgbackrest.conf.hbs",
    );
    expect([...conf.matchAll(/^pg(\d)-host=(\S+)$/gm)].map((m) => `pg${m[1]}=${m[2]}`)).toEqual(["pg1=10.0.0.11", "pg2=10.0.0.14", "pg3=10.0.0.13"]);
  });

  it("issue 11 item 4: the backup script falls back to the primary, saying so, when no standby is found or the one chosen lags past archive-timeout", () => {
    const script = rendered(HOSTS, "bk", "pgbackrest-backup.sh.hbs");
    expect(script).toMatch(/grep -Eqi 'unable to find \(a \)\?standby\|timeout before standby \(replayed\|checkpoint\)' "\$log"/);
    expect(script).toMatch(/echo "pgprov: WARNING: no standby could be backed up from \(see above\); taking the \$type backup from the primary"\n/);
  });
});

describe("issue 11 item 5: scheduled backups are bounded and do not double-fire", () => {
  it("issue 11 item 5: apply's first full backup is bounded by backup.timeout_hours too, as the timers' and pgprov backup's are", () => {
    const task = playbook.slice(playbook.indexOf("- name: the first full backup"));
    const line = task.slice(task.indexOf("command:"), task.indexOf("\n", task.indexOf("command:")));
    const inv = loadInventory(write(`backup: { timeout_hours: 20 }\n${HOSTS}`));
    ensureReplicationPassword(inv);
    expect(render(line, hostVariables(inv, inv.backup!.host!, bookworm, { reclone: [] }), "cluster.yml")).toMatch(/timeout: "72000" \}$/);
  });

  it("issue 11 item 5: each backup service has TimeoutStartSec from backup.timeout_hours; the diff and incr services wait for the full one", () => {
    for (const type of ["full", "diff", "incr"]) {
      const unit = playbook.slice(playbook.indexOf(`path: /etc/systemd/system/pgprov-backup-${type}.service`));
      expect(unit.slice(0, unit.indexOf("when:"))).toMatch(/TimeoutStartSec=\{\{ backup\.timeout_hours \}\}h\n\s+Environment=PGPROV_SCHEDULED=1\n/);
      if (type !== "full") expect(unit.slice(0, unit.indexOf("when:"))).toMatch(/After=network-online\.target pgprov-backup-full\.service/);
    }
    const inv = loadInventory(write(`backup: { timeout_hours: 4 }\n${HOSTS}`));
    expect((hostVariables(inv, inv.backup!.host!, bookworm).backup as { timeout_hours: number }).timeout_hours).toBe(4);
    expect(problems(`backup: { timeout_hours: 0 }\n${HOSTS}`)).toEqual([expect.stringMatching(/^1:26: backup\.timeout_hours: /)]);
  });

  it("issue 11 item 5: a scheduled diff is skipped after a full backup ended within the hour, or while another backup holds the lock", () => {
    const script = rendered(HOSTS, "bk", "pgbackrest-backup.sh.hbs");
    expect(script).toMatch(/if \[ "\$\{PGPROV_SCHEDULED:-\}" = 1 \] && \[ "\$type" != full \]; then\n\s+latest=\/var\/lib\/pgbackrest\/backup\/main\/latest/);
    expect(script).toMatch(/this \$type backup is skipped"; exit 0; fi ;;/);
    expect(script).toMatch(/grep -Eq '\\\[050\\\]\|unable to acquire \(pgBackRest advisory \)\?lock' "\$log"/);
  });
});

describe("issue 11 item 6: the repository host names the database hosts' paths from their facts", () => {
  it("issue 11 item 6: a trixie backup host before bookworm database hosts writes pg1-path=/var/lib/postgresql/15/main", () => {
    const conf = rendered(HOSTS, "bk", "pgbackrest.conf.hbs", trixie, (n) => (n === "bk" ? trixie : bookworm));
    expect([...conf.matchAll(/^pg\d-path=(.*)$/gm)].map((m) => m[1])).toEqual(["/var/lib/postgresql/15/main", "/var/lib/postgresql/15/main", "/var/lib/postgresql/15/main"]);
  });
});

describe("issue 11 item 7: no backups configured, no ever-growing local archive", () => {
  it("issue 11 item 7: archive_command archives nowhere (archive_mode stays on: no restart either way), and check warns", () => {
    const conf = rendered(`hosts:\n  pg1: { address: 10.0.0.11, role: primary }\n`, "pg1", "pgprov.conf.hbs");
    expect(conf).toMatch(/^archive_mode = on\n(#.*\n)*archive_command = '\/bin\/true'$/m);
    expect(conf).not.toMatch(/wal-archive/);
    expect(playbook).not.toMatch(/name: WAL archive directory/);
    const archiver = { enabled: true, failing: false, stale: false, staleAfterSeconds: 300, failedCount: 0 };
    const host: HostHealth = { host: "pg1", role: "primary", server: { inRecovery: false, version: "15.8", pendingRestart: [], slots: [], replication: { rows: [], archiver } } };
    expect(judgeHealth([host], checksSchema.parse({}), "pg1", { backups: false }).find((f) => f.check === "archiving")).toMatchObject({
      status: "warning",
      message: expect.stringMatching(/^no backups configured/),
    });
  });
});

describe("issue 11 item 8: the old archive directory", () => {
  it("issue 11 item 8: named with its host, and what became of WAL without backups", () => {
    expect(oldArchiveWarning("pg2", "/var/lib/postgresql/15/wal-archive", "1.0M", true)).toMatch(/^pg2: \/var\/lib\/postgresql\/15\/wal-archive \(1\.0M\), the WAL archive of before pgBackRest, is left in place: WAL now goes to the backup repository/);
    expect(oldArchiveWarning("pg1", "/x", "size not read within 10 s", false)).toMatch(/WAL is no longer archived there \(no backups configured/);
  });
});

describe("issue 11 item 9: the repository encrypted at rest", () => {
  it("issue 11 item 9: backup.cipher: aes-256-cbc sets repo1-cipher-type and the passphrase from the inventory's secret, on the repository's host only", () => {
    const secretFile = write("");
    writeFileSync(secretFile, "a-passphrase-from-a-file\n");
    chmodSync(secretFile, 0o600);
    const text = `backup: { cipher: aes-256-cbc, cipher_passphrase: { file: ${secretFile} } }\n${HOSTS}`;
    expect(rendered(text, "bk", "pgbackrest.conf.hbs")).toMatch(/^repo1-cipher-type=aes-256-cbc\nrepo1-cipher-pass=a-passphrase-from-a-file$/m);
    expect(rendered(text, "pg1", "pgbackrest.conf.hbs")).not.toMatch(/cipher/);
    expect(loadInventory(write(text)).secrets.map((s) => s.reveal())).toContain("a-passphrase-from-a-file");
    // The repository on the primary's path: there only, not on the standbys.
    const local = `backup: { cipher: aes-256-cbc, cipher_passphrase: { file: ${secretFile} } }\nhosts:\n  pg1: { address: 10.0.0.11, role: primary }\n  pg2: { address: 10.0.0.12, role: standby }\n`;
    expect(rendered(local, "pg1", "pgbackrest.conf.hbs")).toMatch(/^repo1-cipher-pass=a-passphrase-from-a-file$/m);
    expect(rendered(local, "pg2", "pgbackrest.conf.hbs")).not.toMatch(/cipher/);
  });

  it("issue 11 item 9 (review 1): pgprov never makes the passphrase (a new one over a lost one would make every backup unreadable): a cipher without one is refused", () => {
    expect(problems(`backup: { cipher: aes-256-cbc }\n${HOSTS}`)).toEqual([expect.stringMatching(/^1:19: backup\.cipher: cipher aes-256-cbc needs cipher_passphrase: \{ env: VARIABLE \} or \{ file: PATH \}/)]);
    expect(problems(`backup: { cipher: aes-128 }\n${HOSTS}`)).toEqual([expect.stringMatching(/^1:19: backup\.cipher: invalid option: expected one of "none"\|"aes-256-cbc"/)]);
  });

  it("issue 11 item 9 (review 3): pgBackRest's configuration is written without a diff (a removed passphrase line would show it)", () => {
    expect(playbook).toMatch(/template: \{ src: \.\.\/templates\/pgbackrest\.conf\.hbs, path: "\{\{ backup\.config \}\}", owner: postgres, group: postgres, mode: "0640", diff: false \}/);
  });
});

describe("issue 11: the second reader's findings", () => {
  it("issue 11 (review 7): without backups, a failing archiver is still critical (an old archive_command failing)", () => {
    const archiver = { enabled: true, failing: true, stale: false, staleAfterSeconds: 300, failedCount: 3, lastFailedWal: "000000010000000000000003", lastFailedTime: "2026-11-27 12:01:00+00" };
    const host: HostHealth = { host: "pg1", role: "primary", server: { inRecovery: false, version: "15.8", pendingRestart: [], slots: [], replication: { rows: [], archiver } } };
    expect(judgeHealth([host], checksSchema.parse({}), "pg1", { backups: false }).find((f) => f.check === "archiving")).toMatchObject({ status: "critical", message: expect.stringMatching(/^archiving fails/) });
  });

  it("issue 11 (review 11): only delayed standbys: no backup-standby (every backup would fail first, then fall back)", () => {
    const text = `hosts:\n  pg1: { address: 10.0.0.11, role: primary }\n  pg2: { address: 10.0.0.12, role: standby, apply_delay: 1h }\n  bk: { address: 10.0.0.20, role: backup }\n`;
    expect(rendered(text, "bk", "pgbackrest.conf.hbs")).not.toMatch(/backup-standby/);
    expect(rendered(HOSTS, "bk", "pgbackrest.conf.hbs")).toMatch(/^backup-standby=y$/m);
  });

  it("issue 11 (review 6/15): stale is the oldest segment waiting in archive_status, not the last success; apply's check runs after the streaming check", () => {
    expect(archiverQuery(60)).toContain("coalesce((select min(modification) from pg_ls_archive_statusdir() where name like '%.ready'), now()) < now() - interval '300 seconds' as stale");
    expect(archiverQuery(600)).toContain("interval '3000 seconds' as stale");
    expect(playbook.indexOf("- name: Archiving")).toBeGreaterThan(playbook.indexOf("- name: Streaming"));
  });
});
