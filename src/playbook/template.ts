/**
 * The one Handlebars instance pgprov renders with: playbook values and files in templates/.
 * Isolated (helpers registered here cannot leak into or from other code), `noEscape` because this
 * is configuration, not HTML (`=` must stay `=`), and `strict` so that a missing variable is an
 * error instead of an empty string in a config file.
 */
import Handlebars from "handlebars";
import { PgprovError } from "../common/errors.js";
import { CONTROL_CHARACTER } from "../common/args.js";
import { PRECOMPILED } from "./precompiled.js";

const hb = Handlebars.create();

hb.registerHelper({
  eq: (a: unknown, b: unknown) => a === b,
  ne: (a: unknown, b: unknown) => a !== b,
  not: (a: unknown) => !a,
  and: (...args: unknown[]) => args.slice(0, -1).every(Boolean),
  or: (...args: unknown[]) => args.slice(0, -1).some(Boolean),
  join: (list: unknown, sep: unknown) => (Array.isArray(list) ? list.join(typeof sep === "string" ? sep : ", ") : ""),
  json: (value: unknown) => JSON.stringify(value),
  /** A value as a PostgreSQL configuration string literal: 'it''s', 'C:\\dir'. */
  pgquote: (value: unknown) => pgquote(value),
  /** A postgresql.conf value: finite numbers as they are, booleans as on/off, anything else quoted. */
  pgvalue: (value: unknown) =>
    typeof value === "number" && Number.isFinite(value) ? String(value) : typeof value === "boolean" ? (value ? "on" : "off") : pgquote(value),
  /** A field of a libpq passfile line: ':' and '\' escaped. */
  pgpass: (value: unknown) => oneLine(value).replace(/[\\:]/g, "\\$&"),
});

/**
 * A configuration string literal as PostgreSQL's lexer reads it (postgresql.conf, and
 * pg_hba/pg_ident fields): a quote doubled, a backslash escaped, and no line break, which would end
 * the line and start a setting of the value's choosing.
 */
function pgquote(value: unknown): string {
  return `'${oneLine(value).replace(/\\/g, "\\\\").replace(/'/g, "''")}'`;
}

/** Every line-oriented file pgprov writes reads a line break as the start of a new entry. */
function oneLine(value: unknown): string {
  const text = String(value);
  if (CONTROL_CHARACTER.test(text)) throw new Error("a value cannot hold a line break or another control character here");
  return text;
}

const BUILTIN_HELPERS = new Set(["if", "unless", "each", "with", "lookup", "log", ...Object.keys(hb.helpers)]);

export class TemplateError extends PgprovError {
  override readonly name = "TemplateError";
}

/** Also those of scripts/precompile-templates.mjs, which compiles the bundled playbook's templates when the bundle is built. */
export const COMPILE_OPTIONS = { noEscape: true, strict: true } as const;

const compiled = new Map<string, HandlebarsTemplateDelegate>();

/** Renders `text`; `where` names the place in the playbook or the template file for errors. */
export function render(text: string, context: object, where: string): string {
  let template = compiled.get(text);
  if (!template) {
    const spec = PRECOMPILED.get(text);
    template = spec ? hb.template(spec) : hb.compile(text, COMPILE_OPTIONS);
    compiled.set(text, template);
  }
  try {
    return template(context);
  } catch (e) {
    const message = (e as Error).message;
    const missing = /^"([^"]+)" not defined in/.exec(message);
    throw new TemplateError(`${where}: ${missing ? `unknown variable "${missing[1]}"` : `template error: ${message.split("\n")[0]}`}`);
  }
}

/** True when a string is a template at all: plain strings are passed through untouched. */
export function isTemplate(text: string): boolean {
  return text.includes("{{");
}

const SINGLE_EXPRESSION = /^\{\{\s*([A-Za-z_][\w.-]*)\s*\}\}$/;

/**
 * Renders every string inside a value. A string that is exactly one variable, like
 * "{{ packages }}", keeps the variable's type (a list stays a list, a number a number).
 */
