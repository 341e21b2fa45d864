/**
 * Reads a SentencePiece `tokenizer.model` (protobuf `sentencepiece.ModelProto`) with a small
 * wire-format reader: only the fields the BPE encoder needs are decoded, the rest are skipped
 * by wire type. Every read is bounds-checked so a truncated or corrupt file gives an error
 * that names the file and the byte offset, never a crash or a hang.
 *
 * Field numbers (sentencepiece_model.proto): ModelProto.pieces = 1 (SentencePiece: piece 1,
 * score 2, type 3), trainer_spec = 2 (model_type 3, byte_fallback 35, unk_id 40, bos_id 41,
 * eos_id 42, treat_whitespace_as_suffix 24, unk_surface 44), normalizer_spec = 3 (name 1,
 * precompiled_charsmap 2, add_dummy_prefix 3, remove_extra_whitespaces 4,
 * escape_whitespaces 5).
 */
import { mergesFromScores, PieceType, type TokenizerModel } from "./model.js";

// ignoreBOM: a piece may be U+FEFF itself (Llama's id 30143); the default would drop it.
const UTF8 = new TextDecoder("utf-8", { ignoreBOM: true });

class ProtoReader {
  pos: number;
  constructor(
    readonly bytes: Uint8Array,
    readonly source: string,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  fail(why: string): never {
    throw new Error(`${this.source}: not a valid SentencePiece model (${why} at byte ${this.pos})`);
  }

  varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail("truncated varint");
      const b = this.bytes[this.pos++]!;
      result += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return result;
      scale *= 128;
    }
    return this.fail("varint longer than 10 bytes");
  }

  /** A length-delimited field: returns a reader over it. */
  sub(): ProtoReader {
    const len = this.varint();
    if (len > this.end - this.pos) this.fail(`field length ${len} runs past the end`);
    const r = new ProtoReader(this.bytes, this.source, this.pos, this.pos + len);
    this.pos += len;
    return r;
  }

  string(): string {
    const r = this.sub();
    return UTF8.decode(this.bytes.subarray(r.pos, r.end));
  }

  float32(): number {
    if (this.end - this.pos < 4) this.fail("truncated float");
    const v = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.pos, 4).getFloat32(
      0,
      true,
    );
    this.pos += 4;
    return v;
  }

  /** Int32 fields are varints; negative values arrive as 10-byte two's complement. */
  int32(): number {
    const v = this.varint();
    return v >= 2 ** 63 ? v - 2 ** 64 : v > 0x7fffffff ? v - 2 ** 32 : v;
  }

  skip(wireType: number): void {
    switch (wireType) {
      case 0:
        this.varint();
        return;
      case 1:
        if (this.end - this.pos < 8) this.fail("truncated fixed64");
        this.pos += 8;
        return;
      case 2:
        this.sub();
        return;
      case 5:
        if (this.end - this.pos < 4) this.fail("truncated fixed32");
        this.pos += 4;
        return;
      default:
        this.fail(`unsupported wire type ${wireType}`);
    }
  }

  *fields(): Generator<[field: number, wireType: number]> {
    while (this.pos < this.end) {
      const tag = this.varint();
      const field = Math.floor(tag / 8);
      if (field === 0) this.fail("field number 0");
      yield [field, tag & 7];
    }
  }
}

interface Spec {
  modelType: number;
  byteFallback: boolean;
  unkId: number;
  bosId: number;
  eosId: number;
  whitespaceAsSuffix: boolean;
  unkSurface: string;
  normalizerName: string;
  charsmapBytes: number;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
}

