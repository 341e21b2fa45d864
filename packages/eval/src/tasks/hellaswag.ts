import { pyCapitalize, pyStrip } from "../pytext.js";
import { contextWithChoices, defineTask, fields } from "./task.js";

/**
 * The harness's hellaswag `preprocess`: strip; " [title]" becomes ". "; every "[...]" (non-greedy,
 * not across a newline: Python's `.`) is removed; double spaces become single (one pass).
 */
export function hellaswagPreprocess(text: string): string {
  return pyStrip(text)
    .replaceAll(" [title]", ". ")
    .replace(/\[[^\n]*?\]/g, "")
    .replaceAll("  ", " ");
}

export interface HellaswagDoc {
  activityLabel: string;
  ctxA: string;
  ctxB: string;
  endings: string[];
  label: number;
}

export const hellaswag = defineTask<HellaswagDoc>({
  name: "hellaswag",
  version: 1,
  dataset: { path: "Rowan/hellaswag", name: null, split: "validation", size: 10042 },
  metrics: ["acc", "acc_norm"],
  template: {
    doc_to_text: 'preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize())',
    doc_to_choice: "[preprocess(e) for e in endings]",
    doc_to_target: "int(label)",
  },
  parse(raw) {
    const f = fields("hellaswag", raw);
    return {
      activityLabel: f.string("activity_label"),
      ctxA: f.string("ctx_a"),
      ctxB: f.string("ctx_b"),
      endings: f.strings("endings"),
      label: f.intLike("label"),
    };
  },
  build(doc) {
    const ctx = doc.ctxA + " " + pyCapitalize(doc.ctxB);
    return contextWithChoices(
      hellaswagPreprocess(doc.activityLabel + ": " + ctx),
      doc.endings.map(hellaswagPreprocess),
      doc.label,
    );
  },
});
