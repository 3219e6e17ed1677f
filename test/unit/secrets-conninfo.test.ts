/** Issue 8, item 12: the replication password is sent only by SCRAM where the client can demand it. */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { hostVariables } from "../../src/cluster/variables.js";
import { conninfoAuth } from "../../src/postgres/debian.js";
import { ensureReplicationPassword, loadInventory } from "../../src/inventory/inventory.js";
import type { ModuleContext } from "../../src/engine/module.js";
import { pgStandby, standbyArgs } from "../../src/postgres/standby.js";
import { render } from "../../src/playbook/template.js";

const context: ModuleContext = { playbookDir: "/", render: (t) => t };

describe("issue 8 item 12: the replication password only by SCRAM, where libpq can demand it", () => {
  const dir = mkdtempSync(join(tmpdir(), "pgprov-conninfo-"));
  // Without TLS (issue 10 adds it, on by default): what protects the password when the user turned it off.
  writeFileSync(join(dir, "inventory.yml"), "tls: { enabled: false }\nhosts:\n  pg1: { address: 10.0.0.11, role: primary }\n  pg2: { address: 10.0.0.12, role: standby }\n");
  const inv = loadInventory(join(dir, "inventory.yml"));
  ensureReplicationPassword(inv);
  const template = readFileSync(join(import.meta.dirname, "../../templates/pgprov.conf.hbs"), "utf8");
  const conninfo = (codename: string) => {
    const facts = { os_id: "debian", os_version: "", os_codename: codename, arch: "amd64", hostname: "pg2", cpus: 2, memory_mb: 1024 };
    const conf = render(template, hostVariables(inv, inv.hosts[1]!, facts), "pgprov.conf.hbs");
    return /^primary_conninfo = (.*)$/m.exec(conf)?.[1];
  };

  it("issue 8 item 12: primary_conninfo carries require_auth=scram-sha-256 on PostgreSQL 17, and cannot on 15", () => {
    expect(conninfo("trixie")).toBe("'host=10.0.0.11 port=5432 user=replicator passfile=/var/lib/postgresql/.pgprov.pgpass application_name=pg2 require_auth=scram-sha-256'");
    // libpq 15 rejects the option outright: there, only the network protects the password (see README).
    expect(conninfo("bookworm")).toBe("'host=10.0.0.11 port=5432 user=replicator passfile=/var/lib/postgresql/.pgprov.pgpass application_name=pg2'");
  });

  it("issue 8 item 12: pg_basebackup and pg_rewind connect the same way", () => {
    expect(conninfoAuth(15)).toBe("");
    expect(conninfoAuth(16)).toBe("require_auth=scram-sha-256");
    const base = { host: "pg2", primary: "10.0.0.11", port: 5432, user: "replicator", passfile: "/p", data_directory: "/d", bin_directory: "/b", service: "s" };
    // An empty data directory: the clone's command.
    const clone = (extra: object) => pgStandby.decide(standbyArgs.parse({ ...base, ...extra }), { stdout: "", stderr: "", code: 0 }, context).changes[0]!.commands[0]!.script;
    expect(clone({ conninfo_auth: conninfoAuth(17) })).toContain("/b/pg_basebackup -h 10.0.0.11 -p 5432 -U replicator -w -d require_auth=scram-sha-256 -D ");
    expect(clone({})).toContain("/b/pg_basebackup -h 10.0.0.11 -p 5432 -U replicator -w -D ");
    expect(readFileSync(join(import.meta.dirname, "../../playbooks/cluster.yml"), "utf8")).toContain(`conninfo_auth: "{{ postgresql.conninfo_auth }}"`);
  });
});
