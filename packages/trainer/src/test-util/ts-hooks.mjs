// Module hooks that let child processes of tests run this workspace's TypeScript sources
// directly (as vitest does in-process): `.ts` files are transpiled with esbuild on load, and
// `./x.js` imports written for NodeNext resolve to `./x.ts` when only the source exists. Use
// with `node --conditions=@tinyllama/source --import <ts-register.mjs> file.ts`.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { transformSync } from "esbuild";

export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (e) {
    const parent = context.parentURL ?? "";
    if (specifier.endsWith(".js") && parent.endsWith(".ts") && e?.code === "ERR_MODULE_NOT_FOUND") {
      return next(`${specifier.slice(0, -3)}.ts`, context);
    }
    throw e;
  }
}

export async function load(url, context, next) {
  if (!url.startsWith("file:") || !url.endsWith(".ts")) return next(url, context);
  const path = fileURLToPath(url);
  const { code } = transformSync(readFileSync(path, "utf8"), {
    loader: "ts",
    format: "esm",
    target: "node20",
    sourcefile: path,
    sourcemap: "inline",
  });
  return { format: "module", source: code, shortCircuit: true };
}
