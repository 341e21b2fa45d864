import { describe, expect, it } from "vitest";
import { encodePair } from "./encode.js";
import { isPySpace, pyCapitalize, pyLen, pyRstrip, pyStrip } from "./pytext.js";
import { ToyWordTokenizer } from "./toy.js";

describe("encodePair (the harness's _encode_pair and empty-context rule)", () => {
  it("splits whole = context + continuation after the context's own tokens", () => {
    const tok = new ToyWordTokenizer();
    const r = encodePair(tok, { context: "Question: x\nAnswer:", continuation: " yes" });
    expect(r.contextTokens.map((t) => tok.piece(t))).toEqual(["Question:", " x", "\n", "Answer:"]);
    expect(r.continuationTokens.map((t) => tok.piece(t))).toEqual([" yes"]);
  });

  it("moves the context's trailing whitespace to the continuation", () => {
    const tok = new ToyWordTokenizer();
    const r = encodePair(tok, { context: "Answer: ", continuation: "yes" });
    expect(r.contextTokens.map((t) => tok.piece(t))).toEqual(["Answer:"]);
    expect(r.continuationTokens.map((t) => tok.piece(t))).toEqual([" yes"]);
    // Not moving it would have scored [] ("Answer:", " " + "yes" merges into " yes").
    const nl = encodePair(tok, { context: "abc\n", continuation: " def" });
    expect(nl.contextTokens.map((t) => tok.piece(t))).toEqual(["abc"]);
    expect(nl.continuationTokens.map((t) => tok.piece(t))).toEqual(["\n", " def"]);
  });

  it("counts a merge across the boundary as continuation (possibly leaving nothing)", () => {
    const tok = new ToyWordTokenizer();
    const r = encodePair(tok, { context: "foo", continuation: "bar" });
    expect(r.contextTokens.map((t) => tok.piece(t))).toEqual(["foo"]);
    expect(r.continuationTokens).toEqual([]);
  });

  it("prepends BOS to the context only when asked (harness >= 0.4.9.2)", () => {
    const tok = new ToyWordTokenizer();
    const off = encodePair(tok, { context: "a b", continuation: " c" });
    const on = encodePair(
      tok,
      { context: "a b", continuation: " c" },
      { addBos: true, emptyContextToken: "bos" },
    );
    expect(on.contextTokens).toEqual([tok.bosId, ...off.contextTokens]);
    expect(on.continuationTokens).toEqual(off.continuationTokens);
  });

  it("an empty context becomes BOS (or EOS for harness <= 0.4.2); the continuation is encoded alone", () => {
    const tok = new ToyWordTokenizer();
    const bos = encodePair(tok, { context: "", continuation: " 前提, 正确? 是的, 假设" });
    expect(bos.contextTokens).toEqual([1]);
    expect(bos.continuationTokens.map((t) => tok.piece(t))).toEqual([
      " 前提,",
      " 正确?",
      " 是的,",
      " 假设",
    ]);
    const eos = encodePair(
      tok,
      { context: "", continuation: " x" },
      { addBos: true, emptyContextToken: "eos" },
    );
    // No BOS inside the continuation even with addBos: the harness encodes it without special tokens.
    expect(eos.contextTokens).toEqual([2]);
    expect(eos.continuationTokens.map((t) => tok.piece(t))).toEqual([" x"]);
  });

  it("releases before 0.4.9.2 with add_bos_token=True put BOS into an empty context's continuation", () => {
    const tok = new ToyWordTokenizer();
    for (const emptyContextToken of ["bos", "eos"] as const) {
      const r = encodePair(
        tok,
        { context: "", continuation: " x" },
        { addBos: true, emptyContextToken, legacyEmptyContext: true },
      );
      expect(r.contextTokens).toEqual([emptyContextToken === "bos" ? 1 : 2]);
      expect(r.continuationTokens.map((t) => tok.piece(t))).toEqual(["<s>", " x"]);
    }
    // non-empty contexts encode as in every release with BOS
    const a = encodePair(
      tok,
      { context: "a b", continuation: " c" },
      {
        addBos: true,
        emptyContextToken: "bos",
        legacyEmptyContext: true,
      },
    );
    expect(a).toEqual(
      encodePair(
        tok,
        { context: "a b", continuation: " c" },
        { addBos: true, emptyContextToken: "bos" },
      ),
    );
  });

  it("a whitespace-only context encodes to no tokens without BOS (the scorer then rejects it)", () => {
    const tok = new ToyWordTokenizer();
    const r = encodePair(tok, { context: " ", continuation: "x" });
    expect(r.contextTokens).toEqual([]);
    expect(r.continuationTokens.map((t) => tok.piece(t))).toEqual([" x"]);
  });
});

describe("Python string semantics", () => {
  it("capitalize title-cases the first character and lower-cases the rest in context (3.8+)", () => {
    // Python 3.11's own results (Unicode 14); the harness's hellaswag capitalizes ctx_b
    const cases: Array<[string, string]> = [
      ["hello World", "Hello world"],
      ["ßtraße", "Sstraße"],
      ["\ufb01nal", "Final"],
      ["\u01c6ungla", "\u01c5ungla"],
      ["\u01c4UNGLA", "\u01c5ungla"],
      ["\u1fb3x", "\u1fbcx"],
      ["\u1fb2x", "\u1fba\u0345x"],
      ["A\u03a3", "A\u03c2"],
      ["\u10d0\u10d1", "\u10d0\u10d1"],
      ["\u0149a", "\u02bcNa"],
      ["İX", "İx"],
      ["", ""],
    ];
    for (const [input, python] of cases) expect(pyCapitalize(input), input).toBe(python);
  });

  it("strip uses str.isspace, not JavaScript's trim", () => {
    // U+001C..U+001F and U+0085 are whitespace to Python but not to trim(); U+FEFF the reverse.
    expect(pyStrip("\x1cab\x85")).toBe("ab");
    expect(pyRstrip("ab\ufeff")).toBe("ab\ufeff");
    expect(isPySpace("\u3000")).toBe(true);
    expect(pyRstrip("a \t\n")).toBe("a");
  });

  it("len counts code points", () => {
    expect(pyLen("正确")).toBe(2);
    expect(pyLen("🦙a")).toBe(2);
    expect("🦙a".length).toBe(3);
  });
});
