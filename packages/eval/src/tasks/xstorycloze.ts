import { contextWithChoices, defineTask, fields } from "./task.js";

export interface XStoryClozeDoc {
  sentences: [string, string, string, string];
  quiz1: string;
  quiz2: string;
  answerRightEnding: number;
}

export const xstoryclozeZh = defineTask<XStoryClozeDoc>({
  name: "xstorycloze_zh",
  version: 1,
  dataset: { path: "juletxara/xstory_cloze", name: "zh", split: "eval", size: 1511 },
  metrics: ["acc"],
  template: {
    doc_to_text:
      "{{[input_sentence_1, input_sentence_2, input_sentence_3, input_sentence_4]|join(' ')}}",
    doc_to_choice: "{{[sentence_quiz1, sentence_quiz2]}}",
    doc_to_target: "{{answer_right_ending-1}}",
  },
  parse(raw) {
    const f = fields("xstorycloze_zh", raw);
    return {
      sentences: [
        f.string("input_sentence_1"),
        f.string("input_sentence_2"),
        f.string("input_sentence_3"),
        f.string("input_sentence_4"),
      ],
      quiz1: f.string("sentence_quiz1"),
      quiz2: f.string("sentence_quiz2"),
      answerRightEnding: f.int("answer_right_ending"),
    };
  },
  build(doc) {
    // Joined with a plain space even for Chinese, exactly as the harness's template does.
    return contextWithChoices(
      doc.sentences.join(" "),
      [doc.quiz1, doc.quiz2],
      doc.answerRightEnding - 1,
    );
  },
});
