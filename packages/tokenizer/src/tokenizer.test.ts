import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LlamaTokenizer } from "./index.js";
import { workerExecArgv } from "./worker-pool.js";

const FIXTURE_MODEL = new URL("./testdata/llama2-tokenizer.model", import.meta.url).pathname;
const reference = JSON.parse(
  readFileSync(new URL("./testdata/llama-tokenizer-js-cases.json", import.meta.url), "utf8"),
) as { cases: Array<{ text: string; ids: number[] }> };

let bundled: LlamaTokenizer;
let fromModel: LlamaTokenizer;

beforeAll(async () => {
  bundled = await LlamaTokenizer.load();
  fromModel = await LlamaTokenizer.load(FIXTURE_MODEL);
});

afterAll(async () => {
  await bundled.close();
  await fromModel.close();
});

describe("Llama reference ids (llama-tokenizer-js test cases)", () => {
  it("has the twelve cases, including the long mixed paragraph", () => {
    expect(reference.cases).toHaveLength(12);
    expect(reference.cases.some((c) => c.text.length > 1000)).toBe(true);
  });

  for (const [name, load] of [
    ["bundled default", () => bundled],
    ["tokenizer.model fixture", () => fromModel],
  ] as const) {
    it(`${name}: encodes every case to the reference ids and decodes back`, () => {
      const tok = load();
      for (const { text, ids } of reference.cases) {
        expect(tok.encode(text), JSON.stringify(text.slice(0, 40))).toEqual(ids);
        expect(tok.decode(ids)).toBe(text);
      }
    });
  }

  it("reproduces the ids quoted in reference/tokenizer.md", () => {
    expect(bundled.encode("Hello world!")).toEqual([1, 15043, 3186, 29991]);
    expect(bundled.encode("           grabbed")).toEqual([1, 9651, 2646, 1327, 287]);
    expect(bundled.encode("\n")).toEqual([1, 29871, 13]);
    expect(bundled.encode("🦙")).toEqual([1, 29871, 243, 162, 169, 156]);
  });
});

describe("encode options and special tokens", () => {
  it("exposes the Llama ids", () => {
    expect(bundled.vocabSize).toBe(32000);
    expect([bundled.unkId, bundled.bosId, bundled.eosId]).toEqual([0, 1, 2]);
    expect(fromModel.vocabSize).toBe(32000);
    expect([fromModel.unkId, fromModel.bosId, fromModel.eosId]).toEqual([0, 1, 2]);
  });

  it("adds BOS by default, EOS on request, neither when asked", () => {
    expect(bundled.encode("grabbed", { bos: false })).toEqual([2646, 1327, 287]);
    expect(bundled.encode("grabbed", { eos: true })).toEqual([1, 2646, 1327, 287, 2]);
    expect(bundled.encode("grabbed", { bos: false, eos: true })).toEqual([2646, 1327, 287, 2]);
  });

  it("treats text spelling <s> and </s> as ordinary text", () => {
    const ids = bundled.encode("<s>hi</s>", { bos: false });
    expect(ids).not.toContain(1);
    expect(ids).not.toContain(2);
    expect(bundled.decode(ids)).toBe("<s>hi</s>");
  });

  it("maps literal U+2581 to a space, the one documented non-round-trip", () => {
    expect(bundled.encode("x\u2581y")).toEqual(bundled.encode("x y"));
    expect(bundled.decode(bundled.encode("x\u2581y"))).toBe("x y");
  });

  it("returns Int32Array from encodeToInt32Array with the same ids", () => {
    const text = reference.cases[11]!.text;
    expect(Array.from(bundled.encodeToInt32Array(text))).toEqual(bundled.encode(text));
  });
});

describe("decode follows SentencePiece DecodeIds", () => {
  it("drops BOS/EOS, removes only the first piece's dummy space, shows unk as ' ⁇ '", () => {
    // Expected strings were produced by SentencePiece (sentencepiece-js) on the fixture model.
    expect(bundled.decode([29871, 2646])).toBe(" gra");
    expect(bundled.decode([1, 29871, 2646])).toBe(" gra");
    expect(bundled.decode([29871, 29871, 29871])).toBe("  ");
    expect(bundled.decode([13, 29871])).toBe("\n ");
    expect(bundled.decode([0, 259])).toBe(" \u2047   ");
    expect(bundled.decode([1, 2])).toBe("");
    expect(bundled.decode([])).toBe("");
  });

  it("reassembles byte pieces and replaces each stray byte with U+FFFD", () => {
    expect(bundled.decode([243, 162, 169, 156])).toBe("🦙");
    expect(bundled.decode([243, 162])).toBe("\ufffd\ufffd");
    expect(bundled.decode([162, 2646])).toBe("\ufffd gra");
  });
});

