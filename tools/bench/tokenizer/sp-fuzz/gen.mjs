/** @param {number} seed a deterministic generator of floats in [0, 1) */
export function rng(seed) {
  let s = seed >>> 0 || 1;
  const r = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return r;
}
/** @type {(lo: number, hi: number) => [number, number]} */
const R = (lo, hi) => [lo, hi];
export const RANGES = {
  ascii: R(0x20, 0x7e),
  lower: R(0x61, 0x7a),
  upper: R(0x41, 0x5a),
  digits: R(0x30, 0x39),
  c0: R(0, 0x1f),
  c1: R(0x7f, 0x9f),
  latin1: R(0xa0, 0xff),
  latinExt: R(0x100, 0x24f),
  ipa: R(0x250, 0x2ff),
  combining: R(0x300, 0x36f),
  greek: R(0x370, 0x3ff),
  cyrillic: R(0x400, 0x52f),
  armenian: R(0x530, 0x58f),
  hebrew: R(0x590, 0x5ff),
  arabic: R(0x600, 0x6ff),
  syriac: R(0x700, 0x74f),
  thaana: R(0x780, 0x7bf),
  devanagari: R(0x900, 0x97f),
  bengali: R(0x980, 0x9ff),
  tamil: R(0xb80, 0xbff),
  telugu: R(0xc00, 0xc7f),
  thai: R(0xe00, 0xe7f),
  lao: R(0xe80, 0xeff),
  tibetan: R(0xf00, 0xfff),
  myanmar: R(0x1000, 0x109f),
  georgian: R(0x10a0, 0x10ff),
  jamo: R(0x1100, 0x11ff),
  ethiopic: R(0x1200, 0x137f),
  khmer: R(0x1780, 0x17ff),
  combExt: R(0x1ab0, 0x1aff),
  combSup: R(0x1dc0, 0x1dff),
  latinExtAdd: R(0x1e00, 0x1eff),
  greekExt: R(0x1f00, 0x1fff),
  genPunct: R(0x2000, 0x206f),
  supsub: R(0x2070, 0x209f),
  currency: R(0x20a0, 0x20cf),
  combSym: R(0x20d0, 0x20ff),
  letterlike: R(0x2100, 0x214f),
  arrows: R(0x2190, 0x21ff),
  mathOps: R(0x2200, 0x22ff),
  misc: R(0x2300, 0x23ff),
  box: R(0x2500, 0x257f),
  blocks: R(0x2580, 0x259f),
  shapes: R(0x25a0, 0x25ff),
  miscSym: R(0x2600, 0x26ff),
  dingbats: R(0x2700, 0x27bf),
  braille: R(0x2800, 0x28ff),
  cjkSym: R(0x3000, 0x303f),
  hiragana: R(0x3040, 0x309f),
  katakana: R(0x30a0, 0x30ff),
  bopomofo: R(0x3100, 0x312f),
  hangulCompat: R(0x3130, 0x318f),
  cjkExtA: R(0x3400, 0x4dbf),
  cjk: R(0x4e00, 0x9fff),
  yi: R(0xa000, 0xa48f),
  hangul: R(0xac00, 0xd7a3),
  pua: R(0xe000, 0xf8ff),
  cjkCompat: R(0xf900, 0xfaff),
  alphaPres: R(0xfb00, 0xfb4f),
  arabicPres: R(0xfb50, 0xfdff),
  varSel: R(0xfe00, 0xfe0f),
  cjkCompatForms: R(0xfe30, 0xfe4f),
  arabicPresB: R(0xfe70, 0xfeff),
  halfFull: R(0xff00, 0xffef),
  specials: R(0xfff0, 0xffff),
  linearB: R(0x10000, 0x1007f),
  gothic: R(0x10330, 0x1034f),
  cuneiform: R(0x12000, 0x123ff),
  musical: R(0x1d100, 0x1d1ff),
  mathAlnum: R(0x1d400, 0x1d7ff),
  mahjong: R(0x1f000, 0x1f02f),
  regional: R(0x1f1e6, 0x1f1ff),
  emoji: R(0x1f300, 0x1f5ff),
  emoticons: R(0x1f600, 0x1f64f),
  transport: R(0x1f680, 0x1f6ff),
  supEmoji: R(0x1f900, 0x1f9ff),
  emojiExtA: R(0x1fa70, 0x1faff),
  skin: R(0x1f3fb, 0x1f3ff),
  cjkExtB: R(0x20000, 0x2a6df),
  cjkExtG: R(0x30000, 0x3134f),
  tags: R(0xe0000, 0xe007f),
  varSelSup: R(0xe0100, 0xe01ef),
  pua15: R(0xf0000, 0xffffd),
  pua16: R(0x100000, 0x10fffd),
};
export const SPACES = [
  9, 10, 11, 12, 13, 0x20, 0x85, 0xa0, 0x1680, 0x180e, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004,
  0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x200b, 0x200c, 0x200d, 0x2028, 0x2029, 0x202f,
  0x205f, 0x2060, 0x3000, 0xfeff, 0x2581,
];
export const RTL = [
  0x200e, 0x200f, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069, 0x61c,
];
export const SPECIAL = [
  0xfffd, 0xfeff, 0x2581, 0, 0xfffe, 0xffff, 0x2581, 0x2581, 0x20, 0x20, 0x0a, 0x0d, 0x09,
];
const RANGE_NAMES = Object.keys(RANGES);
const cp = String.fromCodePoint;

