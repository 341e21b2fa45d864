/**
 * lit-gpt `PackedDataset` file format ("LITPKDS"), byte for byte.
 *
 * Little-endian, a 24-byte header then raw tokens:
 *   0..6   ASCII magic "LITPKDS"
 *   7..14  uint64 version = 1
 *   15     uint8 dtype code (8 = uint16, the only one Llama's 32000-token vocabulary needs)
 *   16..23 uint64 chunk_size = number of tokens in the file
 *   24..   chunk_size tokens
 *
 * The reference padded the last chunk of every worker with BOS; we never pad. A file holds
 * exactly `chunk_size` tokens, a whole number of blocks. Note lit-gpt's own reader takes the
 * chunk size of the first file for every file, so it needs all files of a set to be equally
 * long; our `ShardSet` reads each file's own header (see the README).
 */
import { createHash } from "node:crypto";
import { open, rename, rm } from "node:fs/promises";
import { tempSuffix } from "../dedup/files.js";

export const LITPKDS_MAGIC = "LITPKDS";
export const LITPKDS_VERSION = 1;
export const LITPKDS_HEADER_BYTES = 24;
/** lit-gpt dtype codes. */
export const LITPKDS_DTYPE_CODES = {
  uint8: 1,
  int8: 2,
  int16: 3,
  int32: 4,
  int64: 5,
  float32: 6,
  float64: 7,
  uint16: 8,
} as const;
export const UINT16_DTYPE_CODE = LITPKDS_DTYPE_CODES.uint16;
/** A packed block: 2048 inputs + 1 shifted target. */
export const DEFAULT_BLOCK_SIZE = 2049;
/** Tokens per file in the reference: 1024 blocks of 2049. */
export const DEFAULT_CHUNK_TOKENS = 2049 * 1024;

export interface LitpkdsHeader {
  version: number;
  dtypeCode: number;
  /** Number of tokens that follow the header. */
  chunkSize: number;
}

export function encodeLitpkdsHeader(chunkSize: number, dtypeCode = UINT16_DTYPE_CODE): Buffer {
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 0) {
    throw new RangeError(`LITPKDS chunk size must be a non-negative integer, got ${chunkSize}`);
  }
  const header = Buffer.alloc(LITPKDS_HEADER_BYTES);
  header.write(LITPKDS_MAGIC, 0, "ascii");
  header.writeBigUInt64LE(BigInt(LITPKDS_VERSION), 7);
  header.writeUInt8(dtypeCode, 15);
  header.writeBigUInt64LE(BigInt(chunkSize), 16);
  return header;
}

/** Parses a header; `where` names the file in error messages. */
export function decodeLitpkdsHeader(bytes: Uint8Array, where = "<buffer>"): LitpkdsHeader {
  if (bytes.length < LITPKDS_HEADER_BYTES) {
    throw new Error(
      `${where}: not a LITPKDS shard: ${bytes.length} bytes, shorter than the ${LITPKDS_HEADER_BYTES}-byte header`,
    );
  }
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, LITPKDS_HEADER_BYTES);
  const magic = buf.toString("latin1", 0, 7);
  if (magic !== LITPKDS_MAGIC) {
    throw new Error(`${where}: not a LITPKDS shard: magic is ${JSON.stringify(magic)}`);
  }
  const version = Number(buf.readBigUInt64LE(7));
  if (version !== LITPKDS_VERSION) {
    throw new Error(`${where}: unsupported LITPKDS version ${version} (expected 1)`);
  }
  const dtypeCode = buf.readUInt8(15);
  const chunkSize = Number(buf.readBigUInt64LE(16));
  return { version, dtypeCode, chunkSize };
}

export interface WrittenShard {
  path: string;
  tokens: number;
  bytes: number;
  sha256: string;
}

/**
 * Writes one shard atomically (temp file, fsync, rename) and returns its sha256, so a crash
 * never leaves a half-written file under the final name.
 */
export async function writeLitpkdsFile(path: string, tokens: Uint16Array): Promise<WrittenShard> {
  const header = encodeLitpkdsHeader(tokens.length);
  const body = Buffer.from(tokens.buffer, tokens.byteOffset, tokens.byteLength);
  if (!littleEndian) throw new Error("big-endian hosts are not supported by the LITPKDS writer");
  const hash = createHash("sha256").update(header).update(body);
  const tmp = `${path}${tempSuffix()}`;
  const fh = await open(tmp, "w");
  try {
    await fh.writev([header, body]);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  await rename(tmp, path);
  return {
    path,
    tokens: tokens.length,
    bytes: header.length + body.length,
    sha256: hash.digest("hex"),
  };
}

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
