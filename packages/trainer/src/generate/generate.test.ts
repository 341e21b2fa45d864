import { type Backend, loadBackend } from "@tinyllama/kernels";
import { beforeAll, describe, expect, it } from "vitest";
import { parameterSpecs } from "../model/config.js";
import { LlamaModel } from "../model/llama.js";
import { Rng } from "../model/rng.js";
import { microConfig } from "../test-util/tiny.js";
import { decodeContinuation, generate, generateEvents, generateStream } from "./generate.js";
import { KvDecoder, useDecodeKernel } from "./kv-decoder.js";
import { argmax } from "./sampling.js";

let k: Backend;
let model: LlamaModel;

/** Random weights large enough that the logits are far apart (no greedy ties). */
function randomModel(backend: Backend, seed: number): LlamaModel {
  const cfg = microConfig({ maxSeqLen: 96 });
  const m = new LlamaModel(backend, cfg);
  const rng = new Rng(seed);
  for (const s of parameterSpecs(cfg)) {
    const data = new Float32Array(s.shape.reduce((a, b) => a * b, 1));
    if (s.initOnes) data.fill(1);
    else rng.fillNormal(data, 0.3);
    m.setParam(s.name, data);
  }
  return m;
}

/** One letter per token id: lets stop sequences be tested without a real tokenizer. */
const letters = (ids: number[]) => ids.map((i) => String.fromCharCode(97 + (i % 26))).join("");

