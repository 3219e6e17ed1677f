import { describe, expect, it } from "vitest";
import { isTruthy, render, renderValue, templateVariables } from "../../src/playbook/template.js";

describe("templates", () => {
  it("does not HTML-escape configuration", () => {
    expect(render("a = {{ v }}", { v: "x='<&>'" }, "t")).toBe("a = x='<&>'");
  });

  it("is strict about missing variables and names them", () => {
    expect(() => render("{{ nope }}", {}, "playbook.yml:3:5")).toThrow('playbook.yml:3:5: unknown variable "nope"');
    expect(() => render("{{ host.nme }}", { host: { name: "a" } }, "t")).toThrow('unknown variable "nme"');
  });

  it("keeps the type of a value that is one variable", () => {
    expect(renderValue("{{ pkgs }}", { pkgs: ["a", "b"] }, "t")).toEqual(["a", "b"]);
    expect(renderValue({ port: "{{ port }}", s: "p{{ port }}" }, { port: 5432 }, "t")).toEqual({ port: 5432, s: "p5432" });
  });

  it("has comparison and quoting helpers", () => {
    expect(render("{{#if (eq role 'primary')}}P{{else}}S{{/if}}", { role: "standby" }, "t")).toBe("S");
    expect(render("{{ pgquote v }}", { v: "it's" }, "t")).toBe("'it''s'");
    expect(render("{{ join xs ',' }}", { xs: [1, 2] }, "t")).toBe("1,2");
  });

  it("reads truthiness the way a `when` means it", () => {
    for (const v of ["", "false", "no", "0", " False "]) expect(isTruthy(v)).toBe(false);
    for (const v of ["true", "yes", "primary", "1"]) expect(isTruthy(v)).toBe(true);
  });

  it("issue 9: lists a template that is one variable without parsing it, as parsing it would", () => {
    const cases: [string, string[]][] = [
      ["{{ postgresql.config_directory }}", ["postgresql.config_directory"]],
      ["{{host.name}}", ["host.name"]],
      ["{{ a-b.c_d }}", ["a-b.c_d"]],
      ["{{ true }}", []],
      ["{{ this.name }}", ["name"]],
      ["{{ join }}", []],
      ["{{ a }}{{ b }}", ["a", "b"]],
    ];
    for (const [text, variables] of cases) expect(templateVariables(text)).toEqual(variables);
    // Asked again (every task names the same values): the same answer, a list of its own.
    const first = templateVariables("{{ postgresql.service }}");
    first.push("changed by the caller");
    expect(templateVariables("{{ postgresql.service }}")).toEqual(["postgresql.service"]);
    expect(() => templateVariables("{{#if a }}")).toThrow("template syntax");
  });

  it("lists the variables a template reads, not helpers or block-local names", () => {
    expect(templateVariables("{{ a.b }} {{#if (eq c 'x')}}{{ d }}{{/if}} {{#each hosts}}{{ name }}{{/each}} {{ join e ',' }}").sort()).toEqual([
      "a.b",
      "c",
      "d",
      "e",
      "hosts",
    ]);
  });
});
