// Request building per task against expectations worked out by hand from the harness's yaml
// and utils.py (see shared/reference/eval.md), on the bundled fixtures.
import { describe, expect, it } from "vitest";
import { fixturePath, readTaskRecords } from "../docs.js";
import { hellaswagPreprocess } from "./hellaswag.js";
import { resolveTasks, TASKS } from "./index.js";
import type { DocRequests } from "./task.js";

async function build(taskName: string, docIndex: number): Promise<DocRequests> {
  const task = TASKS[taskName]!;
  const docs = await readTaskRecords(fixturePath(task));
  return task.build(task.parse(docs[docIndex]));
}

describe("hellaswag", () => {
  it("joins activity label, ctx_a and capitalised ctx_b", async () => {
    const d = await build("hellaswag", 2);
    expect(d.requests[0]!.context).toBe(
      "Bike tricks: A girl rides a bicycle down a ramp at a skate park. The girl",
    );
    // Double spaces inside an ending collapse.
    expect(d.choices[3]).toBe("reads a newspaper while the bicycle rides itself.");
    expect(d.requests[3]!.continuation).toBe(" reads a newspaper while the bicycle rides itself.");
    expect(d.gold).toBe(0);
  });

  it("turns [title] into a period, drops [header]/[step] and keeps the leading space of an ending", async () => {
    const d = await build("hellaswag", 1);
    // ctx_b is empty: ctx ends in " ", which strip() removes.
    expect(d.requests[0]!.context).toBe(
      "Home and Garden: How to repot a houseplant. Choose a slightly larger pot. The new pot should be one or two inches wider than the old one.",
    );
    // "[title] Water ..." is stripped before "[title]" is removed, so a space survives in front.
    expect(d.choices[0]).toBe(
      " Water the plant a day before repotting. Moist soil holds the roots together.",
    );
    expect(d.requests[0]!.continuation).toBe(
      "  Water the plant a day before repotting. Moist soil holds the roots together.",
    );
    expect(d.choices[1]).toBe(" Paint the pot blue. Plants prefer blue pots.");
  });

  it("preprocess follows Python: one pass of double-space removal, brackets not across lines", () => {
    expect(hellaswagPreprocess("  a   b  ")).toBe("a  b");
    expect(hellaswagPreprocess("x [a\nb] y")).toBe("x [a\nb] y");
    // Three spaces left by two removed markers: a single replace pass leaves two.
    expect(hellaswagPreprocess("x [a] [b] y")).toBe("x  y");
    expect(hellaswagPreprocess("Intro [title] Step")).toBe("Intro. Step");
  });

  it("accepts the label as the hub's string or as a number, and rejects anything else", () => {
    const task = TASKS.hellaswag!;
    const base = { activity_label: "A", ctx_a: "b", ctx_b: "c", endings: ["d", "e"] };
    expect(task.build(task.parse({ ...base, label: "1" })).gold).toBe(1);
    expect(task.build(task.parse({ ...base, label: 1 })).gold).toBe(1);
    expect(() => task.parse({ ...base, label: "" })).toThrow(/field "label" must be an integer/);
    expect(() => task.parse({ ...base, endings: "d" })).toThrow(
      /hellaswag: field "endings" must be an array of strings/,
    );
  });
});

describe("openbookqa and arc", () => {
  it("openbookqa uses the bare question stem and strips the answer key on the left", async () => {
    const d = await build("openbookqa", 1);
    expect(d.requests.map((r) => r.context)).toEqual(Array(4).fill("A plant needs sunlight to"));
    expect(d.requests[0]!.continuation).toBe(" make its own food");
    expect(d.gold).toBe(0);
  });

  it("arc wraps the question and looks numeric labels up", async () => {
    const d = await build("arc_easy", 1);
    expect(d.requests[0]).toEqual({
      context: "Question: What do plants release into the air during photosynthesis?\nAnswer:",
      continuation: " oxygen",
    });
    expect(d.gold).toBe(0);
    const c = await build("arc_challenge", 1);
    expect(c.gold).toBe(1);
    expect(c.choices).toHaveLength(4);
  });

  it("arc rejects an answer key missing from the labels (the harness raises too)", () => {
    const task = TASKS.arc_easy!;
    const doc = task.parse({
      question: "q",
      choices: { text: ["a", "b"], label: ["A", "B"] },
      answerKey: "C",
    });
    expect(() => task.build(doc)).toThrow(/answerKey "C" is not among the labels/);
  });
});

describe("boolq and piqa", () => {
  it("boolq: passage, question with '?', choices no/yes", async () => {
    const d = await build("boolq", 1);
    expect(d.requests[0]!.context).toBe(
      "Penguin -- Penguins are a group of aquatic flightless birds. Highly adapted for life in the water, penguins have countershaded dark and white plumage and flippers for swimming.\nQuestion: can penguins fly?\nAnswer:",
    );
    expect(d.requests.map((r) => r.continuation)).toEqual([" no", " yes"]);
    expect(d.gold).toBe(0);
  });

  it("piqa: goal as a question, two solutions", async () => {
    const d = await build("piqa", 1);
    expect(d.requests[1]).toEqual({
      context: "Question: To dry wet shoes faster,\nAnswer:",
      continuation: " stuff them with newspaper and leave them in a warm room.",
    });
    expect(d.gold).toBe(1);
  });
});

