/**
 * The bundle the user runs (dist/, built by scripts/build.mjs): what each command loads at start,
 * watched from inside node with a module hook, and the dependencies' parts it leaves to node.
 * No timing here: start-up time is measured by hand (README), what loads is what a test can hold.
 */
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Lab, labDown, labUp } from "../lab/lab.js";
import { inventoryCopy, pgprov } from "./helpers.js";

const ROOT = join(import.meta.dirname, "../..");

interface Metafile {
  outputs: Record<string, { inputs: Record<string, unknown>; imports: { path: string; kind: string; external?: boolean }[] }>;
}
const metafile = (): Metafile => JSON.parse(readFileSync(join(ROOT, "dist/metafile.json"), "utf8")) as Metafile;

/** Records every module node loads (ES modules through a hook, CommonJS from require's cache). */
let hookDir: string;

interface Loaded {
  /** Files of pgprov's own dist/ and node_modules/ that were read, relative to the package. */
  files: string[];
  /** The sources bundled into the dist/ files that were read (metafile inputs). */
  sources: string[];
}

async function loadedBy(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Loaded & { code: number; stdout: string; stderr: string }> {
  const log = join(mkdtempSync(join(tmpdir(), "pgprov-loads-")), "loaded");
  writeFileSync(log, "");
  const r = await pgprov(args, { env: { ...env, NODE_OPTIONS: `--import=${join(hookDir, "register.mjs")}`, PGPROV_LOAD_LOG: log }, timeoutMs: 60_000 });
  const files = [
    ...new Set(
      readFileSync(log, "utf8")
        .split("\n")
        .filter((u) => u.startsWith("file:"))
        .map((u) => relative(ROOT, fileURLToPath(u)))
        .filter((f) => !f.startsWith("..")), // the hook's own files
    ),
  ];
  const outputs = metafile().outputs;
  const sources = files.flatMap((f) => Object.keys(outputs[f]?.inputs ?? {}));
  return { ...r, files, sources };
}

const packageOf = (source: string) => /^node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(source)?.[1];
const packages = (l: Loaded) => new Set(l.sources.map(packageOf).filter(Boolean));

let lab: Lab;

beforeAll(async () => {
  hookDir = mkdtempSync(join(tmpdir(), "pgprov-hook-"));
  writeFileSync(
    join(hookDir, "register.mjs"),
    [
      `import { appendFileSync } from "node:fs";`,
      `import { createRequire, register } from "node:module";`,
      `import { pathToFileURL } from "node:url";`,
      `register("./hooks.mjs", import.meta.url);`,
      `const cache = createRequire(import.meta.url).cache;`,
      `process.on("exit", () => appendFileSync(process.env.PGPROV_LOAD_LOG, Object.keys(cache).map((f) => pathToFileURL(f).href + "\\n").join("")));`,
    ].join("\n"),
  );
  writeFileSync(
    join(hookDir, "hooks.mjs"),
    [
      `import { appendFileSync } from "node:fs";`,
      `export async function load(url, context, next) {`,
      `  appendFileSync(process.env.PGPROV_LOAD_LOG, url + "\\n");`,
      `  return next(url, context);`,
      `}`,
    ].join("\n"),
  );
  lab = await labUp({ hosts: 1 });
});
afterAll(async () => {
  await labDown();
});

describe("the bundled CLI", () => {
  it("issue 9 item 3: --version and --help read the entry file only (with the masking printer): no command, no listr2, pg, diff, ssh2 or zod", async () => {
    for (const args of [["--version"], ["--help"], ["plan", "--help"]]) {
      const r = await loadedBy(args);
      expect(r.code, r.stderr).toBe(0);
      // Everything comes from the bundle: node resolves nothing in node_modules.
      expect(r.files.filter((f) => !f.startsWith("dist/")), args.join(" ")).toEqual(["bin/pgprov.js"]);
      expect(r.sources).toContain("src/cli/main.ts");
      expect(r.sources.filter((s) => s.startsWith("src/")).sort(), args.join(" ")).toEqual(["src/cli/main.ts", "src/cli/print.ts", "src/engine/redact.ts", "src/errors.ts", "src/paths.ts"]);
      for (const heavy of ["listr2", "pg", "diff", "ssh2", "zod", "handlebars", "yaml"]) expect(packages(r), args.join(" ")).not.toContain(heavy);
    }
  });

  it("issue 9 item 3: plan without a terminal loads the engine and ssh2, but neither listr2, nor pg before SQL, nor diff before a diff", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pgprov-bundle-"));
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "id_ed25519")]);
    writeFileSync(join(dir, "known_hosts"), "");
    // Port 1 on the loopback refuses at once: the run gets as far as connecting, then stops.
    writeFileSync(
      join(dir, "inventory.yml"),
      "ssh: { user: root, port: 1, private_key: ./id_ed25519, known_hosts: ./known_hosts }\nhosts:\n  pg1: { address: 127.0.0.1, role: primary }\n",
    );
    const r = await loadedBy(["plan", join(dir, "inventory.yml")]);
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toMatch(/pg1/);
    expect(r.sources).toContain("src/engine/run.ts");
    expect(packages(r)).toContain("ssh2");
    for (const lazy of ["listr2", "pg", "diff"]) expect(packages(r)).not.toContain(lazy);
    expect(r.files.filter((f) => f.startsWith("node_modules/"))).toEqual([]);
  });

  it("issue 9 item 3: ping reaches a host over SSH from the bundle, loading neither pg, listr2 nor diff", async () => {
    const r = await loadedBy(["ping", inventoryCopy(lab)]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^pg1 +\S+ +ok +Debian/m);
    expect(packages(r)).toContain("ssh2");
    for (const lazy of ["listr2", "pg", "diff"]) expect(packages(r)).not.toContain(lazy);
  });

  it("issue 9 item 3: ssh2's optional native addons stay node's to find, as without the bundle", () => {
    const required = Object.values(metafile().outputs).flatMap((o) => o.imports.filter((i) => i.external && i.kind === "require-call").map((i) => i.path));
    // Required by package name, so node finds them where npm put ssh2 when they are built, and
    // ssh2 falls back to its JavaScript crypto (in its own try block) when they are not.
    expect(required).toContain("cpu-features");
    expect(required).toContain("ssh2/lib/protocol/crypto/build/Release/sshcrypto.node");
  });

  it("issue 9 item 3: help and usage errors read as they do from source, in English and in LANG's language", async () => {
    // yargs finds its translations beside its source file, and lays help out with string-width:
    // both are arranged differently in the bundle (scripts/build.mjs).
    const fromSource = (args: string[], env: NodeJS.ProcessEnv) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
        execFile(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { cwd: ROOT, env: { ...process.env, ...env } }, (e, stdout, stderr) =>
          resolve({ code: e ? (e.code as number) : 0, stdout, stderr }),
        ),
      );
    const cases: [string, string[]][] = [
      ["C.UTF-8", ["plan", "--help"]],
      ["C.UTF-8", ["apply"]],
      ["fr_FR.UTF-8", ["--help"]],
      ["fr_FR.UTF-8", ["bogus"]],
    ];
    for (const [LANG, args] of cases) {
      const env = { LANG, LC_ALL: "", LC_MESSAGES: "", LANGUAGE: "" };
      const bundled = await pgprov(args, { env });
      expect({ code: bundled.code, stdout: bundled.stdout, stderr: bundled.stderr }, `${LANG} ${args.join(" ")}`).toEqual(await fromSource(args, env));
    }
    expect((await pgprov(["--help"], { env: { LANG: "fr_FR.UTF-8", LC_ALL: "" } })).stdout).toContain("Affiche le numéro de version");
  });
});
