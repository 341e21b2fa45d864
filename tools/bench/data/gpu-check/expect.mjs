// Writes expect.json: per source of ./data, the block count and a sha256 over every block as
// ShardSet reads them, for check.py to compare with a numpy/lit-gpt style read.
import { createHash } from "node:crypto";

const { ShardSet } = await import(
  new URL("../../../../packages/data/dist/index.js", import.meta.url).href
);
/** @type {Record<string, { blocks: number, sha256: string, files: string[] }>} */
const out = {};
for (const src of ["slimpajama", "starcoderdata", "proofpile2", "skypile"]) {
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
