// Shared vitest settings: every package resolves workspace imports to TypeScript sources
// (the "@tinyllama/source" export condition), so tests never run against stale builds.
import { defaultServerConditions } from "vite";
import { defineConfig } from "vitest/config";

const conditions = ["@tinyllama/source", ...defaultServerConditions];

export const sharedConfig = defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: conditions } },
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts", "*.test.ts"],
    environment: "node",
    passWithNoTests: true,
    // Each package leaves a JSON report that tools/ci-summary.mjs adds up into one closing line.
    reporters: ["default", "json"],
    outputFile: { json: "test-results/vitest.json" },
    // Caps for hangs, not speed checks: on a 2-core machine whose cores other jobs share, a
    // whole-pipeline test or a beforeAll that prepares the sample took over 60 s (and 10 s, the
    // hook default) while passing at 15 s on a quiet one.
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
