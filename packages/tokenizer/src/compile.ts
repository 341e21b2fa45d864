/** Turns a {@link TokenizerModel} into the engine's typed-array tables. */
import { buildEngineTables, type EngineTables } from "./engine.js";
import { PieceType, type TokenizerModel } from "./model.js";

export function compileModel(model: TokenizerModel, shared: boolean): EngineTables {
  const vocabSize = model.pieces.length;
  const symbolChars: Array<[number, number]> = [];
  model.pieces.forEach((piece, id) => {
    if (model.types[id] !== PieceType.normal) return;
    const cp = piece.codePointAt(0);
    if (cp !== undefined && piece.length === (cp > 0xffff ? 2 : 1)) symbolChars.push([cp, id]);
  });
  model.extraChars.forEach((cp, i) => {
    symbolChars.push([cp, vocabSize + i]);
  });
  const byteIds = (
    shared ? new Int32Array(new SharedArrayBuffer(256 * 4)) : new Int32Array(256)
  ).fill(-1);
  model.pieces.forEach((piece, id) => {
    if (model.types[id] !== PieceType.byte) return;
    const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
    if (!m)
      throw new Error(
        `${model.source}: byte piece ${id} is ${JSON.stringify(piece)}, expected <0xNN>`,
      );
    byteIds[Number.parseInt(m[1]!, 16)] = id;
  });
  if (model.byteFallback) {
    const missing = byteIds.indexOf(-1);
    if (missing >= 0) {
      throw new Error(
        `${model.source}: byte fallback is on but piece <0x${missing.toString(16).toUpperCase().padStart(2, "0")}> is missing`,
      );
    }
  }
  const resultText = (id: number): string => model.pieces[id] ?? "";
  return buildEngineTables({
    vocabSize,
    symbolChars,
    extraChars: model.extraChars,
    byteIds,
    mergeLeft: model.mergeLeft,
    mergeRight: model.mergeRight,
    mergeRank: model.mergeRank,
    mergeResult: model.mergeResult,
    resultText,
    unkId: model.unkId,
    byteFallback: model.byteFallback,
    addDummyPrefix: model.addDummyPrefix,
    escapeWhitespaces: model.escapeWhitespaces,
    removeExtraWhitespaces: model.removeExtraWhitespaces,
    userPieces: model.pieces.flatMap(
      (p, id): Array<[string, number]> =>
        model.types[id] === PieceType.userDefined && p.length > 0 ? [[p, id]] : [],
    ),
    shared,
  });
}
