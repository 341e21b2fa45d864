#!/usr/bin/env node
// Reading jsonl with very long records: one document of --mb megabytes on a line (RedPajama's
// books run to tens of MB), between two short lines, read by the pipeline's record reader
// (readRecords) from a plain .jsonl and a .jsonl.zst. Each case runs in its own child process,
// for this build and, with --baseline, another build of the data package, alternated: seconds,
// peak RSS and the records' total text length (both builds must agree).
//
//   node tools/bench/data/long-record.mjs [--baseline <packages/data/dist of another build>]
//     [--mb 8,32,64,128] [--json out.json]
// Needs pnpm build. The files go under $TMPDIR and are deleted at the end.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { runHeader } from "./report.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const { values } = parseArgs({
  options: {
    baseline: { type: "string" },
    mb: { type: "string" },
    json: { type: "string" },
    child: { type: "string" },
    dist: { type: "string" },
  },
});

if (values.child) {
  const dist = values.dist ?? "";
  const { readRecords, formatOf } = await import(pathToFileURL(join(dist, "io/records.js")).href);
  const { BadRecordLog } = await import(pathToFileURL(join(dist, "document.js")).href);
  const t0 = performance.now();
  let chars = 0;
  let records = 0;
  const bad = new BadRecordLog();
  for await (const r of readRecords(values.child, formatOf(values.child), bad)) {
    chars += r.value.text.length;
    records++;
  }
  const seconds = (performance.now() - t0) / 1000;
  console.log(
    JSON.stringify({
      seconds: +seconds.toFixed(3),
      records,
      chars,
      bad: bad.count,
      maxRssMB: +(process.resourceUsage().maxRSS / 1024).toFixed(0),
    }),
  );
  process.exit(0);
}

const { compress } = createRequire(join(root, "packages/data/package.json"))("zstd-napi");
const builds = {
  current: join(root, "packages/data/dist"),
  ...(values.baseline ? { baseline: values.baseline } : {}),
};
const scratch = mkdtempSync(join(tmpdir(), "long-record-"));
/** @type {Record<string, unknown>[]} */
const rows = [];
try {
  for (const mb of (values.mb ?? "8,32,64,128").split(",").map(Number)) {
    const text = "a long book line ".repeat(Math.ceil((mb * 1e6) / 17)).slice(0, mb * 1e6);
    const body = `{"text":"first"}\n${JSON.stringify({ text })}\n{"text":"last"}\n`;
    for (const ext of ["jsonl", "jsonl.zst"]) {
      const path = join(scratch, `long-${mb}.${ext}`);
      writeFileSync(path, ext === "jsonl" ? body : compress(Buffer.from(body)));
      /** @type {Record<string, unknown>} */
      const row = { mb, format: ext };
      for (const [name, dist] of Object.entries(builds)) {
        const r = spawnSync(
          process.execPath,
          [fileURLToPath(import.meta.url), "--child", path, "--dist", dist],
          { encoding: "utf8" },
        );
        row[name] =
          r.status === 0
            ? JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "{}")
            : { failed: r.stderr.trim().split("\n").slice(-3).join(" ") };
        console.error(`${mb} MB ${ext}: ${name} ${JSON.stringify(row[name])}`);
      }
      rows.push(row);
      rmSync(path);
    }
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
const report = { ...runHeader(), command: process.argv.slice(1).join(" "), rows };
console.log(JSON.stringify(report, null, 2));
if (values.json) writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`);