/**
 * @param {number} seed
 * @param {string[]} pieces the vocabulary's normal pieces
 * @param {string[]} corpus real texts to slice and edit
 */
export function makeGen(seed, pieces, corpus) {
  const r = rng(seed);
  const int = (/** @type {number} */ lo, /** @type {number} */ hi) =>
    lo + Math.floor(r() * (hi - lo + 1));
  /** @type {<T>(a: readonly T[]) => T} */
  const pick = (a) => /** @type {any} */ (a[Math.floor(r() * a.length)]);
  const skew = (/** @type {number} */ max) => Math.floor(max * r() ** 3);
  const fromRange = (/** @type {string} */ name) => {
    const [lo, hi] = /** @type {Record<string, [number, number]>} */ (RANGES)[name] ?? [0x20, 0x7e];
    return cp(int(lo, hi));
  };
  const anyPlane = () => {
    for (;;) {
      const plane = int(0, 16);
      const c = plane * 0x10000 + int(0, 0xffff);
      if (c < 0xd800 || c > 0xdfff) return cp(c);
    }
  };
  const piece = (/** @type {boolean} */ keepMark) => {
    const p = pick(pieces);
    return keepMark ? p : p.replaceAll("\u2581", " ");
  };
  const wordPiece = () => pick(pieces).replaceAll("\u2581", "");
  const loneSur = () => cp(r() < 0.5 ? int(0xd800, 0xdbff) : int(0xdc00, 0xdfff)); // String.fromCodePoint allows lone surrogates
  const spaceRun = () => {
    const n = r() < 0.7 ? int(1, 8) : int(1, 300);
    let s = "";
    const kind = r();
    for (let i = 0; i < n; i++) {
      if (kind < 0.3) s += " ";
      else if (kind < 0.45) s += "\n";
      else if (kind < 0.55) s += "\r\n";
      else if (kind < 0.65) s += "\t";
      else s += cp(pick(SPACES));
    }
    return s;
  };
  const atom = () => {
    const x = r();
    if (x < 0.25) return fromRange(pick(RANGE_NAMES));
    if (x < 0.35) return anyPlane();
    if (x < 0.55) return piece(r() < 0.1);
    if (x < 0.65) return cp(pick(SPACES));
    if (x < 0.7) return cp(pick(RTL));
    if (x < 0.75) return cp(pick(SPECIAL));
    if (x < 0.8) return spaceRun();
    if (x < 0.9)
      return fromRange(
        pick([
          "lower",
          "lower",
          "ascii",
          "digits",
          "cjk",
          "hangul",
          "arabic",
          "devanagari",
          "thai",
          "cyrillic",
        ]),
      );
    if (x < 0.93) return fromRange("combining");
    return fromRange(pick(["c0", "c1"]));
  };
  const emojiSeq = () => {
    let s = "";
    const n = int(1, 6);
    for (let i = 0; i < n; i++) {
      const x = r();
      if (x < 0.4)
        s += fromRange(pick(["emoji", "emoticons", "transport", "supEmoji", "emojiExtA"]));
      else if (x < 0.5) s += cp(0x200d);
      else if (x < 0.6) s += cp(0xfe0f);
      else if (x < 0.65) s += cp(0xfe0e);
      else if (x < 0.75) s += fromRange("skin");
      else if (x < 0.85) s += fromRange("regional") + fromRange("regional");
      else if (x < 0.9) s += `${cp(0x1f3f4)}${fromRange("tags")}${fromRange("tags")}${cp(0xe007f)}`;
      else s += `${pick(["1", "#", "*"])}${cp(0xfe0f)}${cp(0x20e3)}`;
      if (r() < 0.3) s += cp(0x200d);
    }
    return s;
  };
  const scriptWord = (/** @type {string} */ script) => {
    let s = "";
    const n = int(1, 12);
    for (let i = 0; i < n; i++) {
      s += fromRange(script);
      if (r() < 0.15) s += fromRange(pick(["combining", "combSup", "combExt", "varSel"]));
    }
    return s;
  };
  const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const corpusSlice = (/** @type {number} */ max) => {
    const d = pick(corpus);
    const a = int(0, Math.max(0, d.length - 1));
    return d.slice(a, a + int(0, max));
  };
  const gens = {
    empty: () =>
      pick([
        "",
        " ",
        "  ",
        "\n",
        "\t",
        "\r\n",
        "\u2581",
        "\u2581\u2581",
        " \u2581",
        "\u2581 ",
        "\ufeff",
        "\ufffd",
        "\0",
        "a",
        " a",
        "a ",
        "  a  ",
      ]),
    mix: () => {
      let s = "";
      const n = skew(200);
      for (let i = 0; i < n; i++) s += atom();
      return s;
    },
    pieces: () => {
      let s = "";
      const n = int(1, 40);
      for (let i = 0; i < n; i++) s += piece(r() < 0.05);
      return s;
    },
    piecesNoSpace: () => {
      let s = "";
      const n = int(1, r() < 0.9 ? 20 : 400);
      for (let i = 0; i < n; i++) s += wordPiece();
      return s;
    },
    piecesSpaced: () => {
      let s = "";
      const n = int(1, 30);
      for (let i = 0; i < n; i++) s += (r() < 0.5 ? " " : spaceRun()) + wordPiece();
      return s;
    },
    emoji: () => {
      let s = "";
      const n = int(1, 8);
      for (let i = 0; i < n; i++)
        s += (r() < 0.5 ? " " : "") + emojiSeq() + (r() < 0.3 ? piece(false) : "");
      return s;
    },
    combining: () => {
      let s = "";
      const n = int(1, 20);
      for (let i = 0; i < n; i++) {
        s += fromRange(pick(["lower", "upper", "greek", "cyrillic", "latin1"]));
        const k = skew(8);
        for (let j = 0; j < k; j++)
          s += fromRange(pick(["combining", "combSup", "combExt", "combSym"]));
        if (r() < 0.2) s += " ";
      }
      return s;
    },
    whitespace: () => {
      let s = r() < 0.5 ? spaceRun() : "";
      const n = int(0, 10);
      for (let i = 0; i < n; i++) s += (r() < 0.6 ? wordPiece() : atom()) + spaceRun();
      if (r() < 0.5) s = s.trimEnd();
      return s;
    },
    script: () => {
      const sc = pick([
        "arabic",
        "hebrew",
        "devanagari",
        "bengali",
        "tamil",
        "thai",
        "lao",
        "hangul",
        "jamo",
        "cjk",
        "cjkExtA",
        "cjkExtB",
        "hiragana",
        "katakana",
        "cyrillic",
        "greek",
        "ethiopic",
        "khmer",
        "myanmar",
        "tibetan",
        "georgian",
        "armenian",
        "syriac",
        "thaana",
      ]);
      let s = "";
      const n = int(1, 25);
      for (let i = 0; i < n; i++) {
        if (r() < 0.1) s += cp(pick(RTL));
        s += scriptWord(sc);
        s += r() < 0.8 ? " " : pick(["", "\n", ".", "،", "।", "。", "\u00a0", "\u3000"]);
      }
      return s;
    },
    controls: () => {
      let s = "";
      const n = int(1, 60);
      for (let i = 0; i < n; i++) {
        const x = r();
        s +=
          x < 0.4
            ? fromRange(pick(["c0", "c1"]))
            : x < 0.6
              ? cp(pick(SPECIAL))
              : x < 0.8
                ? piece(false)
                : fromRange("lower");
      }
      return s;
    },
    surrogates: () => {
      let s = "";
      const n = int(1, 30);
      for (let i = 0; i < n; i++) {
        const x = r();
        s +=
          x < 0.3
            ? loneSur()
            : x < 0.4
              ? cp(int(0xdc00, 0xdfff)) + cp(int(0xd800, 0xdbff))
              : x < 0.7
                ? atom()
                : anyPlane();
      }
      return s;
    },
    astral: () => {
      let s = "";
      const n = int(1, 60);
      for (let i = 0; i < n; i++) {
        s +=
          r() < 0.7
            ? anyPlane()
            : fromRange(
                pick([
                  "cjkExtB",
                  "cjkExtG",
                  "mathAlnum",
                  "emoji",
                  "pua15",
                  "pua16",
                  "tags",
                  "varSelSup",
                  "cuneiform",
                  "gothic",
                  "linearB",
                  "musical",
                ]),
              );
        if (r() < 0.2) s += " ";
      }
      return s;
    },
    anyPlane: () => {
      let s = "";
      const n = int(1, 40);
      for (let i = 0; i < n; i++) s += r() < 0.1 ? " " : anyPlane();
      return s;
    },
    bmpAll: () => {
      let s = "";
      const n = int(1, 40);
      for (let i = 0; i < n; i++) {
        let c;
        do c = int(0, 0xffff);
        while (c >= 0xd800 && c <= 0xdfff);
        s += cp(c);
      }
      return s;
    },
    digits: () => {
      let s = "";
      const n = r() < 0.8 ? int(1, 200) : int(200, 20000);
      for (let i = 0; i < n; i++) s += cp(int(48, 57));
      return (r() < 0.5 ? " " : "") + s + (r() < 0.3 ? pick([".5", "e10", " ", ",000"]) : "");
    },
    base64: () => {
      let s = "";
      const n = r() < 0.8 ? int(4, 400) : int(400, 30000);
      for (let i = 0; i < n; i++) {
        s += BASE64[int(0, 63)];
        if (r() < 0.5 && i % 76 === 75) s += "\n";
      }
      return s + pick(["", "=", "=="]);
    },
    hex: () => {
      let s = pick(["", "0x", "sha256:"]);
      const n = int(1, 2000);
      for (let i = 0; i < n; i++) s += "0123456789abcdef"[int(0, 15)];
      return s;
    },
    code: () => {
      const lines = corpusSlice(3000).split("\n");
      return lines
        .map((/** @type {string} */ l) => {
          const t = l.trimStart();
          const x = r();
          const ind =
            x < 0.3
              ? "\t".repeat(int(0, 4))
              : x < 0.6
                ? " ".repeat(int(0, 16))
                : x < 0.8
                  ? pick(["\t  ", "  \t", " \t \t", "\t    "])
                  : l.slice(0, l.length - t.length);
          return ind + t + (r() < 0.1 ? pick([" ", "\t", "  "]) : "");
        })
        .join(r() < 0.2 ? "\r\n" : "\n");
    },
    corpusMut: () => {
      let s = corpusSlice(2000);
      const k = int(0, 10);
      for (let i = 0; i < k; i++) {
        const a = int(0, s.length);
        const x = r();
        if (x < 0.5) s = s.slice(0, a) + atom() + s.slice(a);
        else if (x < 0.7) s = s.slice(0, a) + s.slice(a + int(1, 5));
        else if (x < 0.8) s = s.slice(0, a) + loneSur() + s.slice(a);
        else s = s.slice(0, a) + s.slice(a, a + int(1, 30)).repeat(int(2, 10)) + s.slice(a);
      }
      return s;
    },
    corpusSlice: () => corpusSlice(r() < 0.9 ? 500 : 20000),
    longWord: () => {
      const target =
        pick([30, 31, 32, 33, 34, 39, 40, 41, 42, 255, 256, 257, 1023, 1024, 1025, 4096, 10000]) +
        int(-2, 2);
      const kind = pick(["lower", "cjk", "pieces", "mixed", "astral", "hangul", "dev"]);
      let s = "";
      while ([...s].length < target) {
        s +=
          kind === "pieces"
            ? wordPiece()
            : kind === "mixed"
              ? r() < 0.5
                ? wordPiece()
                : atom().replace(/\s/gu, "")
              : kind === "astral"
                ? anyPlane()
                : kind === "dev"
                  ? fromRange("devanagari")
                  : fromRange(kind);
      }
      s = s.replace(/[\s\u2581]/gu, "");
      return (r() < 0.5 ? " " : "") + s + (r() < 0.3 ? " end" : "");
    },
    heapWord: () => {
      const n = r() < 0.5 ? int(8, 14) : int(10, 700);
      let s = "";
      for (let i = 0; i < n; i++) {
        const x = r();
        s +=
          x < 0.85
            ? wordPiece()
            : x < 0.9
              ? fromRange(pick(["cjk", "hangul", "thai", "devanagari", "emoji"]))
              : x < 0.95
                ? pick(["aa", "ab", "ba", "eee", "lll", "ss", "00", "..", "==", "--"])
                : atom().replace(/[\s\u2581]/gu, "");
      }
      return (r() < 0.6 ? " " : "") + s.replace(/[ \u2581]/g, "");
    },
    repeat: () => {
      const unit = r() < 0.5 ? wordPiece() : atom();
      return unit.repeat(r() < 0.9 ? int(2, 100) : int(100, 5000));
    },
  };
  const weightsDefault = {
    empty: 1,
    mix: 12,
    pieces: 10,
    piecesNoSpace: 8,
    piecesSpaced: 6,
    emoji: 5,
    combining: 4,
    whitespace: 6,
    script: 8,
    controls: 3,
    surrogates: 4,
    astral: 4,
    anyPlane: 3,
    bmpAll: 4,
    digits: 2,
    base64: 2,
    hex: 1,
    code: 4,
    corpusMut: 8,
    corpusSlice: 4,
    longWord: 2,
    repeat: 2,
  };
  /** @type {Record<string, number>} */
  const weights = process.env.GEN_WEIGHTS ? JSON.parse(process.env.GEN_WEIGHTS) : weightsDefault;
  const names = Object.keys(weights);
  const total = names.reduce((a, n) => a + (weights[n] ?? 0), 0);
  return {
    r,
    int,
    pick,
    gens,
    wordPiece,
    anyPlane,
    fromRange,
    /** @returns {[string, string]} a generator's name and its case */
    next() {
      let x = r() * total;
      for (const n of names) {
        x -= weights[n] ?? 0;
        const gen = /** @type {Record<string, () => string>} */ (gens)[n];
        if (x < 0 && gen) return [n, gen()];
      }
      return ["mix", gens.mix()];
    },
  };
}
