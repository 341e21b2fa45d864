// Pair encoding with the real Llama 2 tokenizer (bundled in @tinyllama/tokenizer). The expected
// ids were confirmed against sentencepiece 0.2 with the same tokenizer.model by
// tools/compare/eval (RESULTS.md, 2026-11-28): a change here changes every score.
import { LlamaTokenizer } from "@tinyllama/tokenizer";
import { beforeAll, describe, expect, it } from "vitest";
import { encodePair } from "./encode.js";

let tok: LlamaTokenizer;
beforeAll(async () => {
  tok = await LlamaTokenizer.load();
});

describe("encodePair with the Llama 2 tokenizer", () => {
  it("boolq: ' yes' / ' no' are single tokens after 'Answer:'", () => {
    const context = "Question: can penguins fly?\nAnswer:";
    const no = encodePair(tok, { context, continuation: " no" });
    const yes = encodePair(tok, { context, continuation: " yes" });
    expect(no.continuationTokens).toEqual([694]);
    expect(yes.continuationTokens).toEqual([4874]);
    expect(no.contextTokens.slice(-3)).toEqual([13, 22550, 29901]); // "\n", "Answer", ":"
    expect(no.contextTokens[0]).not.toBe(tok.bosId);
  });

  it("winogrande: the shared continuation tokenizes the same after either option", () => {
    const a = encodePair(tok, {
      context: "Sarah lent her umbrella to Emily because Sarah",
      continuation: " was going out in the rain.",
    });
    const b = encodePair(tok, {
      context: "Sarah lent her umbrella to Emily because Emily",
      continuation: " was going out in the rain.",
    });
    expect(a.continuationTokens).toEqual([471, 2675, 714, 297, 278, 17251, 29889]);
    expect(b.continuationTokens).toEqual(a.continuationTokens);
  });

  it("xnli_zh: the continuation alone keeps its leading space as '▁▁' after the dummy prefix", () => {
    const r = encodePair(tok, {
      context: "",
      continuation: " 他每天早上都骑自行车去上班, 正确? 是的, 他有一辆自行车",
    });
    expect(r.contextTokens).toEqual([tok.bosId]);
    expect(r.continuationTokens.slice(0, 3)).toEqual([259, 31221, 31951]);
    expect(r.continuationTokens).toHaveLength(43);
  });

  it("hellaswag's double space and xcopa's Chinese continuation split at the same ids", () => {
    const h = encodePair(tok, {
      context: "Home and Garden: How to repot a houseplant.",
      continuation: "  Water the plant a day before repotting.",
    });
    expect(h.continuationTokens.slice(0, 2)).toEqual([29871, 13062]);
    const x = encodePair(tok, { context: "院子里的花都开了 因为", continuation: " 春天到了。" });
    expect(x.continuationTokens).toEqual([29871, 31031, 30408, 30780, 30743, 30267]);
    expect(x.contextTokens.slice(-2)).toEqual([31570, 30573]);
  });

  it("with BOS (harness >= 0.4.9.2) only the context gains token 1", () => {
    const withBos = encodePair(
      tok,
      { context: "Question: can penguins fly?\nAnswer:", continuation: " yes" },
      { addBos: true, emptyContextToken: "bos" },
    );
    expect(withBos.contextTokens[0]).toBe(1);
    expect(withBos.continuationTokens).toEqual([4874]);
  });
});
