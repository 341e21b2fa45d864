#!/usr/bin/env node
// The main job on the bundled sample: build, then prepare -> train -> evaluate, each step a
// root script, timed, with a closing table of where the results went. A step whose root
// script does not exist yet is reported as "not built yet" rather than silently skipped.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const scripts = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).scripts ?? {};
// pnpm 12 ships as a native binary; older releases as a .cjs script run by node.
const execpath = process.env.npm_execpath;
/** @type {[string, ...string[]]} */
const pnpm = !execpath
  ? ["pnpm"]
  : /\.[cm]?js$/.test(execpath)
    ? [process.execPath, execpath]
    : [execpath];

const steps = [
  { name: "build", args: ["run", "build"], outputs: "packages/*/dist" },
  { name: "prepare", args: ["run", "data:prepare"], outputs: "data/" },
  // On CPU even where a GPU is built: `pnpm train`'s GPU defaults are TinyLlama 1.1B on the
  // paper's full token budget, which on the bundled sample would not end; the sample job trains
  // the small CPU default (tinyllama-4m, a minute on 2 cores) wherever it runs.
  { name: "train", args: ["run", "train", "--device", "cpu"], outputs: "runs/tinyllama-4m/" },
  { name: "eval", args: ["run", "eval", "--device", "cpu"], outputs: "runs/tinyllama-4m/eval/" },
];

const rows = [];
for (const step of steps) {
  const script = step.args[1] ?? "";
  if (!(script in scripts)) {
    rows.push([step.name, "not built yet", "-", "-"]);
    continue;
  }
  console.log(`\n== ${step.name}: pnpm ${step.args.join(" ")}`);
  const t0 = performance.now();
  const [command, ...prefix] = pnpm;
  const r = spawnSync(command, [...prefix, ...step.args], { cwd: root, stdio: "inherit" });
  const seconds = ((performance.now() - t0) / 1000).toFixed(1);
  if (r.status !== 0) {
    console.error(
      `main job: step "${step.name}" failed (exit ${r.status ?? r.signal}) after ${seconds}s`,
    );
    process.exit(r.status ?? 1);
  }
  rows.push([step.name, "ok", `${seconds}s`, step.outputs]);
}

console.log("\nmain job summary");
const widths = [8, 14, 8, 0];
for (const row of [["step", "status", "time", "outputs"], ...rows]) {
  console.log(row.map((c, i) => (widths[i] ? c.padEnd(widths[i]) : c)).join("  "));
}
