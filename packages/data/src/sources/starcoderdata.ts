import type { SourceDefinition } from "./source.js";

/**
 * bigcode/starcoderdata (gated): one folder of parquet files per language, text in `content`.
 * v1.1 Math&Code uses only the `python` and `jupyter-*` folders: select them as subsets.
 */
const languages = [
  "python",
  "java",
  "javascript",
  "typescript",
  "c",
  "cpp",
  "c-sharp",
  "go",
  "rust",
  "ruby",
  "php",
  "scala",
  "kotlin",
  "swift",
  "lua",
  "shell",
  "sql",
  "html",
  "css",
  "markdown",
  "json",
  "yaml",
  "tex",
  "haskell",
  "julia",
  "r",
  "perl",
  "fortran",
  "assembly",
  "coq",
];

export const starcoderdata: SourceDefinition = {
  name: "starcoder",
  hubRepo: "bigcode/starcoderdata",
  gated: true,
  format: "parquet",
  textField: "content",
  columns: ["content", "max_stars_repo_path", "max_stars_repo_name", "id"],
  subsets: {
    ...Object.fromEntries(languages.map((l) => [l, [`${l}/**/*.parquet`]])),
    "jupyter-scripts-dedup-filtered": ["jupyter-scripts-dedup-filtered/**/*.parquet"],
    "jupyter-structured-clean-dedup": ["jupyter-structured-clean-dedup/**/*.parquet"],
    jupyter: [
      "jupyter-scripts-dedup-filtered/**/*.parquet",
      "jupyter-structured-clean-dedup/**/*.parquet",
    ],
    all: ["**/*.parquet"],
  },
  defaultSubsets: ["all"],
  meta(record, path) {
    const language = path.split("/")[0] ?? "";
    const repoPath = record.max_stars_repo_path;
    return typeof repoPath === "string" ? { language, path: repoPath } : { language };
  },
};
