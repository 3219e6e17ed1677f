/**
 * Loading a playbook: YAML with positions, the play/task structure, each module's arguments,
 * handler names, host selectors and template variables are all checked here, before anything
 * connects. A problem is reported as `file:line:col: what is wrong`.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { z } from "zod";
import { FileError, type SourceProblem } from "../common/errors.js";
import { didYouMean } from "../yaml/suggest.js";
import { YamlSource, type YamlPath } from "../yaml/source.js";
import { isTemplate, TemplateError, templateVariables } from "./template.js";

const listOfNames = z.union([z.string().min(1), z.array(z.string().min(1))]).transform((v) => (Array.isArray(v) ? v : [v]));
const identifier = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "a variable name: letters, digits and _");

/** What the playbook language needs of a module: the schema of its arguments. */
export interface TaskModule {
  args: z.ZodType<unknown>;
}

/** The schema of a playbook whose tasks use these modules. */
export function playbookSchema(moduleNames: string[]) {
  const moduleKeys = Object.fromEntries(moduleNames.map((name) => [name, z.unknown().optional()]));
  const taskSchema = z
    .strictObject({
      name: z.string().min(1),
      when: z.union([z.string(), z.boolean()]).optional(),
      notify: listOfNames.optional(),
      tags: listOfNames.optional(),
      register: identifier.optional(),
      ...moduleKeys,
    })
    .superRefine((task, ctx) => {
      const used = moduleNames.filter((m) => (task as Record<string, unknown>)[m] !== undefined);
      if (used.length !== 1) {
        ctx.addIssue({
          code: "custom",
          path: [],
          message:
            used.length === 0
              ? `a task needs exactly one module (${moduleNames.join(", ")})`
              : `a task has exactly one module, this one has ${used.join(" and ")}`,
        });
      }
    });
  const playSchema = z.strictObject({
    name: z.string().min(1),
    /** all, a group of the inventory, or host names. */
    hosts: listOfNames,
    tasks: z.array(taskSchema).default([]),
    handlers: z.array(taskSchema).default([]),
  });
  return z.array(playSchema).min(1, "a playbook is a list of plays, with at least one");
}
type RawTask = z.output<ReturnType<typeof playbookSchema>>[number]["tasks"][number];

export interface Task<M extends TaskModule = TaskModule> {
  name: string;
  module: M;
  moduleName: string;
  /** As written: templates are rendered per host at run time. */
  args: unknown;
  when?: string | boolean;
  notify: string[];
  tags: string[];
  register?: string;
  /**
   * The top-level variables its `when`, its arguments and its template file read: a task that
   * reads a value registered earlier in its own play is rendered only once that value is there.
   */
  reads: string[];
  /** `file:line:col` of the task, for messages. */
  where: string;
}

export interface Play<M extends TaskModule = TaskModule> {
  name: string;
  hosts: string[];
  tasks: Task<M>[];
  handlers: Task<M>[];
  where: string;
}

export interface Playbook<M extends TaskModule = TaskModule> {
  file: string;
  dir: string;
  plays: Play<M>[];
}

/** What the playbook may refer to, known before connecting. */
export interface PlaybookScope<M extends TaskModule> {
  /** The modules tasks may use, by the key a task names them with. */
  modules: Readonly<Record<string, M>>;
  hostNames: string[];
  /** Groups of hosts a play may name besides `all` (the cluster's: primary, standbys). */
  groups: readonly string[];
  /** Top-level template variables every host has (inventory variables and pgprov's own). */
  variables: string[];
  /** pgprov's own variables, which a `register` may not shadow. */
  reserved?: readonly string[];
  /** Keys of `facts`. */
  factKeys: string[];
}

/** Stands in for a template's value while arguments are validated before rendering. */
const TEMPLATE_PLACEHOLDER = "\u0000template";

export function loadPlaybook<M extends TaskModule>(file: string, scope: PlaybookScope<M>): Playbook<M> {
  return load(file, scope).playbook;
}

interface Loaded<M extends TaskModule> {
  playbook: Playbook<M>;
  text: string;
  /** The template files read, by their `src` as written, with their text. */
  templates: Record<string, string>;
  /** Every variable each task's templates use (`head` or `head.second`...), for a snapshot. */
  uses: Map<Task<M>, string[]>;
}

