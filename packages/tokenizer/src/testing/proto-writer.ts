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

/** ModelProto.pieces entry: piece text, score 0, type. */
export const pieceField = (piece: string, type: number): number[] =>
  field(1, 2, [
    ...field(1, 2, utf8(piece)),
    ...field(2, 5, [0, 0, 0, 0]),
    ...field(3, 0, varint(type)),
  ]);
