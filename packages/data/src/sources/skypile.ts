import type { SourceDefinition } from "./source.js";

/** Skywork/SkyPile-150B: plain jsonl, `text`, files data/{YYYY-WW}_zh_{head|middle}_NNNN.jsonl. */
export const skypile: SourceDefinition = {
  name: "skypile",
  hubRepo: "Skywork/SkyPile-150B",
  gated: false,
  format: "jsonl",
  textField: "text",
  subsets: {
    all: ["data/*.jsonl"],
    head: ["data/*_zh_head_*.jsonl"],
    middle: ["data/*_zh_middle_*.jsonl"],
  },
  defaultSubsets: ["all"],
  meta() {
    return {};
  },
};
