import { pyStrip } from "../pytext.js";
import {
  contextsWithSharedContinuation,
  DocSchemaError,
  defineTask,
  fields,
  type Task,
} from "./task.js";

export interface WinogradDoc {
  sentence: string;
  option1: string;
  option2: string;
  answer: string;
}

/**
 * winogrande / xwinograd: the blank "_" is filled with each option to make one context per
 * option; the rest of the sentence after the blank (stripped) is the shared continuation.
 */
function winogradTask(name: string, dataset: Task["dataset"]): Task<WinogradDoc> {
  return defineTask<WinogradDoc>({
    name,
    version: 1,
    dataset,
    metrics: ["acc"],
    template: {
      doc_to_text: '{"1": 0, "2": 1}[answer]  (multiple input: gold index)',
      doc_to_choice: "[sentence[:sentence.index('_')] + o for o in (option1, option2)]",
      doc_to_target: "sentence[sentence.index('_') + 1:].strip()",
    },
    parse(raw) {
      const f = fields(name, raw);
      return {
        sentence: f.string("sentence"),
        option1: f.string("option1"),
        option2: f.string("option2"),
        answer: f.string("answer"),
      };
    },
    build(doc) {
      const blank = doc.sentence.indexOf("_");
      if (blank < 0) {
        throw new DocSchemaError(
          name,
          `sentence has no "_" blank: ${JSON.stringify(doc.sentence)}`,
        );
      }
      const gold = { "1": 0, "2": 1 }[doc.answer];
      if (gold === undefined) {
        throw new DocSchemaError(
          name,
          `answer must be "1" or "2", got ${JSON.stringify(doc.answer)}`,
        );
      }
      const before = doc.sentence.slice(0, blank);
      return contextsWithSharedContinuation(
        [before + doc.option1, before + doc.option2],
        pyStrip(doc.sentence.slice(blank + 1)),
        gold,
      );
    },
  });
}

export const winogrande = winogradTask("winogrande", {
  path: "allenai/winogrande",
  name: "winogrande_xl",
  split: "validation",
  size: 1267,
});

export const xwinogradZh = winogradTask("xwinograd_zh", {
  path: "Muennighoff/xwinograd",
  name: "zh",
  split: "test",
  size: 504,
});
