/**
 * The in-memory description of a BPE tokenizer that every loader (bundled default,
 * SentencePiece `tokenizer.model`, Hugging Face `tokenizer.json`) produces and the engine
 * compiles. It holds exactly what SentencePiece's BPE encoder needs and nothing else.
 */

/** SentencePiece piece types (sentencepiece_model.proto numbering). */
export const PieceType = {
  normal: 1,
  unknown: 2,
  control: 3,
  userDefined: 4,
  unused: 5,
  byte: 6,
} as const;

export interface TokenizerModel {
  /** Piece strings in id order; whitespace appears as U+2581 when `escapeWhitespaces`. */
  pieces: string[];
  /** One {@link PieceType} per piece. */
  types: Uint8Array;
  /**
   * Merge candidates: pair i joins `mergeLeft[i]` and `mergeRight[i]` (ids, or ids at and above
   * `pieces.length` for characters listed in `extraChars`) into the piece spelling their
   * concatenation. Lower `mergeRank` merges first; equal ranks merge leftmost first.
   */
  mergeLeft: Int32Array;
  mergeRight: Int32Array;
  mergeRank: Int32Array;
  mergeResult: Int32Array;
  /**
   * Characters that occur inside pieces without being pieces themselves (SentencePiece can
   * merge them even though alone they fall back to bytes). Symbol id = pieces.length + index.
   */
  extraChars: number[];
  unkId: number;
  bosId: number;
  eosId: number;
  byteFallback: boolean;
  addDummyPrefix: boolean;
  escapeWhitespaces: boolean;
  removeExtraWhitespaces: boolean;
  /** What `decode` shows for the unknown piece (SentencePiece's unk_surface, " ⁇ " by default). */
  unkSurface?: string;
  /** Where the model came from, for error messages and provenance. */
  source: string;
}

export const WHITESPACE_MARK = "\u2581";

/** Builds merge candidates from a Hugging Face style merge list (rank = list position). */
export function mergesFromPairList(
  pieces: string[],
  pairs: Array<[string, string]>,
  source: string,
): Pick<TokenizerModel, "mergeLeft" | "mergeRight" | "mergeRank" | "mergeResult"> {
  const idOf = new Map<string, number>();
  pieces.forEach((p, i) => {
    if (!idOf.has(p)) idOf.set(p, i);
  });
  const n = pairs.length;
  const mergeLeft = new Int32Array(n);
  const mergeRight = new Int32Array(n);
  const mergeRank = new Int32Array(n);
  const mergeResult = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const [a, b] = pairs[i]!;
    const left = idOf.get(a);
    const right = idOf.get(b);
    const result = idOf.get(a + b);
    if (left === undefined || right === undefined || result === undefined) {
      throw new Error(
        `${source}: merge #${i} (${JSON.stringify(a)} ${JSON.stringify(b)}) refers to a piece missing from the vocabulary`,
      );
    }
    mergeLeft[i] = left;
    mergeRight[i] = right;
    mergeRank[i] = i;
    mergeResult[i] = result;
  }
  return { mergeLeft, mergeRight, mergeRank, mergeResult };
}

/**
 * Builds merge candidates the way SentencePiece's BPE encoder sees them: any two adjacent
 * symbols whose concatenation is a normal piece may merge, and the piece's score decides
 * the order (higher first). Scores become dense ranks so equal scores stay ties, which the
 * engine breaks leftmost-first exactly as SentencePiece's agenda does.
 */
export function mergesFromScores(
  pieces: string[],
  types: Uint8Array,
  scores: Float32Array,
): Pick<TokenizerModel, "mergeLeft" | "mergeRight" | "mergeRank" | "mergeResult" | "extraChars"> {
  const symbolOf = new Map<string, number>();
  pieces.forEach((p, i) => {
    if (types[i] === PieceType.normal && !symbolOf.has(p)) symbolOf.set(p, i);
  });
  const extraChars: number[] = [];
  for (let i = 0; i < pieces.length; i++) {
    if (types[i] !== PieceType.normal) continue;
    for (const ch of pieces[i]!) {
      if (!symbolOf.has(ch)) {
        symbolOf.set(ch, pieces.length + extraChars.length);
        extraChars.push(ch.codePointAt(0)!);
      }
    }
  }
  const distinct = [...new Set(Array.from(scores))].sort((x, y) => y - x);
  const rankOfScore = new Map<number, number>();
  distinct.forEach((s, r) => {
    rankOfScore.set(s, r);
  });
  const left: number[] = [];
  const right: number[] = [];
  const rank: number[] = [];
  const result: number[] = [];
  for (let i = 0; i < pieces.length; i++) {
    if (types[i] !== PieceType.normal) continue;
    const chars = Array.from(pieces[i]!);
    if (chars.length < 2) continue;
    let prefix = "";
    for (let k = 1; k < chars.length; k++) {
      prefix += chars[k - 1];
      const a = symbolOf.get(prefix);
      const b = symbolOf.get(chars.slice(k).join(""));
      if (a === undefined || b === undefined) continue;
      left.push(a);
      right.push(b);
      rank.push(rankOfScore.get(scores[i]!)!);
      result.push(i);
    }
  }
  return {
    mergeLeft: Int32Array.from(left),
    mergeRight: Int32Array.from(right),
    mergeRank: Int32Array.from(rank),
    mergeResult: Int32Array.from(result),
    extraChars,
  };
}
