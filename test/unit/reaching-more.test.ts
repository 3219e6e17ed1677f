/**
 * The gaps left of issues 13 and 14 that pure logic shows: `~` in every path the inventory or an
 * ssh configuration gives, expanded as OpenSSH does (relative inventory paths stay relative to
 * the inventory); and every problem of an inventory reported in one run, whichever comes first.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { userInfo } from "node:os";
import { basename, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { ClusterEvent } from "../../src/cluster/events.js";
import { FileError } from "../../src/common/errors.js";
import { loadInventory } from "../../src/inventory/inventory.js";
import { JsonRenderer } from "../../src/output/json.js";
import { PlainRenderer } from "../../src/output/plain.js";
import { TreeRenderer } from "../../src/output/tree.js";
import { describePool, parsePools } from "../../src/postgres/pooler.js";
import { BASEBACKUP_PROGRESS } from "../../src/postgres/standby.js";
import { thrown, yamlFiles } from "./yaml-files.js";

const HOSTS = "hosts:\n  pg1: { address: 10.0.0.11, role: primary }\n  pg2: { address: 10.0.0.12, role: standby }\n";

describe("issue 13: ~ in the inventory's paths and in ssh's configuration, as OpenSSH expands it", () => {
  // `~` is the home directory of the user running pgprov (the password database's, as OpenSSH reads it).
  const home = userInfo().homedir;
  const inHome = mkdtempSync(join(home, ".pgprov-unit-tilde-"));
  const tilde = `~/${basename(inHome)}`;
  const { dir, write } = yamlFiles("tilde", loadInventory);
  afterAll(() => rmSync(inHome, { recursive: true, force: true }));

  function file(path: string, text: string, mode = 0o600): string {
    writeFileSync(path, text);
    chmodSync(path, mode);
    return path;
  }

  it("issue 13: ~/ in private_key, known_hosts, ssh.config, a secret's file; and in the configuration's IdentityFile, UserKnownHostsFile, Include", () => {
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(inHome, "key")]);
    file(join(inHome, "known_hosts"), "");
    file(join(inHome, "replication.secret"), "a-replication-password\n");
    mkdirSync(join(inHome, "conf.d"));
    file(join(inHome, "conf.d", "more"), `Host pg2\n  UserKnownHostsFile ${tilde}/kh_included\n`);
    file(join(inHome, "ssh_config"), `Include ${tilde}/conf.d/*\nHost pg*\n  IdentityFile ${tilde}/cfg_key\n`);
    const inv = loadInventory(
      write(
        `ssh:\n  private_key: ${tilde}/key\n  config: ${tilde}/ssh_config\n` +
          `replication:\n  password: { file: ${tilde}/replication.secret }\n` +
          `hosts:\n  pg1: { address: 10.0.0.11, role: primary, ssh: { private_key: "~/${basename(inHome)}/key" } }\n  pg2: { address: 10.0.0.12, role: standby }\n`,
      ),
    );
    const [pg1, pg2] = inv.hosts.map((h) => h.connection);
    expect(pg2!.identityFiles.map((f) => f.value)).toEqual([join(inHome, "key"), join(inHome, "cfg_key")]);
    expect(pg1!.identityFiles.map((f) => f.value)[0]).toBe(join(inHome, "key"));
    expect(pg2!.userKnownHostsFiles.value).toEqual([join(inHome, "kh_included")]);
    expect(inv.replication.password?.reveal()).toBe("a-replication-password");

    const withKnownHosts = loadInventory(write(`ssh:\n  known_hosts: ${tilde}/known_hosts\n  config: false\n${HOSTS}`));
    expect(withKnownHosts.hosts[0]!.connection.userKnownHostsFiles.value).toEqual([join(inHome, "known_hosts")]);
  });

  it("issue 13: a relative path stays relative to the inventory file; ~user is refused, naming where", () => {
    file(join(dir, "rel_key"), "k");
    const inv = loadInventory(write(`ssh:\n  private_key: ./rel_key\n  known_hosts: known_hosts\n  config: false\n${HOSTS}`));
    expect(inv.hosts[0]!.connection.identityFiles[0]!.value).toBe(join(dir, "rel_key"));
    expect(inv.hosts[0]!.connection.userKnownHostsFiles.value).toEqual([join(dir, "known_hosts")]);
    // A file named "~x" beside the inventory is not a home directory: OpenSSH would read ~x as a user's.
    expect(thrown(() => loadInventory(write(`ssh:\n  private_key: ~nobody/key\n  config: false\n${HOSTS}`)))).toMatch(/:2:16: ssh\.private_key: "~nobody\/key": "~user" paths are not supported/);
  });
});

describe("issue 14: every problem of an inventory in one run", () => {
  const { problems, write } = yamlFiles("all-problems", loadInventory);

  it("issue 14: a missing key file and an unset replication password do not hide a role's password, TLS files or an ssh config that is missing", () => {
    const found = problems(
      `ssh:\n  private_key: ./no-such-key\n  config: ./no-such-config\n` +
        `replication:\n  password: { env: PGPROV_UNIT_UNSET_REPLICATION }\n` +
        `roles:\n  app: { password: { env: PGPROV_UNIT_UNSET_APP } }\n` +
        `tls:\n  ca: { cert: ./no-such-ca.crt, key: ./no-such-ca.key }\n${HOSTS}`,
    );
    expect(found).toEqual([
      expect.stringMatching(/^5:13: replication\.password: the environment variable PGPROV_UNIT_UNSET_REPLICATION is not set$/),
      expect.stringMatching(/^2:16: ssh\.private_key: cannot read .*no-such-key \(ENOENT\)$/),
      expect.stringMatching(/^3:11: ssh\.config: .*no-such-config does not exist$/),
      expect.stringMatching(/^7:20: roles\.app\.password: the environment variable PGPROV_UNIT_UNSET_APP is not set$/),
      expect.stringMatching(/^9:\d+: tls\.ca: .*no-such-ca\.crt/),
    ]);
  });

  it("issue 14: a path refused (~user) is reported once, at its place, never again later without one", () => {
    const found = problems(`ssh:\n  private_key: ~nobody/key\n  known_hosts: ~nobody/known_hosts\n  config: false\ntls:\n  ca: { cert: ~nobody/ca.crt, key: ~nobody/ca.key }\n${HOSTS}`);
    expect(found).toEqual([
      expect.stringMatching(/^2:16: ssh\.private_key: "~nobody\/key": "~user" paths are not supported/),
      expect.stringMatching(/^3:16: ssh\.known_hosts: "~nobody\/known_hosts": "~user" paths are not supported/),
      expect.stringMatching(/^6:15: tls\.ca\.cert: "~nobody\/ca\.crt": "~user" paths are not supported/),
      expect.stringMatching(/^6:\d+: tls\.ca\.key: "~nobody\/ca\.key": "~user" paths are not supported/),
    ]);
  });

  it("issue 14: a directory as private_key (\"~\") is refused at its place", () => {
    const found = problems(`ssh:\n  private_key: "~"\n  config: false\n${HOSTS}`);
    expect(found).toEqual([expect.stringMatching(/^2:16: ssh\.private_key: .* is a directory, not a key file$/)]);
  });

  it("issue 14: a ProxyJump cycle does not hide another host's problem, and is reported once; positioned problems keep their place", () => {
    const config = write(`Host pg3\n  User "a b"\n`);
    const text = `ssh:\n  config: ${config}\nroles:\n  app: { password: { env: PGPROV_UNIT_UNSET_APP } }\n` +
      `hosts:\n  pg1: { address: 10.0.0.11, role: primary, ssh: { proxy_jump: pg2 } }\n  pg2: { address: 10.0.0.12, role: standby, ssh: { proxy_jump: pg1 } }\n` +
      `  pg3: { address: 10.0.0.13, role: standby }\n`;
    let error: unknown;
    try {
      loadInventory(write(text));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(FileError);
    expect((error as FileError).problems.map((p) => `${p.line}:${p.col}`)).toEqual(["4:20"]);
    const message = (error as Error).message;
    expect(message.match(/ProxyJump cycle/g)).toHaveLength(1);
    expect(message).toMatch(/"a b" is not a user name pgprov can use .*\(host pg3\)/);
  });

  it("issue 14: a ProxyJump cycle, with a role's password unset, reports both", () => {
    const text = `ssh:\n  config: false\nroles:\n  app: { password: { env: PGPROV_UNIT_UNSET_APP } }\n` +
      `hosts:\n  pg1: { address: 10.0.0.11, role: primary, ssh: { proxy_jump: pg2 } }\n  pg2: { address: 10.0.0.12, role: standby, ssh: { proxy_jump: pg1 } }\n`;
    const message = thrown(() => loadInventory(write(text)));
    expect(message).toMatch(/roles\.app\.password: the environment variable PGPROV_UNIT_UNSET_APP is not set/);
    expect(message).toMatch(/ProxyJump cycle: pg1 -> pg2 -> pg1/);
  });
});

describe("issue 15: pgbouncer's pools in status", () => {
  it("issue 15: SHOW POOLS read by its header, the admin console's own pool left out", () => {
    const out =
      "database\tuser\tcl_active\tcl_waiting\tcl_active_cancel_req\tcl_waiting_cancel_req\tsv_active\tsv_active_cancel\tsv_being_canceled\tsv_idle\tsv_used\tsv_tested\tsv_login\tmaxwait\tmaxwait_us\tpool_mode\n" +
      "appdb\tapp\t12\t3\t0\t0\t5\t0\t0\t0\t0\t0\t0\t2\t5000\ttransaction\n" +
      "pgbouncer\tpgbouncer\t1\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\tstatement\n";
    const pools = parsePools(out);
    expect(pools).toEqual([{ database: "appdb", user: "app", clActive: 12, clWaiting: 3, svActive: 5, svIdle: 0, maxwait: 2, poolMode: "transaction" }]);
    expect(describePool(pools[0]!)).toBe("appdb/app: 12 clients active, 3 waiting (longest 2 s); 5 servers active, 0 idle");
    expect(parsePools("")).toEqual([]);
  });
});

describe("issue 14: a clone's progress", () => {
  it("issue 14: pg_basebackup -P's reports become bytes copied; other stderr lines are not progress", () => {
    const show = (line: string) => {
      const m = BASEBACKUP_PROGRESS.line.exec(line);
      return m ? BASEBACKUP_PROGRESS.show(m) : undefined;
    };
    expect(show("    512/30942 kB (1%), 0/1 tablespace")).toBe("512 kB of 30.2 MB copied (1%)");
    expect(show("123456/123456 kB (100%), 1/1 tablespace                                         ")).toBe("120.6 MB of 120.6 MB copied (100%)");
    expect(show("waiting for checkpoint")).toBe("waiting for the primary's checkpoint");
    expect(show("pg_basebackup: error: connection to server at \"10.0.0.11\" failed")).toBeUndefined();
  });
});

describe("issue 14: progress is a terminal's", () => {
  const progress = { type: "progress", host: "pg2, pg3", task: "wait for streaming", seconds: 4, detail: "at most 120 s" } as ClusterEvent;

  it("issue 14: plain lines and --json leave progress out", async () => {
    let plain = "";
    const lines = new PlainRenderer({ diff: false, verbose: false, color: false, write: (t) => (plain += t) });
    const json: unknown[] = [];
    const jsonLines = new JsonRenderer((v) => json.push(v));
    for (const r of [lines, jsonLines]) {
      r.event(progress);
      await r.finish();
    }
    expect(plain).toBe("");
    expect(json).toEqual([]);
  });

  it("issue 14: after the last play, the tree shows the wait on one line redrawn in place, cleared at the end", async () => {
    let out = "";
    const tree = new TreeRenderer({ diff: false, verbose: false, color: false, write: (t) => (out += t) });
    tree.event(progress);
    tree.event({ ...progress, seconds: 5 } as ClusterEvent);
    await tree.finish();
    expect(out).toBe("\r\x1b[2Kpg2, pg3 · wait for streaming · 4 s · at most 120 s\r\x1b[2Kpg2, pg3 · wait for streaming · 5 s · at most 120 s\r\x1b[2K");
  });
});
