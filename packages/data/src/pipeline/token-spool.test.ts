import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { readTokenSpool, TokenSpoolWriter } from "./token-spool.js";
import { bytesTokenizer } from "./tokenizer.js";

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
const workDir = async () => {
  const d = await mkdtemp(join(tmpdir(), "spool-"));
  dirs.push(d);
  return d;
};
const bytesIds = (t: string) => [...Array.from(new TextEncoder().encode(t), (b) => b + 3), 2];

describe("token spool", () => {
  it("reads back every document's ids + EOS, across flushes and a text larger than the buffer", async () => {
    const work = await workDir();
    const tok = bytesTokenizer();
    // 1 << 20 tokens of buffer: many small texts force flushes, the 400K-char one (worst case
    // 1.2M ids) needs a larger buffer
    const texts = [
      ...Array.from({ length: 3000 }, (_, i) => `doc ${i} ${"é".repeat(i % 300)}`),
      "z".repeat(400_000),
      "after the big one",
    ];
    const w = await TokenSpoolWriter.open(work, 0);
    for (const [i, t] of texts.entries()) await w.appendText(i * 2, i % 3 === 0 ? 1 : 0, t, tok);
    await w.close();
    let i = 0;
    for await (const { docIndex, split, tokens } of readTokenSpool(work, 0)) {
      expect(docIndex).toBe(i * 2);
      expect(split).toBe(i % 3 === 0 ? 1 : 0);
      expect(Array.from(tokens)).toEqual(bytesIds(texts[i] as string));
      i++;
    }
    expect(i).toBe(texts.length);
  });

  it("refuses a tokenizer whose ids do not fit uint16, leaving no spool behind", async () => {
    const work = await workDir();
    const big = {
      ...bytesTokenizer(),
      identity: { ...bytesTokenizer().identity, vocabSize: 70000 },
    };
    const w = await TokenSpoolWriter.open(work, 0);
    await expect(w.appendText(0, 0, "x", big)).rejects.toThrow(/70000 ids.*uint16/);
    expect((await readdir(join(work, "tokens"))).filter((f) => !f.includes(".tmp-"))).toEqual([]);
  });
});