export function renderValue(value: unknown, context: Record<string, unknown>, where: string): unknown {
  if (typeof value === "string") {
    if (!isTemplate(value)) return value;
    const single = SINGLE_EXPRESSION.exec(value);
    if (single) {
      // As Handlebars would render it (noEscape), without compiling a template for it.
      const resolved = lookupPath(context, single[1]!.split("."));
      if (resolved !== undefined) return resolved;
    }
    return render(value, context, where);
  }
  if (Array.isArray(value)) return value.map((v, i) => renderValue(v, context, `${where}[${i}]`));
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, renderValue(v, context, `${where}.${k}`)]));
  }
  return value;
}

function lookupPath(context: Record<string, unknown>, path: string[]): unknown {
  let v: unknown = context;
  for (const key of path) {
    if (!v || typeof v !== "object" || !(key in v)) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

/** `when` values: a rendered "", "false", "no", "0" (any case) is false; anything else is true. */
export function isTruthy(rendered: unknown): boolean {
  if (typeof rendered === "boolean") return rendered;
  if (rendered === undefined || rendered === null) return false;
  return !["", "false", "no", "0", "off"].includes(String(rendered).trim().toLowerCase());
}

/**
 * The variables a template reads, as dotted paths from the top-level context, for checking a
 * playbook before anything connects. Paths inside #each/#with blocks are relative to the block's
 * item and are not reported; helper names are not variables.
 */
export function templateVariables(text: string): string[] {
  let found = variablesOf.get(text);
  if (!found) {
    found = readVariables(text);
    variablesOf.set(text, found);
  }
  return [...found];
}

/** Each text's variables: a playbook repeats the same values ("{{ postgresql.service }}") many times. */
const variablesOf = new Map<string, string[]>();

/** `{{ a.b }}` alone, in names Handlebars reads as a path (not a literal, `this` or `else`). */
const ONE_PATH = /^\{\{\s*((?!(?:true|false|null|undefined|this|else)\b)[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)\s*\}\}$/;

function readVariables(text: string): string[] {
  // Most values are one variable: no need to parse them (Handlebars' parser is a tenth of loading a playbook).
  const one = ONE_PATH.exec(text)?.[1];
  if (one !== undefined && !BUILTIN_HELPERS.has(one)) return [one];
  const found = new Set<string>();
  let ast: hbs.AST.Program;
  try {
    ast = hb.parse(text);
  } catch (e) {
    throw new TemplateError(`template syntax: ${(e as Error).message.split("\n")[0]}`);
  }
  const visitPath = (node: hbs.AST.Expression | undefined) => {
    if (!node) return;
    if (node.type === "PathExpression") {
      const path = node as hbs.AST.PathExpression;
      if (!path.data && path.depth === 0 && path.parts.length > 0 && path.original !== "this") found.add(path.parts.join("."));
    } else if (node.type === "SubExpression") {
      visitCall(node as hbs.AST.SubExpression);
    }
  };
  const visitCall = (node: { path: hbs.AST.PathExpression | hbs.AST.Expression; params: hbs.AST.Expression[]; hash?: hbs.AST.Hash }) => {
    const name = (node.path as hbs.AST.PathExpression).original;
    const isHelper = BUILTIN_HELPERS.has(name);
    if (!isHelper) visitPath(node.path);
    node.params.forEach(visitPath);
    node.hash?.pairs.forEach((p) => visitPath(p.value));
  };
  const visitProgram = (program: hbs.AST.Program | undefined, scoped: boolean) => {
    for (const statement of program?.body ?? []) {
      if (statement.type === "MustacheStatement") {
        if (!scoped) visitCall(statement as hbs.AST.MustacheStatement);
      } else if (statement.type === "BlockStatement") {
        const block = statement as hbs.AST.BlockStatement;
        if (!scoped) visitCall(block);
        const name = (block.path as hbs.AST.PathExpression).original;
        // #each and #with change what a bare name means inside them.
        visitProgram(block.program, scoped || name === "each" || name === "with");
        visitProgram(block.inverse, scoped);
      }
    }
  };
  visitProgram(ast, false);
  return [...found];
}