function load<M extends TaskModule>(file: string, scope: PlaybookScope<M>): Loaded<M> {
  const modules = scope.modules;
  const moduleNames = Object.keys(modules);
  const groups = ["all", ...scope.groups];
  const reserved = scope.reserved ?? [];
  const source = YamlSource.read(file);
  const parsed = source.validate(playbookSchema(moduleNames));
  const dir = dirname(resolve(file));
  const problems: SourceProblem[] = [];
  const registered = new Set<string>();
  const templates: Record<string, string> = {};
  const uses = new Map<Task<M>, string[]>();
  const where = (path: YamlPath) => {
    const p = source.problem(path, "");
    return `${p.file}:${p.line}:${p.col}`;
  };

  const plays: Play<M>[] = parsed.map((play, playIndex) => {
    const playPath = [playIndex];
    for (const [i, selector] of play.hosts.entries()) {
      if (!groups.includes(selector) && !scope.hostNames.includes(selector)) {
        const candidates = [...groups, ...scope.hostNames];
        const path = Array.isArray(source.nodeAt([...playPath, "hosts"])?.toJSON()) ? [...playPath, "hosts", i] : [...playPath, "hosts"];
        problems.push(source.problem(path, `hosts: "${selector}" is neither a group (${groups.join(", ")}) nor a host of the inventory${didYouMean(selector, candidates)}`));
      }
    }
    const handlerNames = play.handlers.map((h) => h.name);
    const toTask = (raw: RawTask, path: YamlPath): Task<M> => {
      const moduleName = moduleNames.find((m) => (raw as Record<string, unknown>)[m] !== undefined)!;
      const module = modules[moduleName]!;
      const args = (raw as Record<string, unknown>)[moduleName];
      problems.push(...checkArgs(source, module, args, [...path, moduleName]));
      const variables = checkVariables(source, raw, path, scope, registered, dir, moduleName, templates);
      problems.push(...variables.problems);
      for (const [i, name] of (raw.notify ?? []).entries()) {
        if (!handlerNames.includes(name)) {
          const notifyPath = Array.isArray(raw.notify) ? [...path, "notify", i] : [...path, "notify"];
          problems.push(source.problem(notifyPath, `notify: no handler named "${name}" in this play${didYouMean(name, handlerNames)}`));
        }
      }
      if (raw.register && reserved.includes(raw.register)) {
        problems.push(
          source.problem([...path, "register"], `register: "${raw.register}" is one of pgprov's own variables (${reserved.join(", ")}); choose another name`),
        );
      } else if (raw.register) registered.add(raw.register);
      const task: Task<M> = {
        name: raw.name,
        module,
        moduleName,
        args,
        ...(raw.when !== undefined ? { when: raw.when } : {}),
        notify: raw.notify ?? [],
        tags: raw.tags ?? [],
        ...(raw.register ? { register: raw.register } : {}),
        reads: variables.reads,
        where: where(path),
      };
      uses.set(task, variables.uses);
      return task;
    };
    return {
      name: play.name,
      hosts: play.hosts,
      tasks: play.tasks.map((t, i) => toTask(t, [...playPath, "tasks", i])),
      handlers: play.handlers.map((t, i) => toTask(t, [...playPath, "handlers", i])),
      where: where(playPath),
    };
  });

  if (problems.length) throw new FileError(problems);
  return { playbook: { file: resolve(file), dir, plays }, text: source.text, templates, uses };
}

/**
 * A playbook as loaded, kept to be bound again to another scope without parsing: the bundled
 * playbook's is made when the bundle is built (scripts/build.mjs), because parsing and checking
 * it (YAML with positions, each task's arguments against its module's schema, each template's
 * variables) was about a fifth of a no-op run's CPU. It holds what is checked once for all (the
 * structure, the arguments, the handlers, the templates' syntax) and, per task, the variables its
 * templates use, which are checked again against each inventory's.
 */
export interface PlaybookSnapshot {
  /** The playbook file's text and its template files' (by `src` as written): used only while the files are these. */
  text: string;
  templates: Record<string, string>;
  moduleNames: string[];
  plays: SnapshotPlay[];
}
type SnapshotTask = Omit<Task, "module" | "where"> & { where: string; uses: string[] };
interface SnapshotPlay {
  name: string;
  hosts: string[];
  where: string;
  tasks: SnapshotTask[];
  handlers: SnapshotTask[];
}

/** `file:line:col` kept as `line:col`: the snapshot is made where the bundle is built. */
const position = (where: string, file: string) => where.slice(file.length + 1);

export function snapshotPlaybook<M extends TaskModule>(file: string, scope: PlaybookScope<M>): PlaybookSnapshot {
  const { playbook, text, templates, uses } = load(file, scope);
  const task = (t: Task<M>): SnapshotTask => {
    const { module: _module, ...rest } = t;
    return { ...rest, where: position(t.where, file), uses: uses.get(t)! };
  };
  return {
    text,
    templates,
    moduleNames: Object.keys(scope.modules),
    plays: playbook.plays.map((p) => ({ name: p.name, hosts: p.hosts, where: position(p.where, file), tasks: p.tasks.map(task), handlers: p.handlers.map(task) })),
  };
}

/**
 * The playbook of a snapshot, bound to this scope, when the file and its templates are still
 * the snapshot's and everything the scope decides holds (host selectors, variables, register
 * names); otherwise undefined, and the caller loads the file (which reports every problem at its
 * place).
 */
