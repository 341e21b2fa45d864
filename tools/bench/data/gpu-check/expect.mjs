// Writes expect.json: per source of ./data, the block count and a sha256 over every block as
// ShardSet reads them, for check.py to compare with a numpy/lit-gpt style read.
import { createHash } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";

const { ShardSet } = await import(
  new URL("../../../../packages/data/dist/index.js", import.meta.url).href
);
/** @type {Record<string, { blocks: number, sha256: string, files: string[] }>} */
const out = {};
// every source `pnpm data:prepare` wrote (a directory with a manifest), not a fixed list
const sources = readdirSync("data", { withFileTypes: true })
  .filter((e) => e.isDirectory() && existsSync(`data/${e.name}/manifest.json`))
  .map((e) => e.name)
  .sort();
if (sources.length === 0)
  throw new Error("no source directories with a manifest.json under ./data");
for (const src of sources) {
  const set = await ShardSet.open(`data/${src}`);
  const h = createHash("sha256");
  for (let g = 0; g < set.numBlocks; g++) h.update(set.readGlobalBlock(g));
  out[src] = {
    blocks: set.numBlocks,
    sha256: h.digest("hex"),
    files: set.files.map((/** @type {{ name: string }} */ f) => f.name),
  };
}
console.log(JSON.stringify(out));
