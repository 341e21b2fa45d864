// Reads a parquet file with @tinyllama/data's reader (row group by row group) and prints the
// row count and a sha256 over the `content` column, for check.py to compare with pyarrow.
// Bundled by build.sh into one file so it runs where node_modules are absent.
import { createHash } from "node:crypto";
import { BadRecordLog } from "../../../../packages/data/src/document.js";
import { readParquetRows } from "../../../../packages/data/src/io/parquet.js";

const path = process.argv[2] as string;
const bad = new BadRecordLog();
const h = createHash("sha256");
let rows = 0;
for await (const r of readParquetRows(path, bad, { columns: ["content", "max_stars_repo_path"] })) {
  h.update(String(r.value.content));
  h.update("\0");
  rows++;
}
console.log(JSON.stringify({ file: path, rows, sha256: h.digest("hex"), bad: bad.entries }));
