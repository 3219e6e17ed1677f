import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // Lab instances per run are PGPROV_LAB + 1..3 (MAX_WORKERS in test/lab/lib/state.ts).
    maxWorkers: 3,
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          // A few unit tests run real processes (the remote shell's loop, openssl, ssh -G) and wait
          // up to 15 s for them: on 2 cores that e2e labs load, vitest's 5 s default is too short.
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          // Prepares the machine once (image, apt proxy, keys); each file boots the hosts it needs.
          globalSetup: ["test/lab/global-setup.ts"],
          // Files run side by side, each worker on a lab instance of its own (test/lab/lib/state.ts):
          // most of an e2e file's time is waiting on its hosts, not the machine's 2 cores.
          fileParallelism: true,
          maxWorkers: 3,
          testTimeout: 300_000,
          hookTimeout: 600_000,
        },
      },
    ],
  },
});
