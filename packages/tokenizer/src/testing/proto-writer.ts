/** Minimal protobuf writer for hand-made SentencePiece models in tests. */

export const varint = (value: number): number[] => {
  const out: number[] = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
};

/** A field: wire type 0 (varint payload bytes given), 2 (length-delimited) or 5 (4 bytes). */
export const field = (n: number, wire: 0 | 2 | 5, payload: number[]): number[] =>
  wire === 2
    ? [...varint(n * 8 + 2), ...varint(payload.length), ...payload]
    : [...varint(n * 8 + wire), ...payload];

export const utf8 = (s: string): number[] => Array.from(Buffer.from(s, "utf8"));

const float32 = (x: number): number[] => {
  const b = Buffer.alloc(4);
  b.writeFloatLE(x);
  return Array.from(b);
};

/** ModelProto.pieces entry: piece text, score, type. */
export const pieceField = (piece: string, type: number, score = 0): number[] =>
  field(1, 2, [
    ...field(1, 2, utf8(piece)),
    ...field(2, 5, float32(score)),
    ...field(3, 0, varint(type)),
  ]);

/**
 * A complete BPE ModelProto in Llama's configuration (byte fallback, unk/bos/eos 0/1/2,
 * identity normaliser, dummy prefix, no whitespace removal) over the given normal pieces.
 */
export function bpeModel(
  normal: Array<[piece: string, score: number]>,
  spec: { addDummyPrefix?: boolean; removeExtraWhitespaces?: boolean } = {},
): Uint8Array {
  const out = [...pieceField("<unk>", 2), ...pieceField("<s>", 3), ...pieceField("</s>", 3)];
  for (let b = 0; b < 256; b++)
    out.push(...pieceField(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`, 6));
  for (const [p, score] of normal) out.push(...pieceField(p, 1, score));
  const ids = [...field(40, 0, varint(0)), ...field(41, 0, varint(1)), ...field(42, 0, varint(2))];
  out.push(...field(2, 2, [...field(3, 0, varint(2)), ...field(35, 0, varint(1)), ...ids]));
  out.push(
    ...field(3, 2, [
      ...field(1, 2, utf8("identity")),
      ...field(3, 0, [spec.addDummyPrefix === false ? 0 : 1]),
      ...field(4, 0, [spec.removeExtraWhitespaces ? 1 : 0]),
      ...field(5, 0, [1]),
    ]),
  );
  return Uint8Array.from(out);
}
