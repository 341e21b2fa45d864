// The module must import into browsers, Deno, Bun and bundlers with nothing else from the data
// package: only relative imports inside src/mixture, no Node built-ins or globals.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const here = dirname(fileURLToPath(import.meta.url));
const sources = readdirSync(here).filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"));

describe("@tinyllama/data/mixture stays dependency-free", () => {
  it.each(sources)("%s imports only sibling modules and uses no Node-only API", (file) => {
    const text = readFileSync(join(here, file), "utf8");
    const imports = [...text.matchAll(/(?:from|import)\s*\(?\s*["']([^"']+)["']/g)].map(
      (m) => m[1],
    );
    for (const spec of imports) expect(spec, `${file} imports ${spec}`).toMatch(/^\.\/[\w-]+\.js$/);
    const code = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
    for (const banned of [
      /\bprocess\./,
      /\bBuffer\b/,
      /\brequire\(/,
      /\b__dirname\b/,
      /\bglobalThis\./,
    ]) {
      expect(code, `${file} uses ${banned}`).not.toMatch(banned);
    }
  });
});
