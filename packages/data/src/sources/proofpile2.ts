import type { SourceDefinition } from "./source.js";

/** EleutherAI/proof-pile-2: jsonl.zst, `text`, optional `meta`; subsets are top folders. */
export const proofpile2: SourceDefinition = {
  name: "proof-pile-2",
  hubRepo: "EleutherAI/proof-pile-2",
  gated: false,
  format: "jsonl.zst",
  textField: "text",
  subsets: {
    arxiv: ["arxiv/train/**/*.jsonl.zst"],
    "open-web-math": ["open-web-math/train/**/*.jsonl.zst"],
    "algebraic-stack": ["algebraic-stack/train/**/*.jsonl.zst"],
  },
  defaultSubsets: ["arxiv", "open-web-math", "algebraic-stack"],
  meta(_record, path) {
    return { subset: path.split("/")[0] ?? "" };
  },
};
