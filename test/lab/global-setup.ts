/**
 * vitest global setup for the end-to-end tests. It prepares the machine once (tools, SSH key, the
 * Debian images, bookworm and trixie: about a minute each the first time on a machine), so no test times out on it; each test
 * file then boots the fresh hosts it needs with labUp, which takes about a second. Files run side by
 * side, each worker on a lab instance of its own (its VITEST_POOL_ID: own bridge, subnet and
 * directory). However the run ends, the teardown leaves the machine as it was found.
 */
import { labDownAll, labPrepare } from "./lab.js";

export default async function setup(): Promise<() => Promise<void>> {
  for (const os of ["bookworm", "trixie"] as const) await labPrepare({ os, log: (l) => process.stderr.write(`lab: ${l}\n`) });
  return async () => {
    await labDownAll();
  };
}