describe("encodeBatch", () => {
  const texts = [
    ...reference.cases.map((c) => c.text),
    "",
    "a".repeat(300_000),
    "日本語のテキスト ".repeat(2000),
  ];

  it("equals encode() on every text, in order, with 2 worker threads", async () => {
    const got = await bundled.encodeBatch(texts, { threads: 2, eos: true });
    expect(got).toEqual(texts.map((t) => bundled.encode(t, { eos: true })));
  });

  it("works on the calling thread with threads: 0 and on an empty list", async () => {
    expect(await bundled.encodeBatch(texts.slice(0, 3), { threads: 0, bos: false })).toEqual(
      texts.slice(0, 3).map((t) => bundled.encode(t, { bos: false })),
    );
    expect(await bundled.encodeBatch([])).toEqual([]);
  });

  it("serves concurrent batches with different thread counts", async () => {
    const [a, b] = await Promise.all([
      bundled.encodeBatch(texts.slice(0, 4), { threads: 1 }),
      bundled.encodeBatch(texts.slice(4, 8), { threads: 2 }),
    ]);
    expect([...a, ...b]).toEqual(texts.slice(0, 8).map((t) => bundled.encode(t)));
  });

  it("close() stops the workers; a later encodeBatch starts fresh ones", async () => {
    const t = await LlamaTokenizer.load(undefined, { threads: 1 });
    expect(await t.encodeBatch(["a b"])).toEqual([t.encode("a b")]);
    await t.close();
    expect(await t.encodeBatch(["a b"])).toEqual([t.encode("a b")]);
    await t.close();
  });

  it("a worker that dies fails its batch with a clear error, and the pool recovers", async () => {
    const t = await LlamaTokenizer.load(undefined, { threads: 1 });
    await t.encodeBatch(["warm up"]);
    // Test-only access to the pool, to kill its worker while it holds a chunk.
    const pools = (
      t as unknown as {
        pools: Map<
          number,
          { slots: Array<{ worker: { terminate(): Promise<number> }; busy: unknown }> }
        >;
      }
    ).pools;
    const slot = pools.get(1)!.slots[0]!;
    const pending = t.encodeBatch(
      Array.from({ length: 40 }, (_, i) => `document ${i} `.repeat(30_000)),
    );
    while (slot.busy === undefined) await new Promise((r) => setImmediate(r));
    await slot.worker.terminate();
    await expect(pending).rejects.toThrow(
      /encodeBatch failed in a worker thread: tokenizer worker exited/,
    );
    expect(await t.encodeBatch(["a b", "c"])).toEqual([t.encode("a b"), t.encode("c")]);
    await t.close();
  });

  it("close() right after encodeBatch rejects that batch instead of leaving it pending", async () => {
    const t = await LlamaTokenizer.load(undefined, { threads: 2 });
    const pending = t.encodeBatch(["a b", "c"]);
    await t.close();
    const settled = await Promise.race([
      pending.then(
        () => "resolved",
        (e: Error) => e.message,
      ),
      new Promise((r) => setTimeout(() => r("still pending"), 1500)),
    ]);
    expect(settled).toBe("encodeBatch: the tokenizer was closed");
    expect(await t.encodeBatch(["a b"])).toEqual([t.encode("a b")]);
    await t.close();
  });

  it("starts only the workers a batch needs, however large threads is", async () => {
    const t = await LlamaTokenizer.load();
    expect(await t.encodeBatch(["a b", "c"], { threads: 8 })).toEqual([
      t.encode("a b"),
      t.encode("c"),
    ]);
    // Test-only access: two short texts are one chunk, so one worker.
    const pools = (t as unknown as { pools: Map<number, { slots: unknown[] }> }).pools;
    expect(pools.get(8)!.slots).toHaveLength(1);
    await t.close();
  });

  it("load and fromModel refuse a threads value that is not a non-negative integer", async () => {
    for (const threads of [-1, 1.5, Number.NaN, "2" as unknown as number]) {
      await expect(LlamaTokenizer.load(undefined, { threads })).rejects.toThrow(
        /^LlamaTokenizer\.load: threads must be a non-negative integer, got/,
      );
      expect(() => LlamaTokenizer.fromModel(bundled.model, { threads })).toThrow(RangeError);
    }
  });

  it("workers keep the parent's Node options except its entry point (-e, -p, --input-type)", () => {
    expect(
      workerExecArgv([
        "--expose-gc",
        "--input-type=module",
        "-e",
        "code",
        "--max-old-space-size=4096",
      ]),
    ).toEqual(["--expose-gc", "--max-old-space-size=4096"]);
    expect(workerExecArgv(["-p", "1+1"])).toEqual([]);
    expect(workerExecArgv(["--eval=x", "--print=y", "--import", "tsx"])).toEqual([
      "--import",
      "tsx",
    ]);
  });

  it("keeps separate concurrent batches apart", async () => {
    const [a, b] = await Promise.all([
      fromModel.encodeBatch(texts.slice(0, 6), { threads: 2 }),
      fromModel.encodeBatch(texts.slice(6), { threads: 2 }),
    ]);
    expect([...a, ...b]).toEqual(texts.map((t) => fromModel.encode(t)));
  });
});
