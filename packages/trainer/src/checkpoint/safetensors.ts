/**
 * safetensors reader and writer (https://huggingface.co/docs/safetensors): an 8-byte
 * little-endian header length, a JSON header naming each tensor's dtype, shape and byte range,
 * padded with spaces to 8 bytes, then the raw little-endian data. Reading checks every range
 * against the file so a truncated or corrupt file fails with its name and the tensor at fault.
 * Tensors are returned as f32 (BF16 and F16 are widened), which is what the trainer and the
 * CPU backend consume; the writer stores F32 (master weights, optimizer state) or I64/U8 blobs.
 */
import { createHash } from "node:crypto";
import { closeSync, fstatSync, openSync, readSync, writeSync } from "node:fs";

export type SafetensorsDType = "F32" | "BF16" | "F16" | "I32" | "I64" | "U8" | "U16";

const DTYPE_BYTES: Record<SafetensorsDType, number> = {
  F32: 4,
  BF16: 2,
  F16: 2,
  I32: 4,
  I64: 8,
  U8: 1,
  U16: 2,
};

export interface TensorEntry {
  dtype: SafetensorsDType;
  shape: number[];
  /** Byte range inside the data section. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  tensors: Map<string, TensorEntry>;
  metadata: Record<string, string>;
  /** Absolute file offset where the data section starts. */
  dataStart: number;
  fileBytes: number;
}

const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export function readSafetensorsHeader(path: string): SafetensorsHeader {
  const fd = openSync(path, "r");
  try {
    const fileBytes = fstatSync(fd).size;
    if (fileBytes < 8) throw new Error(`${path}: not a safetensors file (only ${fileBytes} bytes)`);
    const lenBuf = Buffer.alloc(8);
    readSync(fd, lenBuf, 0, 8, 0);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen > MAX_HEADER_BYTES || 8 + headerLen > fileBytes) {
      throw new Error(
        `${path}: corrupt safetensors header length ${headerLen} for a ${fileBytes}-byte file`,
      );
    }
    const hb = Buffer.alloc(headerLen);
    readSync(fd, hb, 0, headerLen, 8);
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(hb.toString("utf8")) as Record<string, unknown>;
    } catch (e) {
      throw new Error(`${path}: safetensors header is not valid JSON (${(e as Error).message})`);
    }
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      throw new Error(`${path}: safetensors header is not a JSON object`);
    }
    const dataStart = 8 + headerLen;
    const dataBytes = fileBytes - dataStart;
    const tensors = new Map<string, TensorEntry>();
    let metadata: Record<string, string> = {};
    for (const [name, raw] of Object.entries(json)) {
      if (name === "__metadata__") {
        metadata = (raw ?? {}) as Record<string, string>;
        continue;
      }
      if (typeof raw !== "object" || raw === null) {
        throw new Error(`${path}: tensor "${name}" has no dtype, shape and data_offsets`);
      }
      const r = raw as { dtype?: string; shape?: number[]; data_offsets?: number[] };
      const dtype = r.dtype as SafetensorsDType;
      if (!Object.hasOwn(DTYPE_BYTES, String(dtype))) {
        throw new Error(`${path}: tensor "${name}" has unsupported dtype ${String(r.dtype)}`);
      }
      const shape = r.shape;
      const off = r.data_offsets;
      const count = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
      if (!Array.isArray(shape) || !Array.isArray(off) || off.length !== 2) {
        throw new Error(`${path}: tensor "${name}" lacks shape or data_offsets`);
      }
      if (!shape.every(count) || !off.every(count)) {
        throw new Error(
          `${path}: tensor "${name}" has shape ${JSON.stringify(shape)} and data_offsets ` +
            `${JSON.stringify(off)}; both must hold non-negative integers`,
        );
      }
      const [begin, end] = off as [number, number];
      const numel = shape.reduce((a, b) => a * b, 1);
      if (end - begin !== numel * DTYPE_BYTES[dtype] || begin < 0 || end > dataBytes) {
        throw new Error(
          `${path}: tensor "${name}" (${dtype} [${shape.join(",")}]) has byte range ` +
            `[${begin}, ${end}) that does not fit its shape or the ${dataBytes}-byte data section (truncated file?)`,
        );
      }
      tensors.set(name, { dtype, shape, begin, end });
    }
    // As the reference reader: the tensors tile the data section exactly, in offset order. Two
    // tensors sharing bytes would load one's data as the other's, and bytes no tensor covers
    // (a gap, or anything after the last tensor) mean the header and data do not belong together.
    let covered = 0;
    let prev: string | null = null;
    const byOffset = [...tensors].sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end);
    for (const [name, { begin, end }] of byOffset) {
      if (begin < covered) {
        throw new Error(
          `${path}: tensor "${name}" [${begin}, ${end}) overlaps tensor "${prev}" (which ends at ${covered}): corrupt header`,
        );
      }
      if (begin > covered) {
        throw new Error(
          `${path}: bytes [${covered}, ${begin}) of the data section belong to no tensor ` +
            `(before tensor "${name}"): corrupt header`,
        );
      }
      covered = end;
      prev = name;
    }
    if (covered !== dataBytes) {
      throw new Error(
        `${path}: ${dataBytes - covered} bytes after the last tensor's data (tensors cover ${covered} ` +
          `of the ${dataBytes}-byte data section): trailing garbage or a header of another file`,
      );
    }
    return { tensors, metadata, dataStart, fileBytes };
  } finally {
    closeSync(fd);
  }
}

