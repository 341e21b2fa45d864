// End to end on the bundled fixtures with a toy model whose probabilities are known, so acc,
// acc_norm and stderr are checked against hand-computed values.
import { describe, expect, it } from "vitest";
import { fixturePath, readTaskRecords } from "./docs.js";
import { evaluate } from "./evaluate.js";
import { formatPaperView, formatTable, paperView, toHarnessJson } from "./results.js";
import { TASK_GROUPS, TASKS } from "./tasks/index.js";
import { logNormalize, ToyScorer, ToyWordTokenizer, unigramScorer } from "./toy.js";

async function input(name: string) {
  const task = TASKS[name]!;
  return { task, docs: await readTaskRecords(fixturePath(task)), files: [fixturePath(task)] };
}

describe("evaluate", () => {
  it("boolq with p(' no') = 2 p(' yes'): always 'no', acc 0.5 on labels 1,0,1,0", async () => {
    const tok = new ToyWordTokenizer([" no", " yes"]); // ids 3 and 4
    const weights = Array(400).fill(1);
    weights[3] = 2;
    const out = await evaluate([await input("boolq")], tok, unigramScorer(weights));
    const r = out.tasks[0]!;
    expect(r.samples.map((s) => s.acc)).toEqual([0, 1, 0, 1]);
    expect(r.metrics.acc).toBe(0.5);
    // sqrt(4 * 0.25 / 3) / 2
    expect(r.metrics.acc_stderr).toBeCloseTo(Math.sqrt(1 / 3) / 2, 12);
    const lp = r.samples[0]!.resps.map(([l]) => l);
    expect(lp[0]! - lp[1]!).toBeCloseTo(Math.log(2), 12);
  });

  it("arc_easy: equal log-likelihoods pick the first choice, acc_norm the longest", async () => {
    // Uniform model: every one-word choice has the same log-likelihood.
    const tok = new ToyWordTokenizer();
    const out = await evaluate([await input("arc_easy")], tok, unigramScorer(Array(400).fill(1)), {
      limit: 3,
    });
    const doc = out.tasks[0]!.samples[2]!; // iron / water / wood, answer B
    expect(doc.choices).toEqual(["iron", "water", "wood"]);
    expect(doc.acc).toBe(0); // tie -> index 0
    expect(doc.acc_norm).toBe(1); // ll/5 > ll/4 for ll < 0
    expect(out.tasks[0]!.nDocs).toBe(3);
    expect(out.tasks[0]!.nOriginal).toBe(4);
  });

  it("winogrande scores only the shared continuation (its log-prob depends on the context)", async () => {
    // p(next) depends on the previous token: after "Sarah" the continuation's first word is likelier.
    const tok = new ToyWordTokenizer([" Sarah", " Emily", " was"]); // 3, 4, 5
    const scorer = new ToyScorer(64, (prefix) => {
      const w = Array(400).fill(1);
      if (prefix[prefix.length - 1] === 4) w[5] = 10; // " was" after " Emily"
      return logNormalize(w);
    });
    const out = await evaluate([await input("winogrande")], tok, scorer);
    const s = out.tasks[0]!.samples[1]!;
    expect(s.arguments[0]).toEqual([
      "Sarah lent her umbrella to Emily because Sarah",
      " was going out in the rain.",
    ]);
    // Same continuation tokens for both options; only the first one's probability differs.
    expect(s.continuation_tokens[0]).toEqual(s.continuation_tokens[1]);
    expect(s.resps[1]![0] - s.resps[0]![0]).toBeCloseTo(Math.log(10 / 409) - Math.log(1 / 400), 12);
    expect(s.acc).toBe(1);
  });

  it("xnli_zh scores every continuation after the single prefix token", async () => {
    const tok = new ToyWordTokenizer();
    const out = await evaluate([await input("xnli_zh")], tok, unigramScorer(Array(400).fill(1)), {
      encoding: { addBos: false, emptyContextToken: "eos" },
    });
    for (const s of out.tasks[0]!.samples) {
      expect(s.context_tokens).toEqual([[2], [2], [2]]);
    }
    expect(out.encoding.emptyContextToken).toBe("eos");
  });

  it("scores every task's fixtures together and reports a clear error for a bad record", async () => {
    const inputs = await Promise.all(Object.keys(TASKS).map(input));
    const scorer = unigramScorer(Array(2000).fill(1));
    const out = await evaluate(inputs, new ToyWordTokenizer(), scorer, { batchSize: 8 });
    expect(out.tasks).toHaveLength(11);
    expect(out.stats.requests).toBe(
      out.tasks.reduce((n, t) => n + t.samples.reduce((m, s) => m + s.resps.length, 0), 0),
    );
    expect(out.stats.windows).toBeLessThanOrEqual(out.stats.requests);
    const bad = { ...inputs[0]!, docs: [{ activity_label: "x" }] };
    // a request the harness rejects names its task and doc, not only its index in the stream
    const winogrande = inputs.find((i) => i.task.name === "winogrande")!;
    const openbookqa = inputs.find((i) => i.task.name === "openbookqa")!;
    const spaces = {
      ...openbookqa,
      docs: [{ ...(openbookqa.docs[0] as object), question_stem: " \u3000 " }],
    };
    await expect(evaluate([winogrande, spaces], new ToyWordTokenizer(), scorer)).rejects.toThrow(
      /^openbookqa doc 0 request 0: request 8: empty context tokens/,
    );
    const tiny = unigramScorer(Array(2000).fill(1), 2);
    await expect(evaluate([winogrande], new ToyWordTokenizer(), tiny)).rejects.toThrow(
      /^winogrande doc 0 request 0: request 0: continuation of 3 tokens exceeds the model's max length 2$/,
    );
    await expect(evaluate([bad], new ToyWordTokenizer(), scorer)).rejects.toThrow(
      /hellaswag doc 0: hellaswag: field "ctx_a" must be a string, got nothing \(missing\)/,
    );
  });
});

