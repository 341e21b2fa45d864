import { contextWithChoices, defineTask, fields } from "./task.js";

export interface PiqaDoc {
  goal: string;
  sol1: string;
  sol2: string;
  label: number;
}

export const piqa = defineTask<PiqaDoc>({
  name: "piqa",
  version: 1,
  dataset: { path: "baber/piqa", name: null, split: "validation", size: 1838 },
  metrics: ["acc", "acc_norm"],
  template: {
    doc_to_text: "Question: {{goal}}\\nAnswer:",
    doc_to_choice: "{{[sol1, sol2]}}",
    doc_to_target: "label",
  },
  parse(raw) {
    const f = fields("piqa", raw);
    return {
      goal: f.string("goal"),
      sol1: f.string("sol1"),
      sol2: f.string("sol2"),
      label: f.int("label"),
    };
  },
  build(doc) {
    return contextWithChoices(`Question: ${doc.goal}\nAnswer:`, [doc.sol1, doc.sol2], doc.label);
  },
});
