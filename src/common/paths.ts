/** Where pgprov's own files are, whether it runs bundled (dist/) or from source (tests). */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function packageRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "pgprov") return dir;
    if (dirname(dir) === dir) throw new Error(`pgprov: cannot find its package root above ${from}`);
  }
}

export const PACKAGE_ROOT = packageRoot(dirname(fileURLToPath(import.meta.url)));
export const BUNDLED_PLAYBOOK = join(PACKAGE_ROOT, "playbooks", "cluster.yml");
