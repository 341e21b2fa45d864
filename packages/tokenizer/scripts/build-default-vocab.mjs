// Derives the bundled default vocabulary (vocab/llama2.tltk) from the npm package
// llama-tokenizer-js, which ships the Llama 2 vocabulary (in id order) and the merge list of the
// Hugging Face tokenizer.json, both base64-encoded inside llama-tokenizer.js. We read the two
// constants from the file's text (rather than through its API) so the output depends only on
// the shipped data, and record the file's sha256 so anyone can check where the bytes came from.
//
// Run from packages/tokenizer: node scripts/build-default-vocab.mjs [--out <path>]
// The output is committed; the runtime never needs llama-tokenizer-js.
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "..", "package.json"));
const pkgDir = dirname(require.resolve("llama-tokenizer-js/package.json"));
const pkg = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));
const sourcePath = join(pkgDir, "llama-tokenizer.js");
const source = readFileSync(sourcePath);
const text = source.toString("utf8");

function constant(name) {
  const m = new RegExp(`const ${name} = "([A-Za-z0-9+/=]+)"`).exec(text);
  if (!m) throw new Error(`${name} not found in ${sourcePath}; the package layout changed`);
  return Buffer.from(m[1], "base64");
}

const pieces = constant("llama_vocab_base64").toString("utf8").split("\n");
const mergeBytes = constant("llama_merges_binary");
if (pieces.length !== 32000) throw new Error(`expected 32000 pieces, got ${pieces.length}`);
if (mergeBytes.length % 4 !== 0) throw new Error("merge data is not a whole number of pairs");

// Piece types, SentencePiece numbering: 1 normal, 2 unknown, 3 control, 6 byte.
const types = new Uint8Array(pieces.length).fill(1);
types[0] = 2;
types[1] = 3;
types[2] = 3;
for (let b = 0; b < 256; b++) {
  const expect = `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`;
  if (pieces[3 + b] !== expect)
    throw new Error(`piece ${3 + b} is ${pieces[3 + b]}, expected ${expect}`);
  types[3 + b] = 6;
}

const mergeCount = mergeBytes.length / 4;
const merges = new Uint16Array(mergeCount * 2);
for (let i = 0; i < mergeCount * 2; i++) merges[i] = mergeBytes.readUInt16LE(i * 2);

const header = {
  format: "tltk",
  version: 1,
  name: "llama2",
  vocabSize: pieces.length,
  mergeCount,
  unkId: 0,
  bosId: 1,
  eosId: 2,
  byteFallback: true,
  addDummyPrefix: true,
  escapeWhitespaces: true,
  removeExtraWhitespaces: false,
  mergeOrder: "rank",
  provenance: {
    package: `${pkg.name}@${pkg.version}`,
    file: "llama-tokenizer.js (constants llama_vocab_base64, llama_merges_binary)",
    sha256: createHash("sha256").update(source).digest("hex"),
    generator: "packages/tokenizer/scripts/build-default-vocab.mjs",
  },
};

const pieceBytes = pieces.map((p) => Buffer.from(p, "utf8"));
const lengths = Buffer.alloc(pieces.length * 2);
pieceBytes.forEach((b, i) => {
  lengths.writeUInt16LE(b.length, i * 2);
});
const headerBytes = Buffer.from(JSON.stringify(header), "utf8");
const prefix = Buffer.alloc(12);
prefix.write("TLTK", 0, "latin1");
prefix.writeUInt32LE(1, 4);
prefix.writeUInt32LE(headerBytes.length, 8);
const body = Buffer.concat([
  prefix,
  headerBytes,
  lengths,
  Buffer.from(types),
  Buffer.from(merges.buffer, merges.byteOffset, merges.byteLength),
  ...pieceBytes,
]);
const out = gzipSync(body, { level: 9 });
const outFlag = process.argv.indexOf("--out");
const outPath =
  outFlag > 0 ? process.argv[outFlag + 1] : join(here, "..", "vocab", "llama2.tltk.gz");
writeFileSync(outPath, out);
console.log(
  `wrote ${outPath}: ${pieces.length} pieces, ${mergeCount} merges, ${out.length} bytes, ` +
    `sha256 ${createHash("sha256").update(out).digest("hex")} (from ${header.provenance.package} ${header.provenance.sha256})`,
);
