import { contextWithChoices, defineTask, fields } from "./task.js";

export interface BoolqDoc {
  passage: string;
  question: string;
  label: number;
}

export const boolq = defineTask<BoolqDoc>({
  name: "boolq",
  version: 2,
  dataset: { path: "aps/super_glue", name: "boolq", split: "validation", size: 3270 },
  metrics: ["acc"],
  template: {
    doc_to_text: "{{passage}}\\nQuestion: {{question}}?\\nAnswer:",
    doc_to_choice: '["no", "yes"]',
    doc_to_target: "label",
  },
  parse(raw) {
    const f = fields("boolq", raw);
    return { passage: f.string("passage"), question: f.string("question"), label: f.int("label") };
  },
  build(doc) {
    return contextWithChoices(
      `${doc.passage}\nQuestion: ${doc.question}?\nAnswer:`,
      ["no", "yes"],
      doc.label,
    );
  },
});
