/** The cluster on trixie (PostgreSQL 17): the version follows the distribution unless the inventory names one. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Lab, labDown, labUp } from "../lab/lab.js";
import { eventually, events, inventoryCopy, pgprov, psql, recapOf } from "./helpers.js";

let lab: Lab;
let inventory: string;

beforeAll(async () => {
  lab = await labUp({ hosts: 2, os: "trixie" });
  inventory = inventoryCopy(lab, (doc) => {
    doc.deleteIn(["hosts", "pg3"]);
    doc.set("apt", { proxy: lab.aptProxy });
    doc.set("postgresql", { settings: { shared_buffers: "64MB", work_mem: "8MB" }, clients: [lab.subnet] });
  });
});
afterAll(async () => {
  await labDown();
});

describe("cluster on trixie", () => {
  it("bootstraps PostgreSQL 17 with a streaming standby and the inventory's settings", async () => {
    const r = await pgprov(["apply", inventory, "--json"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const [pg1, pg2] = lab.hosts;
    expect((await psql(pg1!, "show server_version_num")).out).toMatch(/^17\d{4}$/);
    expect((await psql(pg2!, "select pg_is_in_recovery()")).out).toBe("t");
    expect((await psql(pg2!, "show shared_buffers")).out).toBe("64MB");
    const clients = `select count(*) from pg_hba_file_rules where database = '{all}' and address = '${lab.subnet.split("/")[0]}' and netmask = '255.255.255.0' and auth_method = 'scram-sha-256'`;
    expect((await psql(pg1!, clients)).out).toBe("1");
    await psql(pg1!, "create table t (x text); insert into t values ('from the primary');");
    await eventually("the row on the standby", async () => (await psql(pg2!, "select x from t")).out === "from the primary");

    const again = await pgprov(["apply", inventory, "--json"]);
    expect(again.code).toBe(0);
    for (const host of ["pg1", "pg2"]) expect(recapOf(again)[host]).toMatchObject({ changed: 0, failed: 0 });
    expect(events(again).find((e) => e.type === "replication")).toMatchObject({ standbys: [{ host: "pg2", state: "streaming" }] });
  });
});
