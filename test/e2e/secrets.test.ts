/**
 * Secrets on real hosts (issue 8, items 10 and 12), on trixie (PostgreSQL 17, whose libpq can
 * demand SCRAM): a run killed in the middle of its package install leaves the apt proxy's
 * password in no file, and the next run converges; a fake server at the primary's address that
 * asks for the replication password in cleartext gets nothing from the standby.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Lab, type LabHost, labDown, labExec, labUp } from "../lab/lab.js";
import { eventually, events, inventoryCopy, pgprov, psql, recapOf } from "./helpers.js";

let lab: Lab;
let inventory: string;
let hosts: LabHost[];
const PROXY_PASSWORD = "Proxy-Pw-Q7x2Zk9";

beforeAll(async () => {
  lab = await labUp({ hosts: 2, os: "trixie" });
  hosts = lab.hosts;
  const proxy = new URL(lab.aptProxy);
  proxy.username = "pgprov";
  proxy.password = PROXY_PASSWORD; // apt-cacher-ng ignores it; pgprov must keep it secret all the same
  inventory = inventoryCopy(lab, (doc) => {
    doc.set("apt", { proxy: proxy.href });
    doc.set("postgresql", { clients: [lab.subnet] });
  });
});
afterAll(async () => {
  await labDown();
});

/** Writes a file on a host (through a heredoc: the content never needs shell quoting). */
async function writeOnHost(host: LabHost, path: string, content: string): Promise<void> {
  const r = await labExec(host, `cat > ${path} <<'PGPROV_TEST_EOF'\n${content}\nPGPROV_TEST_EOF`);
  expect(r.code, r.stderr).toBe(0);
}

/**
 * The secret as written, and base64-encoded at each of the three alignments it can take inside a
 * longer base64 text (as in a heredoc pgprov sends): the four-character groups that depend on the
 * secret's bytes only.
 */
function secretPatterns(secret: string): string[] {
  const patterns = [secret];
  for (let pad = 0; pad < 3; pad++) {
    const b64 = Buffer.concat([Buffer.alloc(pad), Buffer.from(secret)]).toString("base64");
    const firstGroup = Math.ceil(pad / 3);
    const lastGroup = Math.floor((pad + secret.length) / 3);
    patterns.push(b64.slice(firstGroup * 4, lastGroup * 4));
  }
  return patterns;
}

/** Files under the hosts' usual places that hold `secret` (as is, or base64-encoded), one `host:path` per line. */
async function filesHolding(secret: string): Promise<string[]> {
  const found: string[] = [];
  for (const h of hosts) {
    // The patterns live in /run, which is not searched.
    await writeOnHost(h, "/run/pgprov-test-patterns", secretPatterns(secret).join("\n"));
    const r = await labExec(h, "grep -rlsF -f /run/pgprov-test-patterns /tmp /var/tmp /etc /var/lib/postgresql /root; rm -f /run/pgprov-test-patterns", { timeoutMs: 120_000 });
    found.push(...r.stdout.split("\n").filter(Boolean).map((f) => `${h.name}:${f}`));
  }
  return found;
}

/** Holds dpkg's frontend lock (an fcntl lock, as apt takes it), so that apt-get waits for it. */
const HOLD_DPKG_LOCK = `use Fcntl qw(F_SETLKW F_WRLCK SEEK_SET);
open(my $fh, '>>', '/var/lib/dpkg/lock-frontend') or die "open: $!";
my $lock = pack('s s x4 q q i x4', F_WRLCK, SEEK_SET, 0, 0, 0);
fcntl($fh, F_SETLKW, $lock) or die "lock: $!";
sleep 600;`;

/**
 * A server that asks every client for a cleartext password (AuthenticationCleartextPassword:
 * 'R', length 8, code 3) and logs what it gets: "startup" for each client that got that far, and
 * "received TYPE HEX" for its answer (a PasswordMessage 'p' carries the password).
 */
const FAKE_PRIMARY = `use strict; use warnings; use IO::Socket::INET;
my ($address, $port, $log) = @ARGV;
my $server = IO::Socket::INET->new(LocalAddr => $address, LocalPort => $port, Listen => 8, ReuseAddr => 1, Proto => 'tcp') or die "listen: $!";
open(my $out, '>>', $log) or die "log: $!"; $out->autoflush(1);
sub readn { my ($s, $n) = @_; my $buf = ''; while (length($buf) < $n) { my $r = sysread($s, $buf, $n - length($buf), length($buf)); return undef unless $r; } return $buf; }
while (my $client = $server->accept) {
  for (;;) {
    my $head = readn($client, 4); last unless defined $head;
    my $body = readn($client, unpack('N', $head) - 4); last unless defined $body;
    my $code = unpack('N', $body);
    if ($code == 80877103) { print $out "ssl-request\\n"; }
    if ($code == 80877103 || $code == 80877104) { syswrite($client, 'N'); next; }  # no SSL, no GSS
    print $out "startup\\n";
    syswrite($client, pack('a N N', 'R', 8, 3));
    my $type = readn($client, 1);
    if (!defined $type) { print $out "closed without answering\\n"; last; }
    my $length = readn($client, 4) // pack('N', 4);
    my $message = readn($client, unpack('N', $length) - 4) // '';
    print $out "received $type ", unpack('H*', $message), "\\n";
    last;
  }
  close $client;
}`;

