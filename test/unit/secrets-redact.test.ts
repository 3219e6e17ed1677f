/** Issue 8, item 9: a secret is masked in every form it is written in, in diffs, --json and all the CLI prints. */
import { describe, expect, it } from "vitest";
import type { RunEvent } from "../../src/engine/events.js";
import { loadedSecrets, MASK, maskRemovedLines, Redactor } from "../../src/common/redact.js";
import { Secret } from "../../src/common/secret.js";
import { unifiedDiff } from "../../src/modules/file.js";
import { shellQuote } from "../../src/common/shell.js";
import { render } from "../../src/playbook/template.js";

/** Every character the encodings treat specially: quotes, backslash, colon, URL delimiters, shell. */
const SECRET = `it's a "pw" \\ :/@?&%$\`x`;

describe("issue 8 item 9: the redactor", () => {
  const redactor = new Redactor([SECRET]);
  const helper = (name: string) => render(`{{ ${name} s }}`, { s: SECRET }, "test");
  const urlPassword = (() => {
    const url = new URL("http://user@proxy:3142");
    url.password = SECRET;
    return url.password;
  })();

  it("issue 8 item 9: masks a secret in every form the templates, URLs and shell quoting write it", () => {
    expect(redactor.text(`x = ${helper("pgquote")};`)).toBe(`x = '${MASK}';`);
    expect(redactor.text(`x = ${helper("pgvalue")};`)).toBe(`x = '${MASK}';`);
    expect(redactor.text(`*:5432:*:u:${helper("pgpass")}`)).toBe(`*:5432:*:u:${MASK}`);
    expect(redactor.text(`{"password":${helper("json")}}`)).toBe(`{"password":"${MASK}"}`);
    expect(redactor.text(`http://user:${urlPassword}@proxy:3142`)).toBe(`http://user:${MASK}@proxy:3142`);
    expect(redactor.text(`http://user:${encodeURIComponent(SECRET)}@proxy:3142`)).toBe(`http://user:${MASK}@proxy:3142`);
    expect(redactor.text(`echo ${shellQuote(SECRET)}`)).toBe(`echo '${MASK}'`);
    // A value escaped with backslashes, as PostgreSQL's configuration files and conninfo allow.
    expect(redactor.text(`password='${SECRET.replace(/[\\']/g, "\\$&")}'`)).toBe(`password='${MASK}'`);
    expect(redactor.mentionsSecret({ content: `x = ${helper("pgquote")}` })).toBe(true);
  });

  it("issue 8 item 9: masks secrets of any length, the shortest too", () => {
    expect(new Redactor(["k9"]).text("pw=k9;")).toBe(`pw=${MASK};`);
    expect(new Redactor(["é"]).text("a é b")).toBe(`a ${MASK} b`);
  });

  it("issue 8 item 9: masks the json and pgquote forms in --json events and a failed command's text", () => {
    const events: RunEvent[] = [
      { type: "task", play: "p", host: "h", task: "t", handler: false, status: "changed", changes: [{ action: "update", summary: "content", diff: `+{"password":${helper("json")}}` }], ms: 1 },
      { type: "failure", host: "h", message: "a command failed", command: `psql -c "ALTER ROLE x PASSWORD ${helper("pgquote")}"`, stderr: `ERROR: near ${helper("pgquote")}` },
    ];
    const lines = events.map((e) => JSON.stringify(redactor.value(e))).join("\n");
    for (const form of [SECRET, JSON.stringify(SECRET).slice(1, -1), JSON.stringify(JSON.stringify(SECRET)).slice(3, -3), SECRET.replace(/'/g, "''"), "it''s", 'it\'s a \\"pw'])
      expect(lines).not.toContain(form);
    expect(lines.split(MASK).length - 1).toBe(3);
  });

  it("issue 8 item 9: masks every removed line inside a hunk, also one that starts with --", () => {
    const before = "# header\n-- Old-Secret-1 as a SQL comment\n--Old-Secret-2\npassword = 'Old-Secret-3'\n- Old-Secret-4\n";
    const diff = unifiedDiff("/etc/app/secret.conf", before, `# header\npassword = ${render("{{ pgquote s }}", { s: SECRET }, "t")}\n`);
    expect(diff).toContain("\n--- Old-Secret-1"); // what escaped the old masking
    const masked = maskRemovedLines(diff);
    expect(masked).not.toMatch(/Old-Secret/);
    const lines = masked.split("\n");
    expect(lines.slice(0, 2)).toEqual(["--- /etc/app/secret.conf\ton the host", "+++ /etc/app/secret.conf\twanted"]);
    expect(lines.filter((l) => l.startsWith("-") && !l.startsWith("---"))).toEqual([`-${MASK}`, `-${MASK}`, `-${MASK}`, `-${MASK}`]);
    expect(lines.filter((l) => l.startsWith("---"))).toHaveLength(1);
    expect(lines).toContain(" # header");
  });

  it("issue 8 item 9: the CLI masks what it prints with every secret the process loaded", () => {
    new Secret("Loaded-By-Inventory-7", "test");
    expect(loadedSecrets.text("pg_rewind failed: Loaded-By-Inventory-7")).toBe(`pg_rewind failed: ${MASK}`);
  });
});