const prompts = [
  [1, 5, 9],
  [1, 40, 3, 3, 17, 22, 8],
  [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
];

beforeAll(async () => {
  k = await loadBackend("cpu");
  model = randomModel(k, 7);
});

describe("KvDecoder", () => {
  it("gives the same logits and greedy tokens as recomputing the whole sequence", () => {
    const V = model.config.vocabSize;
    const dec = new KvDecoder(model, { slots: 1, maxLen: 40 });
    const ids = [1, 30, 12, 7, 7];
    let logits = dec.step([{ slot: 0, tokens: ids, pos: 0 }]);
    for (let step = 0; step < 24; step++) {
      const full = model.logits(Int32Array.from(ids), 1, ids.length);
      const lastRow = full.subarray((ids.length - 1) * V, ids.length * V);
      let maxDiff = 0;
      for (let j = 0; j < V; j++) maxDiff = Math.max(maxDiff, Math.abs(lastRow[j]! - logits[j]!));
      expect(maxDiff).toBeLessThan(1e-4);
      const next = argmax(logits);
      expect(next).toBe(argmax(lastRow));
      ids.push(next);
      logits = dec.step([{ slot: 0, tokens: [next], pos: ids.length - 1 }]);
    }
    dec.dispose();
  });

  it("the decode kernel and the general path give the same bits; TINYLLAMA_DECODE_ATTENTION is checked", () => {
    const run = (mode: string | undefined) => {
      const saved = process.env.TINYLLAMA_DECODE_ATTENTION;
      if (mode === undefined) delete process.env.TINYLLAMA_DECODE_ATTENTION;
      else process.env.TINYLLAMA_DECODE_ATTENTION = mode;
      try {
        const dec = new KvDecoder(model, { slots: 2, maxLen: 24 });
        const out: number[][] = [];
        let logits = dec.step([
          { slot: 0, tokens: [1, 30, 12], pos: 0 },
          { slot: 1, tokens: [1, 9], pos: 0 },
        ]);
        const pos = [3, 2];
        for (let step = 0; step < 6; step++) {
          out.push(Array.from(logits));
          const V = model.config.vocabSize;
          logits = dec.step(
            [0, 1].map((slot) => ({
              slot,
              tokens: [argmax(logits.subarray(slot * V, (slot + 1) * V))],
              pos: pos[slot]!++,
            })),
          );
        }
        dec.dispose();
        return out;
      } finally {
        if (saved === undefined) delete process.env.TINYLLAMA_DECODE_ATTENTION;
        else process.env.TINYLLAMA_DECODE_ATTENTION = saved;
      }
    };
    expect(useDecodeKernel("cpu")).toBe(true);
    expect(useDecodeKernel("cuda")).toBe(true);
    expect(run("off")).toEqual(run(undefined));
    expect(() => run("yes")).toThrow(/TINYLLAMA_DECODE_ATTENTION must be "on" or "off", got "yes"/);
  });

  it("rejects bad segments with clear errors", () => {
    const dec = new KvDecoder(model, { slots: 2, maxLen: 8, maxRows: 4 });
    expect(() => dec.step([{ slot: 2, tokens: [1], pos: 0 }])).toThrow(/slot 2 is outside/);
    expect(() => dec.step([{ slot: 0, tokens: [1, 2], pos: 7 }])).toThrow(/past maxLen 8/);
    expect(() => dec.step([{ slot: 0, tokens: [1, 2, 3, 4, 5], pos: 0 }])).toThrow(
      /exceed maxRows 4/,
    );
    expect(() => dec.step([{ slot: 0, tokens: [64], pos: 0 }])).toThrow(/outside the vocabulary/);
    expect(() =>
      dec.step([
        { slot: 1, tokens: [1], pos: 0 },
        { slot: 1, tokens: [1], pos: 1 },
      ]),
    ).toThrow(/appears twice/);
    dec.dispose();
    expect(() => dec.step([{ slot: 0, tokens: [1], pos: 0 }])).toThrow(/after dispose/);
    expect(() => new KvDecoder(model, { slots: 1, maxLen: 97 })).toThrow(
      /exceeds the model's context 96/,
    );
  });
});

describe("KvDecoder construction", () => {
  it("frees the cache when the scratch arena cannot be allocated (out of memory)", () => {
    let arenas = 0;
    const failing = new Proxy(k, {
      get(target, p, receiver) {
        const v = Reflect.get(target, p, receiver);
        if (p !== "arena") return v;
        return (...args: Parameters<Backend["arena"]>) => {
          if (++arenas === 2) throw new Error("cuda out of memory (injected)");
          return v.apply(target, args);
        };
      },
    });
    const onFailing = Object.create(model, { backend: { value: failing } }) as LlamaModel;
    const before = k.stats();
    expect(() => new KvDecoder(onFailing, { slots: 2, maxLen: 16 })).toThrow(/out of memory/);
    expect(arenas).toBe(2);
    expect(k.stats().liveTensors).toBe(before.liveTensors);
    expect(k.stats().liveBytes).toBe(before.liveBytes);
  });
});

describe("generate", () => {
  it("decodes each prompt the same alone, batched, and with chunked prefill", () => {
    const before = k.stats().liveTensors;
    const alone = prompts.map(
      (p) => generate(model, [p], { maxNewTokens: 12, eosTokenId: null })[0]!,
    );
    const batched = generate(model, prompts, { maxNewTokens: 12, eosTokenId: null });
    const chunked = generate(model, prompts, {
      maxNewTokens: 12,
      eosTokenId: null,
      batchSize: 2,
      maxRows: 4,
    });
    for (let i = 0; i < prompts.length; i++) {
      expect(alone[i]!.tokens).toHaveLength(12);
      expect(batched[i]!.tokens).toEqual(alone[i]!.tokens);
      expect(chunked[i]!.tokens).toEqual(alone[i]!.tokens);
      expect(batched[i]!.finishReason).toBe("length");
    }
    expect(k.stats().liveTensors).toBe(before);
  });

  it("samples deterministically by seed, per prompt wherever it is batched", () => {
    const o = { maxNewTokens: 16, eosTokenId: null, temperature: 1.5, topK: 20, topP: 0.95 };
    const a = generate(model, prompts, { ...o, seed: 3 });
    const b = generate(model, prompts, { ...o, seed: 3, batchSize: 1 });
    const c = generate(model, prompts, { ...o, seed: 4 });
    expect(b.map((g) => g.tokens)).toEqual(a.map((g) => g.tokens));
    expect(c.map((g) => g.tokens)).not.toEqual(a.map((g) => g.tokens));
    const greedy = generate(model, prompts, { maxNewTokens: 16, eosTokenId: null });
    expect(a.map((g) => g.tokens)).not.toEqual(greedy.map((g) => g.tokens));
    // top-k 1 is greedy whatever the temperature.
    const k1 = generate(model, prompts, { ...o, topK: 1, seed: 9 });
    expect(k1.map((g) => g.tokens)).toEqual(greedy.map((g) => g.tokens));
  });

  it("ends at a stop string (text cut before it) and at EOS", () => {
    const free = generate(model, [prompts[1]!], {
      maxNewTokens: 20,
      eosTokenId: null,
      decode: letters,
    })[0]!;
    const text = free.text!;
    expect(text).toHaveLength(20);
    const stop = text.slice(5, 8);
    const cut = text.indexOf(stop);
    const events: string[] = [];
    const stopped = generate(model, [prompts[1]!], {
      maxNewTokens: 20,
      eosTokenId: null,
      decode: letters,
      stop: ["zzzzzzzz", stop],
      onToken: (e) => events.push(e.text),
    })[0]!;
    expect(stopped.finishReason).toBe("stop");
    expect(stopped.stoppedBy).toBe(stop);
    expect(stopped.text).toBe(text.slice(0, cut));
    expect(stopped.tokens).toEqual(free.tokens.slice(0, cut + stop.length));
    expect(events.join("")).toBe(stopped.text);
    expect(events).toHaveLength(stopped.tokens.length);

    const eos = free.tokens[4]!;
    const first = free.tokens.indexOf(eos);
    const ended = generate(model, [prompts[1]!], {
      maxNewTokens: 20,
      eosTokenId: eos,
      decode: letters,
    })[0]!;
    expect(ended.finishReason).toBe("eos");
    expect(ended.tokens).toEqual(free.tokens.slice(0, first + 1));
    expect(ended.text).toBe(text.slice(0, first));
  });

  it("stops when stopWhen says so, and runs past the context only with extendContext", () => {
    const free = generate(model, [prompts[0]!], {
      maxNewTokens: 10,
      eosTokenId: null,
      decode: letters,
    })[0]!;
    const early = generate(model, [prompts[0]!], {
      maxNewTokens: 10,
      eosTokenId: null,
      decode: letters,
      stopWhen: (i, text) => i === 0 && text.length >= 4,
    })[0]!;
    expect(early.finishReason).toBe("stop");
    expect(early.tokens).toEqual(free.tokens.slice(0, 4));
    const long = new Array(94).fill(3);
    expect(generate(model, [long], { maxNewTokens: 5, eosTokenId: null })[0]!.tokens).toHaveLength(
      2,
    );
    const past = generate(model, [long], {
      maxNewTokens: 5,
      eosTokenId: null,
      extendContext: true,
    })[0]!;
    expect(past.tokens).toHaveLength(5);
    expect(past.tokens.slice(0, 2)).toEqual(
      generate(model, [long], { maxNewTokens: 2, eosTokenId: null })[0]!.tokens,
    );
  });

  it("shows each step's logits to onLogits before choosing", () => {
    const seen: number[][] = [];
    const g = generate(model, [prompts[2]!], {
      maxNewTokens: 3,
      eosTokenId: null,
      onLogits: (i, step, logits, offset) => {
        expect(i).toBe(0);
        expect(step).toBe(seen.length);
        seen.push(Array.from(logits.subarray(offset, offset + model.config.vocabSize)));
      },
    })[0]!;
    expect(seen).toHaveLength(3);
    expect(seen.map((l) => argmax(l))).toEqual(g.tokens);
  });

  it("greedy on the device (argmax op) picks what the host picks from the logits", () => {
    const onDevice = generate(model, prompts, { maxNewTokens: 12, eosTokenId: null });
    // an onLogits callback makes generation fetch every logit row and choose on the host
    const onHost = generate(model, prompts, {
      maxNewTokens: 12,
      eosTokenId: null,
      onLogits: () => {},
    });
    expect(onDevice.map((g) => g.tokens)).toEqual(onHost.map((g) => g.tokens));
    expect(onDevice.every((g) => g.tokens.length === 12)).toBe(true);
    const dec = new KvDecoder(model, { slots: 2, maxLen: 20 });
    const segs = [
      { slot: 0, tokens: [1, 5, 9], pos: 0 },
      { slot: 1, tokens: [1, 40], pos: 0 },
    ];
    const greedy = dec.stepGreedy(segs);
    dec.dispose();
    const again = new KvDecoder(model, { slots: 2, maxLen: 20 });
    const logits = again.step(segs);
    again.dispose();
    const V = model.config.vocabSize;
    expect(Array.from(greedy)).toEqual([argmax(logits, 0, V), argmax(logits, V, 2 * V)]);
  });

  it("streams the same tokens as an async iterator", async () => {
    const sync = [...generateEvents(model, prompts, { maxNewTokens: 5, eosTokenId: null })];
    const streamed = [];
    for await (const e of generateStream(model, prompts, { maxNewTokens: 5, eosTokenId: null }))
      streamed.push(e);
    expect(streamed).toEqual(sync);
    expect(sync.filter((e) => e.kind === "token")).toHaveLength(15);
    expect(sync.filter((e) => e.kind === "done")).toHaveLength(3);
  });

  it("rejects bad requests with clear errors", () => {
    expect(() => generate(model, [[]])).toThrow(/prompt 0 is empty/);
    expect(() => generate(model, [new Array(96).fill(1)])).toThrow(/leaving no room/);
    expect(() => generate(model, [[1]], { stop: ["x"] })).toThrow(/pass decode/);
    expect(() => generate(model, [[1]], { temperature: -1 })).toThrow(/temperature/);
    expect(() => generate(model, [[1]], { topP: 0 })).toThrow(/topP/);
    expect(() => generate(model, [[1]], { maxNewTokens: 0 })).toThrow(/maxNewTokens/);
    expect(() => generate(model, [[1], [2]], { batchSize: 1.5 })).toThrow(
      /batchSize must be a positive integer, got 1.5/,
    );
  });

  it("refuses a disposed model with the model's error, allocating nothing", async () => {
    const k = await loadBackend("cpu");
    const m = randomModel(k, 11);
    m.dispose();
    const live = k.stats().liveTensors;
    expect(() => generate(m, [[1, 2]], { maxNewTokens: 2 })).toThrow(
      /LlamaModel used after dispose/,
    );
    expect(() => new KvDecoder(m, { slots: 1, maxLen: 4 })).toThrow(
      /LlamaModel used after dispose/,
    );
    expect(k.stats().liveTensors).toBe(live);
  });
});

describe("decodeContinuation", () => {
  it("keeps the space SentencePiece drops at the start of a decode", () => {
    // A decoder that, like SentencePiece, strips the leading space of the whole text.
    const pieces = ["<s>", " Hello", " world", "!", " again"];
    const decode = (ids: number[]) =>
      ids
        .map((i) => (i === 0 ? "" : pieces[i]!))
        .join("")
        .replace(/^ /, "");
    expect(decodeContinuation(decode, [0, 1], [2, 3])).toBe(" world!");
    expect(decodeContinuation(decode, [0], [1, 2])).toBe("Hello world");
    expect(decodeContinuation(decode, [0, 1], [])).toBe("");
  });
});
