#!/usr/bin/env node
/**
 * Builds the CLI into dist/: one ESM entry, dist/pgprov.mjs (what bin/pgprov.js loads), and the
 * chunks its dynamic imports load only on the paths that need them (each command's code; listr2
 * for a terminal; pg when SQL runs). A few files to read instead of node resolving hundreds over
 * the source tree and node_modules: that resolution was most of pgprov's start-up time.
 * Type checking is tsc's job (`npm test`), not this script's. dist/metafile.json records which
 * sources went into which file (test/e2e/bundle.test.ts maps what each command loads back to them).
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as esbuild from "esbuild";
import { precompiledModule } from "./precompile-templates.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const YARGS_SHIM = "node_modules/yargs/lib/platform-shims/esm.mjs";

const options = {
  absWorkingDir: root,
  entryPoints: { pgprov: "src/cli/main.ts" },
  outdir: "dist",
  outExtension: { ".js": ".mjs" },
  chunkNames: "chunks/[name]-[hash]",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  sourcemap: "linked",
  metafile: true,
  logLevel: "warning",
  // Optional native parts of dependencies (ssh2 tries cpu-features; pg loads pg-native only when
  // asked): left to node at run time, so they are used when installed, as without the bundle.
  external: ["cpu-features", "pg-native"],
  plugins: [nativeAddonsFromTheirPackage(), yargsLocalesInDist(), stringWidthOnFirstUse(), precompiledTemplates(), playbookSnapshot()],
  // CommonJS dependencies (ssh2's poly1305 loader) read these; ESM has them on import.meta.
  define: { __dirname: "import.meta.dirname", __filename: "import.meta.filename" },
  // ...and call require() for node's built-in modules and the externals above.
  banner: { js: 'import { createRequire as __pgprovCreateRequire } from "node:module"; const require = __pgprovCreateRequire(import.meta.url);' },
};

/**
 * A dependency's own `.node` addon (ssh2's crypto binding), required by a path relative to its
 * source file: required instead through its package name, so it resolves from the bundle to
 * where npm put the package, and is found when it was built.
 */
function nativeAddonsFromTheirPackage() {
  return {
    name: "native-addons",
    setup(build) {
      build.onResolve({ filter: /\.node$/ }, (args) => {
        const file = resolve(args.resolveDir, args.path);
        const marker = `${sep}node_modules${sep}`;
        const at = file.lastIndexOf(marker);
        if (at < 0) return undefined;
        return { path: file.slice(at + marker.length).split(sep).join("/"), external: true };
      });
    },
  };
}

/**
 * yargs translates its own texts (help, errors) by LANG, from JSON files it finds relative to its
 * source file. In the bundle that file is dist/pgprov.mjs: the files are copied to dist/locales.
 */
function yargsLocalesInDist() {
  return {
    name: "yargs-locales",
    setup(build) {
      build.onLoad({ filter: /[\\/]yargs[\\/]lib[\\/]platform-shims[\\/]esm\.mjs$/ }, (args) => {
        const source = readFileSync(args.path, "utf8");
        const patched = source.replace("resolve(__dirname, '../../../locales')", "resolve(__dirname, '../locales')");
        if (patched === source) throw new Error(`${args.path}: where yargs finds its locales has changed; update scripts/build.mjs`);
        return { contents: patched, loader: "js" };
      });
    },
  };
}

/** src/playbook/precompiled.ts in the bundle: the bundled playbook's templates, compiled now (see scripts/precompile-templates.mjs). */
function precompiledTemplates() {
  return {
    name: "precompiled-templates",
    setup(build) {
      build.onLoad({ filter: /[\\/]src[\\/]playbook[\\/]precompiled\.ts$/ }, () => ({
        contents: precompiledModule(root),
        loader: "js",
        watchFiles: [join(root, "playbooks", "cluster.yml")],
        watchDirs: [join(root, "templates")],
      }));
    },
  };
}

/**
 * src/cluster/playbook-snapshot.ts in the bundle: the bundled playbook loaded and checked now
 * (snapshotClusterPlaybook, run from a bundle of its own sources), so that a run binds it to the
 * inventory instead of parsing it (see snapshotPlaybook in src/playbook/playbook.ts). The
 * snapshot holds the playbook's and its templates' texts: an edited file is loaded at run time.
 */
function playbookSnapshot() {
  return {
    name: "playbook-snapshot",
    setup(build) {
      build.onLoad({ filter: /[\\/]src[\\/]cluster[\\/]playbook-snapshot\.ts$/ }, async () => {
        const dir = mkdtempSync(join(tmpdir(), "pgprov-snapshot-"));
        try {
          const entry = join(dir, "snapshot.mjs");
          await esbuild.build({
            ...options,
            entryPoints: undefined,
            stdin: { contents: 'export { snapshotClusterPlaybook } from "./src/cluster/playbook.ts";', resolveDir: root, loader: "ts" },
            outdir: undefined,
            outfile: entry,
            splitting: false,
            sourcemap: false,
            metafile: false,
            plugins: [nativeAddonsFromTheirPackage(), yargsLocalesInDist()],
          });
          const { snapshotClusterPlaybook } = await import(pathToFileURL(entry).href);
          const snapshot = snapshotClusterPlaybook(join(root, "playbooks", "cluster.yml"));
          // No watch lists: the snapshot depends on the playbook, its templates and the module
          // schemas; this script builds once (a watch mode would have to rebuild it on any source).
          return { contents: `export const BUNDLED_SNAPSHOT = ${JSON.stringify(snapshot)};\n`, loader: "js" };
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });
    },
  };
}

/**
 * string-width builds Unicode property regexes and an Intl.Segmenter when it is loaded: 30 to
 * 40 ms of CPU per copy (three copies), paid at every start since yargs and cliui import it, and
 * yargs lays out the command's help before running any command. Each `import stringWidth from
 * "string-width"` gets a stand-in: printable ASCII (all of pgprov's own texts) is one column per
 * character, answered at once; anything else requires the real module, on its first call
 * (esbuild bundles a require()d ES module behind a lazy initialiser).
 */
function stringWidthOnFirstUse() {
  return {
    name: "string-width-on-first-use",
    setup(build) {
      build.onResolve({ filter: /^string-width$/ }, async (args) => {
        if (args.pluginData === "real") return undefined;
        const real = await build.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: "real" });
        if (real.errors.length > 0) return { errors: real.errors };
        return { path: real.path, namespace: "string-width-on-first-use" };
      });
      build.onLoad({ filter: /.*/, namespace: "string-width-on-first-use" }, (args) => ({
        contents: [
          "export default function stringWidth(string, options) {",
          "  if (typeof string === 'string' && /^[\\x20-\\x7e]*$/.test(string)) return string.length;",
          `  return require(${JSON.stringify(args.path)}).default(string, options);`,
          "}",
        ].join("\n"),
        resolveDir: dirname(args.path),
        loader: "js",
      }));
    },
  };
}

rmSync(join(root, "dist"), { recursive: true, force: true });
const { metafile } = await esbuild.build(options);
if (!Object.keys(metafile.outputs["dist/pgprov.mjs"].inputs).includes(YARGS_SHIM)) {
  throw new Error(`${YARGS_SHIM} is no longer in dist/pgprov.mjs: yargs would not find dist/locales`);
}
cpSync(join(root, "node_modules/yargs/locales"), join(root, "dist/locales"), { recursive: true });
writeFileSync(join(root, "dist/metafile.json"), JSON.stringify(metafile));