export function parseSentencePieceModel(bytes: Uint8Array, source: string): TokenizerModel {
  const pieces: string[] = [];
  const scores: number[] = [];
  const types: number[] = [];
  // proto2 defaults from sentencepiece_model.proto.
  const spec: Spec = {
    modelType: 1,
    byteFallback: false,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    whitespaceAsSuffix: false,
    unkSurface: " \u2047 ",
    normalizerName: "",
    charsmapBytes: 0,
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
  };
  let sawTrainer = false;
  const top = new ProtoReader(bytes, source, 0, bytes.length);
  for (const [field, wt] of top.fields()) {
    if (field === 1 && wt === 2) {
      const r = top.sub();
      let piece = "";
      let score = 0;
      let type: number = PieceType.normal;
      for (const [f, w] of r.fields()) {
        if (f === 1 && w === 2) piece = r.string();
        else if (f === 2 && w === 5) score = r.float32();
        else if (f === 3 && w === 0) type = r.varint();
        else r.skip(w);
      }
      pieces.push(piece);
      scores.push(score);
      types.push(type);
    } else if (field === 2 && wt === 2) {
      sawTrainer = true;
      const r = top.sub();
      for (const [f, w] of r.fields()) {
        if (f === 3 && w === 0) spec.modelType = r.varint();
        else if (f === 35 && w === 0) spec.byteFallback = r.varint() !== 0;
        else if (f === 40 && w === 0) spec.unkId = r.int32();
        else if (f === 41 && w === 0) spec.bosId = r.int32();
        else if (f === 42 && w === 0) spec.eosId = r.int32();
        else if (f === 24 && w === 0) spec.whitespaceAsSuffix = r.varint() !== 0;
        else if (f === 44 && w === 2) spec.unkSurface = r.string();
        else r.skip(w);
      }
    } else if (field === 3 && wt === 2) {
      const r = top.sub();
      for (const [f, w] of r.fields()) {
        if (f === 1 && w === 2) spec.normalizerName = r.string();
        else if (f === 2 && w === 2) {
          const charsmap = r.sub();
          spec.charsmapBytes = charsmap.end - charsmap.pos;
        } else if (f === 3 && w === 0) spec.addDummyPrefix = r.varint() !== 0;
        else if (f === 4 && w === 0) spec.removeExtraWhitespaces = r.varint() !== 0;
        else if (f === 5 && w === 0) spec.escapeWhitespaces = r.varint() !== 0;
        else r.skip(w);
      }
    } else top.skip(wt);
  }
  return buildModel(
    pieces,
    Float32Array.from(scores),
    Uint8Array.from(types),
    spec,
    sawTrainer,
    source,
  );
}

function buildModel(
  pieces: string[],
  scores: Float32Array,
  types: Uint8Array,
  spec: Spec,
  sawTrainer: boolean,
  source: string,
): TokenizerModel {
  const unsupported = (why: string): never => {
    throw new Error(`${source}: unsupported SentencePiece model: ${why}`);
  };
  if (pieces.length === 0) {
    throw new Error(
      `${source}: not a valid SentencePiece model (no pieces; truncated or not a tokenizer.model)`,
    );
  }
  if (!sawTrainer) throw new Error(`${source}: not a valid SentencePiece model (no trainer_spec)`);
  if (spec.modelType !== 2) {
    const names: Record<number, string> = { 1: "UNIGRAM", 2: "BPE", 3: "WORD", 4: "CHAR" };
    unsupported(
      `model type ${names[spec.modelType] ?? spec.modelType}; only BPE (Llama) is implemented`,
    );
  }
  if (spec.whitespaceAsSuffix) unsupported("treat_whitespace_as_suffix");
  // The precompiled charsmap is the normaliser (e.g. NFKC); Llama uses identity (none).
  if (spec.charsmapBytes > 0) {
    unsupported(
      `normaliser "${spec.normalizerName}" with a precompiled charsmap; only identity is implemented`,
    );
  }
  for (let i = 0; i < types.length; i++) {
    const t = types[i]!;
    if (t === PieceType.unused)
      unsupported(`piece ${i} ${JSON.stringify(pieces[i])} has type UNUSED`);
    if (t < 1 || t > 6)
      throw new Error(`${source}: not a valid SentencePiece model (piece ${i} has type ${t})`);
  }
  // SentencePiece refuses to load a model that defines a piece twice; so do we.
  const firstId = new Map<string, number>();
  pieces.forEach((p, i) => {
    const seen = firstId.get(p);
    if (seen !== undefined) {
      throw new Error(
        `${source}: not a valid SentencePiece model (piece ${JSON.stringify(p)} is both id ${seen} and ${i})`,
      );
    }
    firstId.set(p, i);
  });
  const checkId = (name: string, id: number, allowed: number[]): void => {
    if (id < 0) return;
    if (id >= pieces.length || !allowed.includes(types[id]!)) {
      throw new Error(
        `${source}: ${name} ${id} is not a ${name === "unk_id" ? "UNKNOWN" : "CONTROL"} piece`,
      );
    }
  };
  checkId("unk_id", spec.unkId, [PieceType.unknown]);
  checkId("bos_id", spec.bosId, [PieceType.control]);
  checkId("eos_id", spec.eosId, [PieceType.control]);
  return {
    pieces,
    types,
    ...mergesFromScores(pieces, types, scores),
    unkId: spec.unkId,
    bosId: spec.bosId,
    eosId: spec.eosId,
    byteFallback: spec.byteFallback,
    addDummyPrefix: spec.addDummyPrefix,
    escapeWhitespaces: spec.escapeWhitespaces,
    removeExtraWhitespaces: spec.removeExtraWhitespaces,
    unkSurface: spec.unkSurface,
    source,
  };
}
