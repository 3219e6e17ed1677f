/**
 * A YAML file the user wrote, kept with its positions, so that every error (syntax or schema) can
 * say `file:line:col`. Inventory and playbook loading both go through here.
 */
import { readFileSync } from "node:fs";
import { isMap, isNode, isPair, isScalar, LineCounter, parseDocument, type Document, type Node } from "yaml";
import { z } from "zod";
import { FileError, type SourceProblem } from "../common/errors.js";
import { didYouMean } from "./suggest.js";

export type YamlPath = readonly (string | number)[];

/**
 * Schemas whose values are secrets or may carry credentials (a secret's source, a URL with a
 * password): a problem there says where and what was expected, never what was found.
 */
const secretValues = z.registry<{ secret: true }>();

/** Marks a schema's values as secret (see secretValues); returns the schema. */
export function secretValue<S extends z.ZodType>(schema: S): S {
  secretValues.add(schema, { secret: true });
  return schema;
}

export class YamlSource {
  private readonly lines = new LineCounter();
  readonly doc: Document.Parsed;

  constructor(readonly file: string, readonly text: string) {
    this.doc = parseDocument(text, { lineCounter: this.lines, prettyErrors: true, uniqueKeys: true });
  }

  static read(file: string): YamlSource {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (e) {
      throw new FileError([{ file, line: 1, col: 1, message: `cannot read: ${(e as NodeJS.ErrnoException).code ?? e}` }]);
    }
    return new YamlSource(file, text);
  }

  /** Throws a FileError listing every YAML syntax error, each at its position. */
  assertParsed(): void {
    if (this.doc.errors.length === 0) return;
    throw new FileError(
      this.doc.errors.map((e) => ({
        file: this.file,
        line: e.linePos?.[0].line ?? 1,
        col: e.linePos?.[0].col ?? 1,
        // The position is already in front; drop yaml's own " at line L, column C:" tail.
        message: e.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, ""),
      })),
    );
  }

  /** The node at `path`, or undefined when the path does not exist in the file. */
  nodeAt(path: YamlPath): Node | undefined {
    if (path.length === 0) return this.doc.contents ?? undefined;
    const node = this.doc.getIn(path, true);
    return isNode(node) ? node : undefined;
  }

  /** The key node of `key` in the map at `mapPath`: where an unknown key is reported. */
  keyNodeAt(mapPath: YamlPath, key: string): Node | undefined {
    const map = this.nodeAt(mapPath);
    if (!isMap(map)) return undefined;
    for (const item of map.items) {
      if (isPair(item) && isScalar(item.key) && String(item.key.value) === key) return item.key;
    }
    return undefined;
  }

  /** The position of the deepest existing node along `path` (a missing key is reported at its parent). */
  positionOf(path: YamlPath, node: Node | undefined = this.deepestNode(path)): { line: number; col: number } {
    const offset = node?.range?.[0] ?? 0;
    return this.lines.linePos(offset);
  }

  problem(path: YamlPath, message: string, node?: Node): SourceProblem {
    return { file: this.file, ...this.positionOf(path, node ?? this.deepestNode(path)), message };
  }

  /** The source text of the value at `path`, shortened, to show what was found. */
  foundAt(path: YamlPath): string | undefined {
    const node = this.nodeAt(path);
    if (!node?.range) return undefined;
    const raw = this.text.slice(node.range[0], node.range[1]).trim().replace(/\s+/g, " ");
    return raw.length > 40 ? `${raw.slice(0, 37)}...` : raw;
  }

  private deepestNode(path: YamlPath): Node | undefined {
    for (let n = path.length; n >= 0; n--) {
      const node = this.nodeAt(path.slice(0, n));
      if (node) return node;
    }
    return undefined;
  }

  /**
   * Parses and validates the file against a zod schema. Every problem is reported at once, each
   * with its position, what was expected and what was found.
   */
  validate<S extends z.ZodType>(schema: S): z.output<S> {
    const result = this.check(schema);
    if ("data" in result) return result.data;
    throw new FileError(result.problems);
  }

  /**
   * validate's result without throwing, with the file's parsed value (`raw`), so that a caller can
   * look for more problems in what the schema did not accept and report them all in one run.
   */
  check<S extends z.ZodType>(schema: S): ({ data: z.output<S> } | { problems: SourceProblem[] }) & { raw: unknown } {
    this.assertParsed();
    const raw: unknown = this.doc.toJS({ maxAliasCount: 100 }) ?? {};
    const result = schema.safeParse(raw);
    return result.success ? { data: result.data, raw } : { problems: this.describeIssues(schema, result.error.issues), raw };
  }

  /**
   * Problems for zod issues found when validating the value at `base` (a part of this file)
   * against `schema`. `skip` drops issues the caller knows to be premature (a template's value).
   */
  describeIssues(schema: z.ZodType, issues: z.core.$ZodIssue[], base: YamlPath = [], skip?: (path: YamlPath) => boolean): SourceProblem[] {
    return issues.flatMap((issue) => {
      const path = issue.path.filter((p): p is string | number => typeof p !== "symbol");
      return skip?.(path) ? [] : this.describeIssue(schema, issue, base, path);
    });
  }

  private describeIssue(schema: z.ZodType, issue: z.core.$ZodIssue, base: YamlPath, relative: YamlPath): SourceProblem[] {
    const path = [...base, ...relative];
    const where = path.length ? `${pathText(path)}: ` : "";
    if (issue.code === "unrecognized_keys") {
      const known = knownKeys(schema, relative);
      return issue.keys.map((key) =>
        this.problem(path, `${where}unknown key "${key}"${didYouMean(key, known)}`, this.keyNodeAt(path, key)),
      );
    }
    const found = this.foundAt(path);
    if (found === undefined && issue.code === "invalid_type") {
      return [this.problem(path, `${path.slice(0, -1).join(".") || "top level"}: missing required key "${String(path.at(-1))}" (expected ${issue.expected})`)];
    }
    const message = lowerFirst(issue.message.replace(/^Invalid input: /, ""));
    // What was found, when it is a plain value the message does not already name.
    const showFound =
      found !== undefined &&
      issue.code !== "custom" &&
      isScalar(this.nodeAt(path)) &&
      !/received/.test(message) &&
      !walkSchema(schema, relative).met.some((s) => secretValues.has(s as z.ZodType));
    const foundText = showFound ? `, found ${found}` : "";
    return [this.problem(path, `${where}${message}${foundText}`)];
  }
}

