/**
 * The built package as it ships: dist/index.js in a plain Node process (no vitest, no
 * TypeScript), with encodeBatch on real worker threads started from dist/worker.js. CI builds
 * before testing; a missing or stale dist is reported, not silently skipped.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { describe, expect, it } from "vitest";

const pkg = new URL("../", import.meta.url).pathname;
const dist = `${pkg}dist/index.js`;

function staleReason(): string | undefined {
  if (!existsSync(dist)) return "dist/ is missing (run the build first)";
  const newestSource = Math.max(
    ...readdirSync(`${pkg}src`)
      .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))
      .map((f) => statSync(`${pkg}src/${f}`).mtimeMs),
  );
  if (statSync(dist).mtimeMs < newestSource) return "dist/ is older than src/ (rebuild)";
  return undefined;
}

const reason = staleReason();
if (reason) console.log(`dist.test: not run: ${reason}`);

describe.runIf(reason === undefined)("built package", () => {
  it("loads, encodes and runs encodeBatch on worker threads from dist/", () => {
    const script = `
      const { LlamaTokenizer } = await import(${JSON.stringify(dist)});
      const tok = await LlamaTokenizer.load(undefined, { threads: 2 });
      const texts = ["Hello world!", "           grabbed", "🦙 東京", "", "x".repeat(100000)];
      const batch = await tok.encodeBatch(texts, { eos: true });
      const single = texts.map((t) => tok.encode(t, { eos: true }));
      console.log(JSON.stringify({ same: JSON.stringify(batch) === JSON.stringify(single), first: batch[0] }));
      await tok.close();
    `;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
      encoding: "utf8",
    });
    expect(JSON.parse(out.trim().split("\n").pop() ?? "{}")).toEqual({
      same: true,
      first: [1, 15043, 3186, 29991, 2],
    });
  });

  it("encodeBatch detaches no ArrayBuffer (which would deoptimise the workers' typed-array code)", () => {
    // V8 flags are process-wide; set at run time because workers refuse them in execArgv.
    const script = `
      (await import("node:v8")).setFlagsFromString("--trace-protector-invalidation");
      const { LlamaTokenizer } = await import(${JSON.stringify(dist)});
      const tok = await LlamaTokenizer.load(undefined, { threads: 1 });
      for (let i = 0; i < 3; i++) await tok.encodeBatch(["Hello world!", "🦙 東京 ".repeat(1000)]);
      await tok.close();
      console.log("done");
    `;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
      encoding: "utf8",
    });
    expect(out).toContain("done");
    expect(out).not.toContain("ArrayBufferDetaching");
  });

  it("encodeBatch works when the process runs with V8 flags (--expose-gc, --max-old-space-size)", () => {
    const script = `
      const { LlamaTokenizer } = await import(${JSON.stringify(dist)});
      const tok = await LlamaTokenizer.load(undefined, { threads: 1 });
      console.log(JSON.stringify(await tok.encodeBatch(["Hello world!"])));
      await tok.close();
    `;
    const out = execFileSync(
      process.execPath,
      ["--expose-gc", "--max-old-space-size=2048", "--input-type=module", "-e", script],
      { encoding: "utf8" },
    );
    expect(out.trim()).toBe("[[1,15043,3186,29991]]");
  });
});
