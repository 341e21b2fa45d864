import { dropLastCodePoint, lowerFirst, pyStrip } from "../pytext.js";
import { contextWithChoices, DocSchemaError, defineTask, fields } from "./task.js";

export interface XcopaDoc {
  premise: string;
  choice1: string;
  choice2: string;
  question: string;
  label: number;
}

const CONNECTORS_ZH: Record<string, string> = { cause: "因为", effect: "所以" };

/** xcopa_zh: the premise loses its final punctuation and gains the connector for the question. */
export const xcopaZh = defineTask<XcopaDoc>({
  name: "xcopa_zh",
  version: 1,
  dataset: { path: "cambridgeltl/xcopa", name: "zh", split: "test", size: 500 },
  metrics: ["acc"],
  template: {
    doc_to_text: 'premise.strip()[:-1] + " " + {"cause": "因为", "effect": "所以"}[question]',
    doc_to_choice: "[c[0].lower() + c[1:] for c in (choice1, choice2)]",
    doc_to_target: "label",
  },
  parse(raw) {
    const f = fields("xcopa_zh", raw);
    return {
      premise: f.string("premise"),
      choice1: f.string("choice1"),
      choice2: f.string("choice2"),
      question: f.string("question"),
      label: f.int("label"),
    };
  },
  build(doc) {
    const connector = CONNECTORS_ZH[doc.question];
    if (connector === undefined) {
      throw new DocSchemaError(
        "xcopa_zh",
        `question must be "cause" or "effect", got ${JSON.stringify(doc.question)}`,
      );
    }
    return contextWithChoices(
      dropLastCodePoint(pyStrip(doc.premise)) + " " + connector,
      [lowerFirst(doc.choice1), lowerFirst(doc.choice2)],
      doc.label,
    );
  },
});