describe("harness-shaped results", () => {
  it("has the harness's keys, records the BOS choice and prints the table", async () => {
    const tok = new ToyWordTokenizer();
    const out = await evaluate(
      [await input("piqa"), await input("xcopa_zh")],
      tok,
      unigramScorer(Array(400).fill(1)),
      { encoding: { addBos: true, emptyContextToken: "bos" } },
    );
    const json = toHarnessJson(out, {
      model: "/ckpt",
      modelDescription: "toy",
      device: "cpu",
      batchSize: 16,
      limit: null,
      startedAt: new Date(0),
    });
    expect(Object.keys(json)).toEqual(
      expect.arrayContaining([
        "results",
        "group_subtasks",
        "configs",
        "versions",
        "n-shot",
        "higher_is_better",
        "n-samples",
        "config",
      ]),
    );
    expect(Object.keys(json.results.piqa!).sort()).toEqual(
      ["acc,none", "acc_norm,none", "acc_norm_stderr,none", "acc_stderr,none", "alias"].sort(),
    );
    expect(json.results.xcopa_zh!["acc_norm,none"]).toBeUndefined();
    expect((json.config as { model_args: string }).model_args).toContain("add_bos_token=True");
    expect((json.tinyllama_ts as { add_bos: boolean }).add_bos).toBe(true);
    expect((json["n-samples"] as Record<string, unknown>).piqa).toEqual({
      original: 4,
      effective: 4,
    });
    const table = formatTable(json);
    const lines = table.split("\n");
    expect(lines[0]).toMatch(
      /^\|Tasks\s*\|Version\|Filter\|n-shot\|Metric\s*\|\s*\|\s*Value\|\s*\|Stderr\|$/,
    );
    expect(lines.filter((l) => l.includes("acc"))).toHaveLength(3);
    expect(table).toMatch(
      /\|piqa\s*\|\s*1\|none\s*\|\s*0\|acc\s*\|↑\s*\|\d\.\d{4}\|±\s*\|\d\.\d{4}\|/,
    );
  });

  it("reports N/A stderr for a single doc, as the harness does", async () => {
    const out = await evaluate(
      [await input("boolq")],
      new ToyWordTokenizer(),
      unigramScorer(Array(400).fill(1)),
      {
        limit: 1,
      },
    );
    const json = toHarnessJson(out, {
      model: "m",
      modelDescription: "toy",
      device: "cpu",
      batchSize: 1,
      limit: 1,
      startedAt: new Date(0),
    });
    expect(json.results.boolq!["acc_stderr,none"]).toBe("N/A");
    expect(formatTable(json)).toMatch(/\|±\| {3}N\/A\|/);
  });

  it("gives the paper's view: acc_norm where reported, else acc, averaged per table", () => {
    const json = {
      results: {
        a: { "acc,none": 0.5, "acc_norm,none": 0.6 },
        b: { "acc,none": 0.25 },
        c: { "acc,none": 0.9 },
      },
      versions: {},
    };
    const view = paperView(json, { first: ["a", "b"], missing: ["a", "z"] });
    expect(view).toEqual([{ group: "first", tasks: { a: 60, b: 25 }, average: 42.5 }]);
    const text = formatPaperView(
      paperView(
        {
          results: Object.fromEntries(TASK_GROUPS.chinese!.map((t) => [t, { "acc,none": 0.5 }])),
          versions: {},
        },
        TASK_GROUPS,
      ),
    );
    // Table 5 averages from the paper: v1.0 53.37, v1.1 47.46 (rounded as printed there).
    expect(text).toMatch(/TinyLlama v1\.0 \(paper\)\t68\.45\t54\.53\t33\.69\t56\.80\t53\.37/);
    expect(text).toMatch(/TinyLlama v1\.1 \(paper\).*\t47\.46$/m);
    expect(text).toMatch(/this run\t50\.00\t50\.00\t50\.00\t50\.00\t50\.00/);
  });
});
