/**
 * Reads the bundled default vocabulary, `vocab/llama2.tltk.gz`, produced at build time by
 * scripts/build-default-vocab.mjs from the npm package llama-tokenizer-js (provenance in the
 * file header and in vocab/PROVENANCE.md). Layout after gunzip, little-endian:
 *   "TLTK" u32 version u32 headerBytes | header JSON | u16 pieceBytes[vocab] | u8 type[vocab]
 *   | u16 (left, right)[merges] in rank order | piece UTF-8 bytes, concatenated
 */
import { readFile } from "node:fs/promises";
import { gunzipSync } from "node:zlib";
import type { TokenizerModel } from "./model.js";

export const BUNDLED_VOCAB_URL = new URL("../vocab/llama2.tltk.gz", import.meta.url);

export interface BundledHeader {
  format: string;
  version: number;
  vocabSize: number;
  mergeCount: number;
  unkId: number;
  bosId: number;
  eosId: number;
  byteFallback: boolean;
  addDummyPrefix: boolean;
  escapeWhitespaces: boolean;
  removeExtraWhitespaces: boolean;
  provenance: Record<string, string>;
}

export async function loadBundledModel(): Promise<TokenizerModel> {
  return parseBundled(await readFile(BUNDLED_VOCAB_URL), BUNDLED_VOCAB_URL.pathname);
}

export function parseBundled(gz: Uint8Array, source: string): TokenizerModel {
  let bytes: Buffer;
  try {
    bytes = gunzipSync(gz);
  } catch (e) {
    throw new Error(`${source}: not a gzip-compressed tokenizer vocabulary (${String(e)})`);
  }
  const fail = (why: string): never => {
    throw new Error(`${source}: corrupt bundled vocabulary: ${why}`);
  };
  if (bytes.length < 12 || bytes.toString("latin1", 0, 4) !== "TLTK") fail("bad magic");
  if (bytes.readUInt32LE(4) !== 1) fail(`unsupported version ${bytes.readUInt32LE(4)}`);
  const headerLen = bytes.readUInt32LE(8);
  let off = 12;
  let header: BundledHeader;
  try {
    header = JSON.parse(bytes.toString("utf8", off, off + headerLen)) as BundledHeader;
  } catch {
    return fail("unreadable header");
  }
  off += headerLen;
  const n = header.vocabSize;
  const need = off + n * 3 + header.mergeCount * 4;
  if (bytes.length < need) fail("truncated");
  const lengths = new Array<number>(n);
  for (let i = 0; i < n; i++) lengths[i] = bytes.readUInt16LE(off + i * 2);
  off += n * 2;
  const types = new Uint8Array(bytes.subarray(off, off + n));
  off += n;
  const mergeOff = off;
  off += header.mergeCount * 4;
  const pieces = new Array<string>(n);
  for (let i = 0; i < n; i++) {
    const len = lengths[i]!;
    if (off + len > bytes.length) fail("truncated piece text");
    pieces[i] = bytes.toString("utf8", off, off + len);
    off += len;
  }
  const merges = mergesFromIdPairs(bytes, mergeOff, header.mergeCount, pieces, fail);
  const p = header.provenance;
  return {
    pieces,
    types,
    ...merges,
    extraChars: [],
    unkId: header.unkId,
    bosId: header.bosId,
    eosId: header.eosId,
    byteFallback: header.byteFallback,
    addDummyPrefix: header.addDummyPrefix,
    escapeWhitespaces: header.escapeWhitespaces,
    removeExtraWhitespaces: header.removeExtraWhitespaces,
    source: `bundled Llama 2 vocabulary (from ${p.package ?? "?"}, sha256 ${p.sha256 ?? "?"})`,
  };
}

/**
 * The merge list is stored as (left, right) id pairs in rank order; only the merged piece's
 * id needs a string lookup. Same result as `mergesFromPairList` (the bundled test checks it)
 * without a string pair per merge, which made up half of the load time.
 */
function mergesFromIdPairs(
  bytes: Buffer,
  offset: number,
  count: number,
  pieces: string[],
  fail: (why: string) => never,
): Pick<TokenizerModel, "mergeLeft" | "mergeRight" | "mergeRank" | "mergeResult"> {
  const n = pieces.length;
  const idOf = new Map<string, number>();
  for (let i = 0; i < n; i++) if (!idOf.has(pieces[i]!)) idOf.set(pieces[i]!, i);
  const mergeLeft = new Int32Array(count);
  const mergeRight = new Int32Array(count);
  const mergeRank = new Int32Array(count);
  const mergeResult = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const a = bytes.readUInt16LE(offset + i * 4);
    const b = bytes.readUInt16LE(offset + i * 4 + 2);
    if (a >= n || b >= n) fail(`merge ${i} refers to id ${Math.max(a, b)}`);
    const result = idOf.get(pieces[a]! + pieces[b]!);
    if (result === undefined) {
      fail(
        `merge #${i} (${JSON.stringify(pieces[a])} ${JSON.stringify(pieces[b])}) makes a piece missing from the vocabulary`,
      );
    }
    mergeLeft[i] = a;
    mergeRight[i] = b;
    mergeRank[i] = i;
    mergeResult[i] = result!;
  }
  return { mergeLeft, mergeRight, mergeRank, mergeResult };
}
