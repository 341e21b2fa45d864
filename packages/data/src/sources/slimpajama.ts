import type { SourceDefinition } from "./source.js";

/** cerebras/SlimPajama-627B: jsonl.zst, `text`, `meta.redpajama_set_name`. */
export const slimpajama: SourceDefinition = {
  name: "slimpajama",
  hubRepo: "cerebras/SlimPajama-627B",
  gated: false,
  format: "jsonl.zst",
  textField: "text",
  subsets: {
    train: ["train/**/*.jsonl.zst"],
    validation: ["validation/**/*.jsonl.zst"],
    test: ["test/**/*.jsonl.zst"],
  },
  defaultSubsets: ["train"],
  meta(record) {
    const m = record.meta as Record<string, unknown> | undefined;
    const set = m && typeof m.redpajama_set_name === "string" ? m.redpajama_set_name : undefined;
    return set ? { redpajama_set_name: set } : {};
  },
  // TinyLlama takes code from StarCoderData instead of SlimPajama's GitHub subset.
  drop(_record, meta) {
    return meta.redpajama_set_name === "RedPajamaGithub" ? "RedPajamaGithub" : undefined;
  },
};
