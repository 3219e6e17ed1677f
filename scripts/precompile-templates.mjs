/**
 * The bundled playbook's templates, compiled when the bundle is built: every file of templates/
 * and every templated value of playbooks/cluster.yml, as Handlebars.precompile makes them with
 * the options src/playbook/template.ts renders with. Compiling them at run time (Handlebars'
 * parser and code generator, then V8 on the code) cost about a tenth of a no-op run's CPU. A
 * template is found by its exact text, so an edited file or another playbook's template is
 * compiled at run time as before.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import Handlebars from "handlebars";
import { parse } from "yaml";

/** The options of src/playbook/template.ts (its test checks they agree). */
export const COMPILE_OPTIONS = { noEscape: true, strict: true };

/** Every text of the bundled playbook and its templates that Handlebars would compile. */
export function bundledTemplateTexts(root) {
  const texts = new Set();
  const dir = join(root, "templates");
  for (const f of readdirSync(dir).sort()) if (f.endsWith(".hbs")) texts.add(readFileSync(join(dir, f), "utf8"));
  const walk = (v) => {
    if (typeof v === "string" && v.includes("{{")) texts.add(v);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === "object") Object.values(v).forEach(walk);
  };
  walk(parse(readFileSync(join(root, "playbooks", "cluster.yml"), "utf8")));
  return [...texts];
}

/** The source of src/playbook/precompiled.ts in the bundle: the specifications, by text. */
export function precompiledModule(root) {
  const entries = bundledTemplateTexts(root).map((t) => `  [${JSON.stringify(t)}, ${Handlebars.precompile(t, COMPILE_OPTIONS)}],`);
  return `export const PRECOMPILED = new Map([\n${entries.join("\n")}\n]);\n`;
}