/** The keys an object schema at `path` accepts, for suggestions. */
export function knownKeys(schema: z.ZodType, path: YamlPath): string[] {
  const def = (walkSchema(schema, path).at as { def?: { type?: string; shape?: Record<string, unknown> } } | undefined)?.def;
  return def?.type === "object" && def.shape ? Object.keys(def.shape) : [];
}

/**
 * Follows `path` down a schema through objects, records and arrays, and through wrappers
 * (optional, default, pipe...): `met` is every schema on the way, `at` the one at the end
 * (undefined when the path leaves the schema).
 */
function walkSchema(schema: z.ZodType, path: YamlPath): { met: unknown[]; at?: unknown } {
  const met: unknown[] = [];
  let s: unknown = schema;
  for (const step of [...path, undefined]) {
    for (;;) {
      const def = (s as { def?: Record<string, unknown> } | undefined)?.def;
      if (!def) break;
      met.push(s);
      if ("innerType" in def) s = def.innerType;
      else if (def.type === "pipe") s = def.in;
      else break;
    }
    if (step === undefined) break;
    const def = (s as { def?: Record<string, unknown> } | undefined)?.def;
    if (def?.type === "object") s = (def.shape as Record<string, unknown>)[String(step)];
    else if (def?.type === "record") s = def.valueType;
    else if (def?.type === "array") s = def.element;
    else return { met };
  }
  return { met, at: s };
}

/** A path as `a.b.0`; a key that is not a plain word in JSON, so that a line break in it stays visible. */
function pathText(path: YamlPath): string {
  return path.map((p) => (typeof p === "string" && !/^[\w.$-]+$/.test(p) ? JSON.stringify(p) : p)).join(".");
}

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}
