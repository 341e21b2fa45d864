// Loads the built @tinyllama/tokenizer and the reference packages (its dev dependencies) by
// path, so these scripts need nothing added to tools/package.json.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

export const pkgDir = fileURLToPath(new URL("../../../packages/tokenizer/", import.meta.url));
const dist = `${pkgDir}dist/index.js`;

export async function loadPackages() {
  if (!existsSync(dist)) {
    throw new Error(
      `${dist} is missing: build first with  npx tsc -p packages/tokenizer/tsconfig.build.json`,
    );
  }
  const require = createRequire(`${pkgDir}package.json`);
  const tokenizer = await import(pathToFileURL(dist).href);
  const testing = await import(pathToFileURL(`${pkgDir}dist/testing/varied-text.js`).href);
  return {
    ...tokenizer,
    variedTexts: testing.variedTexts,
    rng: testing.rng,
    isWellFormed: testing.isWellFormed,
    hf: require("tokenizers"),
    spjs: require("sentencepiece-js"),
  };
}

export const FIXTURE_MODEL = `${pkgDir}src/testdata/llama2-tokenizer.model`;
