import { pyLstrip } from "../pytext.js";
import { contextWithChoices, DocSchemaError, defineTask, fields } from "./task.js";

export interface OpenBookQaDoc {
  questionStem: string;
  choiceTexts: string[];
  choiceLabels: string[];
  answerKey: string;
}

export const openbookqa = defineTask<OpenBookQaDoc>({
  name: "openbookqa",
  version: 1,
  dataset: { path: "allenai/openbookqa", name: "main", split: "test", size: 500 },
  metrics: ["acc", "acc_norm"],
  template: {
    doc_to_text: "question_stem",
    doc_to_choice: "{{choices.text}}",
    doc_to_target: "{{choices.label.index(answerKey.lstrip())}}",
  },
  parse(raw) {
    const f = fields("openbookqa", raw);
    const choices = f.object("choices");
    return {
      questionStem: f.string("question_stem"),
      choiceTexts: choices.strings("text"),
      choiceLabels: choices.strings("label"),
      answerKey: f.string("answerKey"),
    };
  },
  build(doc) {
    const gold = doc.choiceLabels.indexOf(pyLstrip(doc.answerKey));
    if (gold < 0) {
      throw new DocSchemaError(
        "openbookqa",
        `answerKey ${JSON.stringify(doc.answerKey)} is not among the labels ${JSON.stringify(doc.choiceLabels)}`,
      );
    }
    return contextWithChoices(doc.questionStem, doc.choiceTexts, gold);
  },
});
