#!/usr/bin/env node
// Adds up the vitest JSON reports of every workspace package into one closing line,
// "N passed, N failed, N skipped", and fails when any test failed or no test ran at all.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
const dirs = [
  ...readdirSync(join(root, "packages")).map((d) => join("packages", d)),
  "tools",
  "test",
];
let passed = 0;
let failed = 0;
let skipped = 0;
for (const dir of dirs) {
  const file = join(root, dir, "test-results", "vitest.json");
  if (!existsSync(file)) continue;
  const r = JSON.parse(readFileSync(file, "utf8"));
  passed += r.numPassedTests;
  failed += r.numFailedTests;
  skipped += r.numPendingTests + r.numTodoTests;
  console.log(`${dir.padEnd(20)} ${r.numPassedTests} passed, ${r.numFailedTests} failed`);
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
