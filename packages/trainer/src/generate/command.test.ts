import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LlamaTokenizer, toHuggingFaceTokenizerJson } from "@tinyllama/tokenizer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeHfModel } from "../checkpoint/hf.js";
import { modelConfig, parameterSpecs } from "../model/config.js";
import { Rng } from "../model/rng.js";
import { generateCommand, parseStops, readPrompts } from "./command.js";

let dir: string;
const cfg = { ...modelConfig("tinyllama-test"), maxSeqLen: 128 };

/** The test model's weights into `out` (a checkpoint or Hugging Face model directory). */
function writeTestModel(out: string): void {
  const rng = new Rng(1);
  writeHfModel(out, cfg, (name) => {
    const s = parameterSpecs(cfg).find((p) => p.name === name)!;
    const data = new Float32Array(s.shape.reduce((a, b) => a * b, 1));
    if (s.initOnes) data.fill(1);
    else rng.fillNormal(data, 0.2);
    return data;
  });
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "generate-cli-"));
  writeTestModel(dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(argv: string[]) {
  let out = "";
  const err: string[] = [];
  await generateCommand(argv, { out: (t) => (out += t), err: (l) => err.push(l) });
  return { out, err };
}

describe("generate command", () => {
  it("streams one prompt's continuation after the prompt", async () => {
    const { out, err } = await run([
      "--checkpoint",
      dir,
      "--prompt",
      "Once upon a time",
      "--max-new-tokens",
      "6",
      "--device",
      "cpu",
      "--ignore-eos",
    ]);
    expect(out.startsWith("Once upon a time")).toBe(true);
    expect(out.endsWith("\n")).toBe(true);
    expect(err.at(-1)).toMatch(/^generate: 6 tokens in .* tokens\/s$/);
    // The printed continuation is the decoded greedy tokens.
    const tok = await LlamaTokenizer.load();
    const json = await run([
      "--checkpoint",
      dir,
      "--prompt",
      "Once upon a time",
      "--max-new-tokens",
      "6",
      "--device",
      "cpu",
      "--ignore-eos",
      "--json",
    ]);
    const rec = JSON.parse(json.out.trim()) as {
      completion: string;
      tokens: number[];
      finish_reason: string;
    };
    expect(rec.tokens).toHaveLength(6);
    expect(rec.finish_reason).toBe("length");
    expect(tok.decode([...tok.encode("Once upon a time"), ...rec.tokens])).toBe(
      `Once upon a time${rec.completion}`,
    );
    expect(out).toBe(`Once upon a time${rec.completion}\n`);
  });

  it("says what ended a streamed generation", async () => {
    const { err } = await run([
      ...["--checkpoint", dir, "--prompt", "Once upon a time", "--max-new-tokens", "3"],
      ...["--device", "cpu", "--ignore-eos"],
    ]);
    expect(err).toContain("generate: finish_reason length, 3 tokens");
  });

  it("a stage or run directory defaults to the tokenizer saved with its newest checkpoint", async () => {
    const base = [
      ...["--prompt", "Once upon a time", "--max-new-tokens", "4"],
      ...["--device", "cpu", "--ignore-eos", "--json"],
    ];
    const bundled = JSON.parse((await run(["--checkpoint", dir, ...base])).out) as {
      completion: string;
      tokens: number[];
    };
    // a checkpoint whose tokenizer swaps the pieces of the first generated token and of <0x41>
    const run_ = join(dir, "run");
    const ckpt = join(run_, "v1.0", "checkpoints", "step-000000000001");
    mkdirSync(ckpt, { recursive: true });
    writeTestModel(ckpt);
    writeFileSync(join(ckpt, "trainer-state.json"), "{}"); // marks a finished checkpoint
    const tok = await LlamaTokenizer.load();
    const json = JSON.parse(toHuggingFaceTokenizerJson(tok.model)) as {
      model: { vocab: Record<string, number> };
    };
    const vocab = json.model.vocab;
    const first = tok.idToPiece(bundled.tokens[0]!);
    [vocab[first], vocab["<0x41>"]] = [vocab["<0x41>"]!, vocab[first]!];
    writeFileSync(join(ckpt, "tokenizer.json"), JSON.stringify(json));
    const completion = (d: string) =>
      run(["--checkpoint", d, ...base]).then(
        (r) => (JSON.parse(r.out) as { completion: string }).completion,
      );
    const own = await completion(ckpt);
    expect(own).not.toBe(bundled.completion);
    expect(await completion(join(run_, "v1.0"))).toBe(own);
    expect(await completion(run_)).toBe(own);
  });

  it("reads prompts from text and JSON lines files", async () => {
    const txt = join(dir, "p.txt");
    writeFileSync(txt, "alpha\n\nbeta gamma\n");
    expect(readPrompts(txt)).toEqual(["alpha", "beta gamma"]);
    const jl = join(dir, "p.jsonl");
    writeFileSync(jl, '{"prompt": "x\\ny"}\n"plain"\n');
    expect(readPrompts(jl)).toEqual(["x\ny", "plain"]);
    writeFileSync(jl, '{"text": 1}\n');
    expect(() => readPrompts(jl)).toThrow(/p.jsonl:1: expected a string/);
    const { out } = await run([
      "--checkpoint",
      dir,
      "--prompts",
      txt,
      "--max-new-tokens",
      "3",
      "--device",
      "cpu",
      "--json",
      "--ignore-eos",
    ]);
    const lines = out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { index: number; prompt: string });
    expect(lines.map((l) => l.prompt).sort()).toEqual(["alpha", "beta gamma"]);
  });

  it("reads a prompts file strictly: no BOM in the first prompt, invalid UTF-8 refused", async () => {
    const bom = join(dir, "bom.txt");
    writeFileSync(bom, "\uFEFFHello\r\nworld\r\n");
    expect(readPrompts(bom)).toEqual(["Hello", "world"]);
    const latin1 = join(dir, "latin1.txt");
    writeFileSync(latin1, Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]));
    expect(() => readPrompts(latin1)).toThrow(/latin1\.txt is not valid UTF-8/);
    // only .jsonl (any case) is JSON lines; a .json array is plain text lines
    const upper = join(dir, "P.JSONL");
    writeFileSync(upper, '"a"\n');
    expect(readPrompts(upper)).toEqual(["a"]);
    // a one-line prompts file keeps the framing of a prompts file
    const one = join(dir, "one.txt");
    writeFileSync(one, "alpha\n");
    const { out } = await run([
      ...["--checkpoint", dir, "--prompts", one, "--max-new-tokens", "2"],
      ...["--device", "cpu", "--ignore-eos"],
    ]);
    expect(out).toMatch(/^=== \[0\] alpha/);
    expect(out).toMatch(/--- \(length, 2 tokens\)/);
  });

  it("parses stop strings and rejects bad flags", async () => {
    expect(parseStops("\\n\\nQ:")).toEqual(["\n\nQ:"]);
    expect(parseStops('["a", "\\n"]')).toEqual(["a", "\n"]);
    expect(() => parseStops("[1]")).toThrow(/non-empty strings/);
    await expect(run(["--prompt", "x"])).rejects.toThrow(/--checkpoint <dir> is required/);
    await expect(run(["--checkpoint", dir])).rejects.toThrow(/exactly one of --prompt/);
    await expect(run(["--checkpoint", dir, "--prompt", "x", "--top-p", "0"])).rejects.toThrow(
      /--top-p/,
    );
    await expect(
      run(["--checkpoint", join(dir, "nope"), "--prompt", "x", "--device", "cpu"]),
    ).rejects.toThrow(/does not exist/);
    await expect(run(["--checkpoint", dir, "--prompt", "x", "--temprature", "1"])).rejects.toThrow(
      /did you mean --temperature/,
    );
    await expect(
      run(["--checkpoint", dir, "--prompt", "x", "--seed", "4294967296"]),
    ).rejects.toThrow(/--seed must be at most 4294967295/);
  });
});
