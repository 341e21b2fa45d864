import { contextWithChoices, DocSchemaError, defineTask, fields, type Task } from "./task.js";

export interface ArcDoc {
  question: string;
  choiceTexts: string[];
  choiceLabels: string[];
  answerKey: string;
}

function arcTask(name: string, config: string, size: number): Task<ArcDoc> {
  return defineTask<ArcDoc>({
    name,
    version: 1,
    dataset: { path: "allenai/ai2_arc", name: config, split: "test", size },
    metrics: ["acc", "acc_norm"],
    template: {
      doc_to_text: "Question: {{question}}\\nAnswer:",
      doc_to_choice: "{{choices.text}}",
      doc_to_target: "{{choices.label.index(answerKey)}}",
    },
    parse(raw) {
      const f = fields(name, raw);
      const choices = f.object("choices");
      return {
        question: f.string("question"),
        choiceTexts: choices.strings("text"),
        choiceLabels: choices.strings("label"),
        answerKey: f.string("answerKey"),
      };
    },
    build(doc) {
      // Labels are A-E for most questions and 1-4 for some; the key is looked up, not converted.
      const gold = doc.choiceLabels.indexOf(doc.answerKey);
      if (gold < 0) {
        throw new DocSchemaError(
          name,
          `answerKey ${JSON.stringify(doc.answerKey)} is not among the labels ${JSON.stringify(doc.choiceLabels)}`,
        );
      }
      return contextWithChoices(`Question: ${doc.question}\nAnswer:`, doc.choiceTexts, gold);
    },
  });
}

export const arcEasy = arcTask("arc_easy", "ARC-Easy", 2376);
export const arcChallenge = arcTask("arc_challenge", "ARC-Challenge", 1172);
