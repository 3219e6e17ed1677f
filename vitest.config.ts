import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
        },
      },
      {
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          // Prepares the machine once (image, apt proxy, keys); each file boots the hosts it needs.
          globalSetup: ["test/lab/global-setup.ts"],
          // One lab at a time: the hosts share one bridge and address range.
          fileParallelism: false,
          testTimeout: 300_000,
          hookTimeout: 600_000,
        },
      },
    ],
  },
});