describe("secrets on the hosts", () => {
  it("issue 8 item 10: a run interrupted mid-act (stdout closed, then killed) leaves the proxy's password in no file, and the next run converges", async () => {
    // apt-get will wait for dpkg's lock in the install, holding the proxy's password: a moment
    // to interrupt that does not depend on timing.
    for (const h of hosts) {
      await writeOnHost(h, "/root/hold-dpkg-lock.pl", HOLD_DPKG_LOCK);
      expect((await labExec(h, "systemd-run --unit=pgprov-test-dpkg-lock perl /root/hold-dpkg-lock.pl")).code).toBe(0);
    }
    const run = spawn(process.execPath, [join(import.meta.dirname, "../../bin/pgprov.js"), "apply", inventory], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    run.stdout.on("data", (d: Buffer) => (output += d.toString()));
    run.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const exited = new Promise((resolve) => run.on("close", resolve));
    try {
      await eventually(
        "apt-get waiting in pgprov's install on both hosts",
        async () => (await Promise.all(hosts.map((h) => labExec(h, "pgrep -x apt-get")))).every((r) => r.code === 0),
        180_000,
      );
      // What the issue did: pgprov's stdout closed in the middle of the act, then pgprov killed.
      run.stdout.destroy();
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      run.kill("SIGKILL");
      await exited;
    }
    expect(output).not.toContain(PROXY_PASSWORD);

    // apt-get ignores SIGPIPE: once it has the lock it installs; the remote shells die when they
    // next write to the closed channel, the way the issue saw them die (no EXIT trap).
    for (const h of hosts) await labExec(h, "systemctl stop pgprov-test-dpkg-lock");
    await eventually(
      "the killed run's remote work to end",
      async () => (await Promise.all(hosts.map((h) => labExec(h, "pgrep -x apt-get || pgrep -x timeout || pgrep -f pgprov.loc[k]")))).every((r) => r.code !== 0),
      300_000,
    );
    // Soft: the next run must converge all the same (and the next test needs the cluster).
    expect.soft(await filesHolding(PROXY_PASSWORD)).toEqual([]);

    const next = await pgprov(["apply", inventory, "--json"]);
    expect(next.code, `${next.stdout}\n${next.stderr}`).toBe(0);
    expect(next.stdout + next.stderr).not.toContain(PROXY_PASSWORD);
    expect(events(next).find((e) => e.type === "replication")).toMatchObject({ standbys: [{ host: "pg2", state: "streaming" }] });
    expect(await filesHolding(PROXY_PASSWORD)).toEqual([]);
    // No temporary file of pgprov's is left beside the files it wrote (the passfile among them).
    for (const h of hosts) {
      expect((await labExec(h, "find /etc/postgresql /etc/postgresql-common /var/lib/postgresql -maxdepth 3 -name '.pgprov.*.??????'")).stdout).toBe("");
    }
    const again = await pgprov(["apply", inventory, "--json"]);
    for (const h of hosts) expect(recapOf(again)[h.name]).toMatchObject({ changed: 0, failed: 0 });
  });

  it("issue 8 item 12: a server at the primary's address that asks for a cleartext password gets nothing from the standby", async () => {
    const [pg1, pg2] = hosts as [LabHost, LabHost];
    await writeOnHost(pg1, "/root/fake-primary.pl", FAKE_PRIMARY);
    try {
      // The primary's PostgreSQL gives way to the fake server on its address and port; the
      // standby, cut off, connects again (every wal_retrieve_retry_interval, 5 s).
      expect((await labExec(pg1, "systemctl stop postgresql@17-main")).code).toBe(0);
      const started = await labExec(pg1, `systemd-run --unit=pgprov-test-fake-primary perl /root/fake-primary.pl ${pg1.address} 5432 /root/fake-primary.log`);
      expect(started.code, started.stderr).toBe(0);
      // With TLS (on by default since issue 10) the standby asks for it first, and a server that
      // cannot do TLS gets not even a startup message; require_auth stays as a second lock.
      await eventually(
        "the standby to connect to the fake server",
        async () => /^ssl-request$/m.test((await labExec(pg1, "cat /root/fake-primary.log")).stdout),
        90_000,
      );
      const log = (await labExec(pg1, "cat /root/fake-primary.log")).stdout;
      expect(log).not.toMatch(/^received /m);
      expect(log).not.toMatch(/^startup$/m);
      const standbyLog = await labExec(pg2, "tail -50 /var/log/postgresql/postgresql-17-main.log");
      expect(standbyLog.stdout).toMatch(/server does not support SSL, but SSL was required/);
      expect((await psql(pg2, "show primary_conninfo")).out).toContain("sslmode=verify-full sslrootcert=/etc/postgresql/17/main/pgprov-ca.crt channel_binding=require require_auth=scram-sha-256");
    } finally {
      await labExec(pg1, "systemctl stop pgprov-test-fake-primary; systemctl start postgresql@17-main");
    }
    await eventually("the standby to stream again", async () => (await psql(pg1, "select state from pg_stat_replication")).out === "streaming", 60_000);
  });
});
