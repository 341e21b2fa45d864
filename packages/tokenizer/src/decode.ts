/**
 * Ids back to text, as SentencePiece's DecodeIds does: control pieces (BOS/EOS) vanish,
 * unknown becomes " ⁇ ", runs of `<0xNN>` pieces are reassembled as UTF-8 (each byte that is
 * not part of a valid sequence becomes U+FFFD), `▁` becomes a space, and one leading `▁` is
 * removed from the first piece that is not BOS/EOS (the dummy prefix). Checked against
 * SentencePiece itself (sentencepiece-js) in decode.test.ts.
 */
import { PieceType, type TokenizerModel } from "./model.js";

const UNK_SURFACE = " \u2047 ";

export function decodeIds(model: TokenizerModel, ids: ArrayLike<number>): string {
  const { pieces, types } = model;
  const parts: string[] = [];
  let atStart = model.addDummyPrefix;
  const bytes: number[] = [];
  const flushBytes = (): void => {
    if (bytes.length === 0) return;
    parts.push(utf8ToStringPerByteReplacement(bytes));
    bytes.length = 0;
  };
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= pieces.length) {
      throw new RangeError(
        `decode: ids[${i}] = ${id} is not a token id (vocabulary has ids 0..${pieces.length - 1})`,
      );
    }
    const type = types[id];
    if (type === PieceType.byte) {
      bytes.push(Number.parseInt(pieces[id]!.slice(3, 5), 16));
      atStart = false;
      continue;
    }
    flushBytes();
    if (type === PieceType.control) continue;
    let text = type === PieceType.unknown ? (model.unkSurface ?? UNK_SURFACE) : pieces[id]!;
    if (model.escapeWhitespaces && type !== PieceType.unknown) {
      if (atStart && text.startsWith("\u2581")) text = text.slice(1);
      text = text.replaceAll("\u2581", " ");
    } else if (atStart && text.startsWith(" ") && type !== PieceType.unknown) text = text.slice(1);
    // Only the first piece after any BOS/EOS can carry the dummy prefix, as in SentencePiece.
    atStart = false;
    parts.push(text);
  }
  flushBytes();
  return parts.join("");
}

/** Strict UTF-8 decoding where every byte outside a valid sequence becomes one U+FFFD. */
export function utf8ToStringPerByteReplacement(bytes: ArrayLike<number>): string {
  let out = "";
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b0 = bytes[i]!;
    let cp = -1;
    let len = 1;
    if (b0 < 0x80) cp = b0;
    else if (b0 >= 0xc2 && b0 <= 0xdf && i + 1 < n) {
      const b1 = bytes[i + 1]!;
      if ((b1 & 0xc0) === 0x80) {
        cp = ((b0 & 0x1f) << 6) | (b1 & 0x3f);
        len = 2;
      }
    } else if (b0 >= 0xe0 && b0 <= 0xef && i + 2 < n) {
      const b1 = bytes[i + 1]!;
      const b2 = bytes[i + 2]!;
      if ((b1 & 0xc0) === 0x80 && (b2 & 0xc0) === 0x80) {
        const v = ((b0 & 0x0f) << 12) | ((b1 & 0x3f) << 6) | (b2 & 0x3f);
        if (v >= 0x800 && (v < 0xd800 || v > 0xdfff)) {
          cp = v;
          len = 3;
        }
      }
    } else if (b0 >= 0xf0 && b0 <= 0xf4 && i + 3 < n) {
      const b1 = bytes[i + 1]!;
      const b2 = bytes[i + 2]!;
      const b3 = bytes[i + 3]!;
      if ((b1 & 0xc0) === 0x80 && (b2 & 0xc0) === 0x80 && (b3 & 0xc0) === 0x80) {
        const v = ((b0 & 0x07) << 18) | ((b1 & 0x3f) << 12) | ((b2 & 0x3f) << 6) | (b3 & 0x3f);
        if (v >= 0x10000 && v <= 0x10ffff) {
          cp = v;
          len = 4;
        }
      }
    }
    if (cp < 0) {
      out += "\ufffd";
      i += 1;
    } else {
      out += String.fromCodePoint(cp);
      i += len;
    }
  }
  return out;
}
