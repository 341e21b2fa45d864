import { contextWithChoices, defineTask, fields } from "./task.js";

export interface XnliDoc {
  premise: string;
  hypothesis: string;
  label: number;
}

/**
 * xnli_zh: the context is empty, so each full sentence "premise, 正确? <word>, hypothesis" is a
 * continuation scored after a single prefix token. Choice order follows the labels:
 * 0 entailment (是的), 1 neutral (所以), 2 contradiction (不是的).
 */
export const xnliZh = defineTask<XnliDoc>({
  name: "xnli_zh",
  version: 1,
  dataset: { path: "facebook/xnli", name: "zh", split: "validation", size: 2490 },
  metrics: ["acc"],
  template: {
    doc_to_text: "''",
    doc_to_choice:
      '{{[premise+", 正确? 是的, "+hypothesis,premise+", 正确? 所以, "+hypothesis,premise+", 正确? 不是的, "+hypothesis]}}',
    doc_to_target: "label",
  },
  parse(raw) {
    const f = fields("xnli_zh", raw);
    return {
      premise: f.string("premise"),
      hypothesis: f.string("hypothesis"),
      label: f.int("label"),
    };
  },
  build(doc) {
    const { premise, hypothesis } = doc;
    return contextWithChoices(
      "",
      [
        premise + ", 正确? 是的, " + hypothesis,
        premise + ", 正确? 所以, " + hypothesis,
        premise + ", 正确? 不是的, " + hypothesis,
      ],
      doc.label,
    );
  },
});
