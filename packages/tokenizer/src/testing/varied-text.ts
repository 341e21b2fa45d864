/**
 * Deterministic varied text for agreement tests and benchmarks: the same seed gives the same
 * texts on every machine. It aims at the places where a BPE re-implementation goes wrong:
 * unusual neighbours of real pieces (merge order), whitespace runs (the all-`▁` pieces that
 * merge last), characters outside the vocabulary (byte fallback), astral characters and lone
 * surrogates (UTF-16 handling), NUL and control characters, long lines without spaces
 * (the heap path), and text that spells special tokens.
 */

/** Whether a string is valid UTF-16 (no lone surrogates); String#isWellFormed is ES2024. */
export function isWellFormed(s: string): boolean {
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);
}

/** xorshift32: tiny, fast, and identical everywhere. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
}

const RANGES: Array<[number, number]> = [
  [0x20, 0x7e], // ASCII
  [0xa0, 0xff], // Latin-1
  [0x370, 0x3ff], // Greek
  [0x400, 0x4ff], // Cyrillic
  [0x590, 0x5ff], // Hebrew
  [0x600, 0x6ff], // Arabic
  [0x900, 0x97f], // Devanagari
  [0x300, 0x36f], // combining marks
  [0x2000, 0x206f], // general punctuation, zero-width joiners, odd spaces
  [0x2200, 0x22ff], // math operators
  [0x3040, 0x30ff], // kana
  [0x4e00, 0x9fff], // CJK
  [0xac00, 0xd7a3], // Hangul
  [0xfff0, 0xffff], // specials, U+FFFD
  [0x1f300, 0x1faff], // emoji
  [0x20000, 0x2a6df], // CJK extension B
  [0x0, 0x1f], // controls, NUL, tab, newline
];

const SNIPPETS = [
  "def f(x):\n    return x ** 2  # square\n",
  "for (let i = 0; i < n; i++) { sum += a[i]; }\n",
  '#include <stdio.h>\nint main(void) { printf("%d\\n", 42); }\n',
  "fn main() { let v: Vec<u8> = vec![1, 2, 3]; }\n",
  "SELECT id, name FROM users WHERE age > 30 ORDER BY name;\n",
  "\\begin{equation} \\int_0^\\infty e^{-x^2}\\,dx = \\frac{\\sqrt{\\pi}}{2} \\end{equation}\n",
  "<s>[INST] <<SYS>> You are helpful. <</SYS>> Hi [/INST] Hello </s>",
  "\t\t\tindented\r\n\r\n    four spaces\u00a0nbsp\u3000ideographic space",
  "人工智能是计算机科学的一个分支，它企图了解智能的实质。",
  "東京都は日本の首都です。今日はいい天気ですね！",
  "🦙🦙 llamas 🦙‍🔥 👩‍👩‍👧‍👦 flags 🇫🇷🇯🇵 skin 👍🏽",
  "aGVsbG8gd29ybGQgdGhpcyBpcyBiYXNlNjQgZW5jb2RlZCB0ZXh0Cg==",
  "             many spaces        then   words",
  "x\u2581y\u2581\u2581z",
];

export interface VariedTextOptions {
  seed: number;
  /** Number of texts. */
  count: number;
  /** Piece strings of the vocabulary (id order), used to build unusual neighbours. */
  pieces: readonly string[];
  /** Longest text in characters (a few texts reach it: long lines without spaces). */
  maxLength?: number;
}

export function variedTexts(opts: VariedTextOptions): string[] {
  const rand = rng(opts.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const int = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));
  const maxLength = opts.maxLength ?? 100_000;
  const normalPieces = opts.pieces.slice(259);
  const char = (): string => {
    const [lo, hi] = pick(RANGES);
    return String.fromCodePoint(int(lo, hi));
  };
  const texts: string[] = [];
  for (let t = 0; t < opts.count; t++) {
    const kind = int(0, 9);
    let s = "";
    if (kind <= 2) {
      // Real pieces glued together: every merge sees neighbours it rarely meets.
      const n = int(1, 200);
      for (let i = 0; i < n; i++) {
        s += pick(normalPieces).replaceAll("\u2581", " ");
        if (rand() < 0.05) s += pick(["\n", "\t", "  ", "\r\n", " "]);
      }
    } else if (kind <= 4) {
      const n = int(1, 300);
      for (let i = 0; i < n; i++) s += rand() < 0.3 ? " ".repeat(int(1, 20)) : char();
    } else if (kind === 5) {
      // Lone surrogates and stray halves.
      const n = int(1, 50);
      for (let i = 0; i < n; i++) {
        s += rand() < 0.3 ? String.fromCharCode(int(0xd800, 0xdfff)) : pick(normalPieces);
      }
    } else if (kind <= 7) {
      const n = int(1, 8);
      for (let i = 0; i < n; i++) s += pick(SNIPPETS) + (rand() < 0.5 ? " " : "");
    } else if (kind === 8) {
      // Whitespace-heavy text.
      const n = int(1, 40);
      for (let i = 0; i < n; i++)
        s += pick([" ", "\t", "\n", "\u3000", "\u00a0"]).repeat(int(1, 33)) + pick(normalPieces);
    } else if (rand() < 0.15) {
      // A long line without spaces: CJK, base64-like, or one repeated character.
      const len = int(1000, maxLength);
      const style = int(0, 2);
      const parts: string[] = [];
      for (let i = 0; i < len; i++) {
        parts.push(
          style === 0
            ? String.fromCodePoint(int(0x4e00, 0x9fff))
            : style === 1
              ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[int(0, 63)]!
              : "a",
        );
      }
      s = parts.join("");
    } else s = pick(SNIPPETS).repeat(int(1, 20));
    texts.push(s);
  }
  return texts;
}