function bf16ToF32(src: Buffer, dst: Float32Array): void {
  const u32 = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < dst.length; i++) u32[i] = src.readUInt16LE(2 * i) << 16;
}

function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Reads one floating-point tensor as f32 into `out` (or a new array). */
export function readTensorF32(
  path: string,
  header: SafetensorsHeader,
  name: string,
  out?: Float32Array,
): Float32Array {
  const e = header.tensors.get(name);
  if (!e) throw new Error(`${path}: tensor "${name}" is missing`);
  const numel = e.shape.reduce((a, b) => a * b, 1);
  const dst = out ?? new Float32Array(numel);
  if (dst.length !== numel) {
    throw new Error(`${path}: tensor "${name}" has ${numel} elements, destination ${dst.length}`);
  }
  const fd = openSync(path, "r");
  try {
    const bytes = e.end - e.begin;
    if (e.dtype === "F32") {
      const view = new Uint8Array(dst.buffer, dst.byteOffset, bytes);
      readFully(fd, view, header.dataStart + e.begin, path);
      return dst;
    }
    const buf = Buffer.alloc(bytes);
    readFully(fd, buf, header.dataStart + e.begin, path);
    if (e.dtype === "BF16") bf16ToF32(buf, dst);
    else if (e.dtype === "F16")
      for (let i = 0; i < numel; i++) dst[i] = f16ToF32(buf.readUInt16LE(2 * i));
    else throw new Error(`${path}: tensor "${name}" is ${e.dtype}, expected a float tensor`);
    return dst;
  } finally {
    closeSync(fd);
  }
}

/** Reads a raw (integer or byte) tensor's bytes. */
export function readTensorBytes(path: string, header: SafetensorsHeader, name: string): Buffer {
  const e = header.tensors.get(name);
  if (!e) throw new Error(`${path}: tensor "${name}" is missing`);
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.alloc(e.end - e.begin);
    readFully(fd, buf, header.dataStart + e.begin, path);
    return buf;
  } finally {
    closeSync(fd);
  }
}

function readFully(fd: number, view: Uint8Array, position: number, path: string): void {
  let done = 0;
  while (done < view.length) {
    const n = readSync(fd, view, done, Math.min(view.length - done, 1 << 30), position + done);
    if (n <= 0) throw new Error(`${path}: unexpected end of file at byte ${position + done}`);
    done += n;
  }
}

export interface TensorToWrite {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Little-endian bytes, e.g. a Float32Array's; a function is called when the tensor is
   * written, so a large model streams one tensor at a time through host memory. */
  data: ArrayBufferView | (() => ArrayBufferView);
}

/** A written file's size and SHA-256 (hex), recorded in trainer-state.json and checked on resume. */
export interface FileDigest {
  bytes: number;
  sha256: string;
}

/**
 * Writes tensors in the given order (HF and this project keep their own order; the format
 * sorts nothing) to `path`, streaming each tensor so nothing is copied into one big buffer.
 * Returns the file's size and SHA-256, hashed from the bytes as they are written (no re-read).
 */
export function writeSafetensors(
  path: string,
  tensors: TensorToWrite[],
  metadata: Record<string, string> = {},
): FileDigest {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    const bytes = numel * DTYPE_BYTES[t.dtype];
    if (t.name in header) throw new Error(`safetensors write: duplicate tensor "${t.name}"`);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  const pad = (8 - (Buffer.byteLength(json) % 8)) % 8;
  json += " ".repeat(pad);
  const hb = Buffer.from(json, "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hb.length));
  const hash = createHash("sha256");
  let written = 0;
  const fd = openSync(path, "w");
  try {
    for (const b of [len, hb]) {
      let done = 0;
      while (done < b.length) done += writeSync(fd, b, done, b.length - done);
      hash.update(b);
      written += b.length;
    }
    for (const t of tensors) {
      const data = typeof t.data === "function" ? t.data() : t.data;
      const bytes = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
      if (data.byteLength !== bytes) {
        throw new Error(
          `safetensors write: tensor "${t.name}" ${t.dtype} [${t.shape.join(",")}] needs ${bytes} bytes, got ${data.byteLength}`,
        );
      }
      const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      let done = 0;
      while (done < view.length) {
        done += writeSync(fd, view, done, Math.min(view.length - done, 1 << 30));
      }
      hash.update(view);
      written += view.length;
    }
  } finally {
    closeSync(fd);
  }
  return { bytes: written, sha256: hash.digest("hex") };
}

/** SHA-256 (hex) and size of a file, read in 16 MiB chunks. */
export function digestFile(path: string): FileDigest {
  const fd = openSync(path, "r");
  try {
    const hash = createHash("sha256");
    const buf = Buffer.allocUnsafe(16 << 20);
    let bytes = 0;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, bytes);
      if (n <= 0) break;
      hash.update(buf.subarray(0, n));
      bytes += n;
    }
    return { bytes, sha256: hash.digest("hex") };
  } finally {
    closeSync(fd);
  }
}
