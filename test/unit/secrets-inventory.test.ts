/** Issue 8, item 11: an inventory error never echoes a value found under a secret. */
import { describe, expect, it } from "vitest";
import { Redactor } from "../../src/common/redact.js";
import { loadInventory } from "../../src/inventory/inventory.js";
import { yamlFiles } from "./yaml-files.js";

describe("issue 8 item 11: inventory errors never echo a secret", () => {
  const { problems, write } = yamlFiles("inventory", loadInventory);
  const HOSTS = "hosts:\n  pg1: { address: 10.0.0.11, role: primary }\n";

  it("issue 8 item 11: a password, a proxy URL with credentials, or a var's secret in the wrong place is not echoed", () => {
    const found = problems(
      `apt:\n  proxy: "ftp://user:Proxy-Pass-11@10.0.0.1:3142"\nreplication:\n  password: "Hunter2-Repl-Pass"\n${HOSTS}`,
    );
    expect(found).toEqual([
      `2:10: apt.proxy: expected an http:// or https:// URL, like http://proxy.example:3142 (the scheme is ftp)`,
      `4:13: replication.password: expected { env: VARIABLE } or { file: PATH }`,
    ]);
    expect(problems(`vars:\n  db: { secret: "Var-Secret-Pw" }\n  api: { secret: { env: "Env Secret Pw" } }\n${HOSTS}`)).toEqual([
      `2:17: vars.db.secret: expected { env: VARIABLE } or { file: PATH }`,
      `3:25: vars.api.secret.env: an environment variable name`,
    ]);
  });

  it("still says what was found where nothing is secret", () => {
    expect(problems(`postgresql:\n  port: 99999\n${HOSTS}`)[0]).toMatch(/found 99999$/);
  });

  it("loads a proxy password with a stray %, and masks it as written and decoded", () => {
    const inv = loadInventory(write(`apt:\n  proxy: "http://u:50%off%21@10.0.0.1:3142"\n${HOSTS}`));
    const redactor = new Redactor(inv.secrets.map((s) => s.reveal()));
    expect(redactor.text("a 50%off%21 b 50%off! c")).toBe("a ******** b ******** c");
  });
});

describe("issue 14: every inventory problem in one run", () => {
  const { problems } = yamlFiles("inventory", loadInventory);

  it("issue 14: a schema error, an unreadable key file and an unset secret are reported together", () => {
    delete process.env.PGPROV_TEST_UNSET_14;
    const found = problems(
      [
        "ssh:",
        "  private_key: ./no-such-key",
        "replication:",
        "  password: { env: PGPROV_TEST_UNSET_14 }",
        "postgresql:",
        "  prot: 5432",
        "hosts:",
        "  pg1: { address: 10.0.0.11, role: primary }",
        "",
      ].join("\n"),
    );
    expect(found).toHaveLength(3);
    expect(found[0]).toMatch(/^6:3: .*prot.*port/);
    expect(found[1]).toMatch(/^2:16: ssh.private_key: cannot read .*no-such-key \(ENOENT\)$/);
    expect(found[2]).toMatch(/^4:13: replication.password: the environment variable PGPROV_TEST_UNSET_14 is not set$/);
  });
});