describe("winogrande and xwinograd_zh (multiple input, partial scoring)", () => {
  it("fills the blank into one context per option and shares the stripped remainder", async () => {
    const d = await build("winogrande", 1);
    expect(d.requests).toEqual([
      {
        context: "Sarah lent her umbrella to Emily because Sarah",
        continuation: " was going out in the rain.",
      },
      {
        context: "Sarah lent her umbrella to Emily because Emily",
        continuation: " was going out in the rain.",
      },
    ]);
    expect(d.choices).toEqual(d.requests.map((r) => r.context));
    expect(d.gold).toBe(1);
  });

  it("xwinograd_zh uses the same rule and still delimits with a space", async () => {
    const d = await build("xwinograd_zh", 1);
    expect(d.requests).toEqual([
      { context: "小明把伞借给了小红，因为小明", continuation: " 要出门淋雨。" },
      { context: "小明把伞借给了小红，因为小红", continuation: " 要出门淋雨。" },
    ]);
    expect(d.gold).toBe(1);
  });

  it("rejects a sentence without a blank and an answer other than 1/2", () => {
    const task = TASKS.winogrande!;
    expect(() =>
      task.build(task.parse({ sentence: "no blank", option1: "a", option2: "b", answer: "1" })),
    ).toThrow(/no "_" blank/);
    expect(() =>
      task.build(task.parse({ sentence: "a _ b", option1: "a", option2: "b", answer: "" })),
    ).toThrow(/answer must be "1" or "2"/);
  });
});

describe("Chinese tasks", () => {
  it("xnli_zh has an empty context and three full-sentence continuations in label order", async () => {
    const d = await build("xnli_zh", 0);
    expect(d.requests.map((r) => r.context)).toEqual(["", "", ""]);
    expect(d.requests.map((r) => r.continuation)).toEqual([
      " 他每天早上都骑自行车去上班, 正确? 是的, 他有一辆自行车",
      " 他每天早上都骑自行车去上班, 正确? 所以, 他有一辆自行车",
      " 他每天早上都骑自行车去上班, 正确? 不是的, 他有一辆自行车",
    ]);
    expect(d.gold).toBe(0);
  });

  it("xcopa_zh drops the premise's last character and appends the connector", async () => {
    const cause = await build("xcopa_zh", 0);
    expect(cause.requests[0]).toEqual({
      context: "院子里的花都开了 因为",
      continuation: " 春天到了。",
    });
    // A trailing space is stripped before the last character is dropped.
    const effect = await build("xcopa_zh", 2);
    expect(effect.requests[0]!.context).toBe("他把冰淇淋放在桌子上很久 所以");
    // First character lower-cased.
    const latin = await build("xcopa_zh", 3);
    expect(latin.requests[0]!.context).toBe("The kettle started to whistle 因为");
    expect(latin.choices).toEqual(["the water was boiling.", "the kettle was empty."]);
  });

  it("xcopa_zh rejects an unknown question type", () => {
    const task = TASKS.xcopa_zh!;
    const doc = task.parse({
      premise: "a。",
      choice1: "b",
      choice2: "c",
      question: "why",
      label: 0,
    });
    expect(() => task.build(doc)).toThrow(/question must be "cause" or "effect"/);
  });

  it("xstorycloze_zh joins the four sentences with spaces; answer_right_ending is 1-based", async () => {
    const d = await build("xstorycloze_zh", 1);
    expect(d.requests[0]!.context).toBe(
      "妈妈在厨房做饭。 她发现家里没有盐了。 她让女儿去楼下的商店。 女儿很快就回来了。",
    );
    expect(d.requests[1]!.continuation).toBe(" 妈妈用买来的盐做完了菜。");
    expect(d.gold).toBe(1);
  });
});

describe("task registry", () => {
  it("every task parses and builds all of its fixtures with the gold inside the choices", async () => {
    for (const task of Object.values(TASKS)) {
      const docs = await readTaskRecords(fixturePath(task));
      expect(docs.length, task.name).toBeGreaterThanOrEqual(3);
      for (const raw of docs) {
        const d = task.build(task.parse(raw));
        expect(d.requests.length).toBe(d.choices.length);
        expect(d.gold).toBeGreaterThanOrEqual(0);
        expect(d.gold).toBeLessThan(d.choices.length);
      }
    }
  });

  it("resolves groups and rejects unknown names", () => {
    expect(resolveTasks("chinese").map((t) => t.name)).toEqual([
      "xwinograd_zh",
      "xstorycloze_zh",
      "xnli_zh",
      "xcopa_zh",
    ]);
    expect(resolveTasks("boolq, piqa,boolq").map((t) => t.name)).toEqual(["boolq", "piqa"]);
    expect(() => resolveTasks("hellaswag,mmlu")).toThrow(/unknown task "mmlu"/);
    expect(() => resolveTasks(" , ")).toThrow(/no task named/);
  });
});