export function playbookFromSnapshot<M extends TaskModule>(snapshot: PlaybookSnapshot, file: string, scope: PlaybookScope<M>): Playbook<M> | undefined {
  const moduleNames = Object.keys(scope.modules);
  if (moduleNames.length !== snapshot.moduleNames.length || !snapshot.moduleNames.every((m) => m in scope.modules)) return undefined;
  const dir = dirname(resolve(file));
  const read = (f: string) => {
    try {
      return readFileSync(f, "utf8");
    } catch {
      return undefined;
    }
  };
  if (read(file) !== snapshot.text) return undefined;
  for (const [src, text] of Object.entries(snapshot.templates)) if (read(resolve(dir, src)) !== text) return undefined;
  const selectors = new Set(["all", ...scope.groups, ...scope.hostNames]);
  const reserved = scope.reserved ?? [];
  const known = new Set(scope.variables);
  const bind = (t: SnapshotTask): Task<M> | undefined => {
    for (const v of t.uses) {
      const [head, second] = v.split(".");
      if (!known.has(head!) || (head === "facts" && second && !scope.factKeys.includes(second))) return undefined;
    }
    if (t.register && reserved.includes(t.register)) return undefined;
    if (t.register) known.add(t.register);
    const { uses: _uses, where, ...rest } = t;
    return { ...rest, module: scope.modules[t.moduleName]!, where: `${file}:${where}` };
  };
  const plays: Play<M>[] = [];
  for (const p of snapshot.plays) {
    if (!p.hosts.every((h) => selectors.has(h))) return undefined;
    const tasks = p.tasks.map(bind);
    const handlers = p.handlers.map(bind);
    if (tasks.includes(undefined) || handlers.includes(undefined)) return undefined;
    plays.push({ name: p.name, hosts: p.hosts, tasks: tasks as Task<M>[], handlers: handlers as Task<M>[], where: `${file}:${p.where}` });
  }
  return { file: resolve(file), dir, plays };
}

/** Validates a module's arguments with every template replaced by a placeholder: types that a
 * template decides are checked again after rendering; everything else is checked now. */
function checkArgs(source: YamlSource, module: TaskModule, args: unknown, path: YamlPath): SourceProblem[] {
  const masked = maskTemplates(args);
  const result = module.args.safeParse(masked);
  if (result.success) return [];
  return source.describeIssues(module.args, result.error.issues, path, (issuePath) => leadsToPlaceholder(masked, issuePath));
}

function maskTemplates(value: unknown): unknown {
  if (typeof value === "string") return isTemplate(value) ? TEMPLATE_PLACEHOLDER : value;
  if (Array.isArray(value)) return value.map(maskTemplates);
  if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, maskTemplates(v)]));
  return value;
}

function leadsToPlaceholder(value: unknown, path: YamlPath): boolean {
  let v = value;
  for (const step of path) {
    if (v === TEMPLATE_PLACEHOLDER) return true;
    if (!v || typeof v !== "object") return false;
    v = (v as Record<string | number, unknown>)[step];
  }
  return v === TEMPLATE_PLACEHOLDER;
}

/**
 * Every variable a task's templates read must exist: in the scope, or registered by an earlier
 * task. Also says which top-level variables its `when`, arguments and template file read (`reads`).
 */
function checkVariables(
  source: YamlSource,
  task: Record<string, unknown>,
  path: YamlPath,
  scope: PlaybookScope<TaskModule>,
  registered: Set<string>,
  dir: string,
  moduleName: string,
  templates: Record<string, string>,
): { problems: SourceProblem[]; reads: string[]; uses: string[] } {
  const problems: SourceProblem[] = [];
  const reads = new Set<string>();
  const uses = new Set<string>();
  const known = new Set([...scope.variables, ...registered]);
  const check = (text: string, at: YamlPath, label: string, read = true) => {
    let variables: string[];
    try {
      variables = templateVariables(text);
    } catch (e) {
      problems.push(source.problem(at, `${label}: ${(e as TemplateError).message}`));
      return;
    }
    for (const v of variables) {
      uses.add(v);
      const [head, second] = v.split(".");
      if (read) reads.add(head!);
      if (!known.has(head!)) problems.push(source.problem(at, `${label}: unknown variable "${head}"${didYouMean(head!, known)}`));
      else if (head === "facts" && second && !scope.factKeys.includes(second))
        problems.push(source.problem(at, `${label}: unknown fact "${second}"${didYouMean(second, scope.factKeys)}`));
    }
  };
  const walk = (value: unknown, at: YamlPath) => {
    // A name that cannot be rendered yet is shown as written: it need not wait for a value.
    if (typeof value === "string" && isTemplate(value)) check(value, at, at.slice(path.length).join("."), at[path.length] !== "name");
    else if (Array.isArray(value)) value.forEach((v, i) => walk(v, [...at, i]));
    else if (value && typeof value === "object") Object.entries(value).forEach(([k, v]) => walk(v, [...at, k]));
  };
  walk({ name: task.name, when: task.when, [moduleName]: task[moduleName] }, path);

  // A template file is checked like the playbook's own strings.
  const src = moduleName === "template" ? (task[moduleName] as { src?: unknown })?.src : undefined;
  if (typeof src === "string" && !isTemplate(src)) {
    const file = resolve(dir, src);
    if (!existsSync(file)) problems.push(source.problem([...path, moduleName, "src"], `template.src: no such file ${file}`));
    else {
      templates[src] = readFileSync(file, "utf8");
      check(templates[src], [...path, moduleName, "src"], `template ${src}`);
    }
  }
  return { problems, reads: [...reads], uses: [...uses] };
}
