import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { modelConfig, parameterSpecs, toHfConfig } from "../model/config.js";
import { loadWeights, writeHfModel } from "./hf.js";
import { readSafetensorsHeader, readTensorF32, writeSafetensors } from "./safetensors.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "st-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("safetensors", () => {
  it("writes the documented layout and reads it back", () => {
    const path = join(dir, "a.safetensors");
    const a = Float32Array.from([1, -2.5, 3, 4e-8, 5, 6]);
    writeSafetensors(
      path,
      [
        { name: "a", dtype: "F32", shape: [2, 3], data: a },
        { name: "b", dtype: "F32", shape: [1], data: () => Float32Array.of(7) },
      ],
      { format: "pt" },
    );
    const bytes = readFileSync(path);
    const n = Number(bytes.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString("utf8"));
    expect(header.__metadata__).toEqual({ format: "pt" });
    expect(header.a).toEqual({ dtype: "F32", shape: [2, 3], data_offsets: [0, 24] });
    expect(header.b.data_offsets).toEqual([24, 28]);
    const h = readSafetensorsHeader(path);
    expect([...readTensorF32(path, h, "a")]).toEqual([...a]);
    expect([...readTensorF32(path, h, "b")]).toEqual([7]);
  });

  it("widens BF16 and F16 tensors to f32", () => {
    const path = join(dir, "h.safetensors");
    const bf16 = Uint16Array.of(0x3f80, 0xc040, 0x0000); // 1, -3, 0
    const f16 = Uint16Array.of(0x3c00, 0xc000, 0x3555); // 1, -2, ~0.3333
    writeSafetensors(path, [
      { name: "x", dtype: "BF16", shape: [3], data: bf16 },
      { name: "y", dtype: "F16", shape: [3], data: f16 },
    ]);
    const h = readSafetensorsHeader(path);
    expect([...readTensorF32(path, h, "x")]).toEqual([1, -3, 0]);
    const y = readTensorF32(path, h, "y");
    expect(y[0]).toBe(1);
    expect(y[1]).toBe(-2);
    expect(y[2]).toBeCloseTo(1 / 3, 3);
  });

  it("names the problem in truncated or corrupt files", () => {
    const path = join(dir, "t.safetensors");
    writeSafetensors(path, [{ name: "w", dtype: "F32", shape: [4], data: new Float32Array(4) }]);
    const full = readFileSync(path);
    writeFileSync(path, full.subarray(0, full.length - 4));
    expect(() => readSafetensorsHeader(path)).toThrow(/tensor "w" .* \(truncated file\?\)/);
    writeFileSync(path, Buffer.from([1, 2, 3]));
    expect(() => readSafetensorsHeader(path)).toThrow(/not a safetensors file/);
    const bad = Buffer.alloc(16);
    bad.writeBigUInt64LE(8n);
    bad.write("{notjson", 8);
    writeFileSync(path, bad);
    expect(() => readSafetensorsHeader(path)).toThrow(/header is not valid JSON/);
    expect(() =>
      writeSafetensors(path, [{ name: "w", dtype: "F32", shape: [4], data: new Float32Array(3) }]),
    ).toThrow(/needs 16 bytes, got 12/);
  });

  it("refuses headers whose byte ranges overlap, leave gaps or stop before the end (as the reference reader)", () => {
    const path = join(dir, "o.safetensors");
    /** A file of 16 data bytes (4 f32: 1, 2, 3, 4) under the given header entries. */
    const file = (header: Record<string, unknown>, tail = 0) => {
      let json = JSON.stringify(header);
      json += " ".repeat((8 - (json.length % 8)) % 8);
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(json.length));
      const data = Buffer.from(Float32Array.of(1, 2, 3, 4).buffer);
      writeFileSync(path, Buffer.concat([len, Buffer.from(json), data, Buffer.alloc(tail)]));
    };
    const t = (begin: number, end: number) => ({
      dtype: "F32",
      shape: [(end - begin) / 4],
      data_offsets: [begin, end],
    });
    file({ a: t(0, 8), b: t(8, 16) });
    expect([...readTensorF32(path, readSafetensorsHeader(path), "b")]).toEqual([3, 4]);
    // "b" would silently read a's bytes.
    file({ a: t(0, 16), b: t(0, 8) });
    expect(() => readSafetensorsHeader(path)).toThrow(
      `${path}: tensor "a" [0, 16) overlaps tensor "b"`,
    );
    file({ a: t(0, 4), b: t(8, 16) });
    expect(() => readSafetensorsHeader(path)).toThrow(
      `${path}: bytes [4, 8) of the data section belong to no tensor (before tensor "b")`,
    );
    file({ a: t(0, 8), b: t(8, 16) }, 8);
    expect(() => readSafetensorsHeader(path)).toThrow(
      `${path}: 8 bytes after the last tensor's data`,
    );
    file({ a: t(0, 8), b: null });
    expect(() => readSafetensorsHeader(path)).toThrow(`${path}: tensor "b" has no dtype`);
    file({ a: t(0, 8), b: { dtype: "F32", shape: [-2], data_offsets: [16, 8] } });
    expect(() => readSafetensorsHeader(path)).toThrow(/tensor "b" has shape \[-2\]/);
  });

  it("model checkpoints carry Hugging Face Llama names, shapes and config.json", () => {
    const c = modelConfig("tinyllama-test");
    const specs = parameterSpecs(c);
    writeHfModel(dir, c, (name) => {
      const s = specs.find((x) => x.name === name)!;
      return new Float32Array(s.shape.reduce((a, b) => a * b, 1)).fill(0.5);
    });
    const h = readSafetensorsHeader(join(dir, "model.safetensors"));
    expect([...h.tensors.keys()]).toEqual(specs.map((s) => s.name));
    expect(h.tensors.get("model.embed_tokens.weight")?.shape).toEqual([32000, 32]);
    expect(h.tensors.get("model.layers.0.self_attn.k_proj.weight")?.shape).toEqual([16, 32]);
    expect(h.tensors.get("model.layers.0.mlp.down_proj.weight")?.shape).toEqual([32, 88]);
    const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    expect(cfg.architectures).toEqual(["LlamaForCausalLM"]);
    expect(cfg.num_key_value_heads).toBe(2);
    const w = loadWeights(dir);
    expect(w.config.hiddenSize).toBe(32);
    expect(w.read("model.norm.weight")[0]).toBe(0.5);
  });

  it("loads sharded Hugging Face checkpoints and refuses shape mismatches", () => {
    const c = modelConfig("tinyllama-test");
    const specs = parameterSpecs(c);
    const half = Math.floor(specs.length / 2);
    const weightMap: Record<string, string> = {};
    [specs.slice(0, half), specs.slice(half)].forEach((part, i) => {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      writeSafetensors(
        join(dir, file),
        part.map((s) => {
          weightMap[s.name] = file;
          const n = s.shape.reduce((a, b) => a * b, 1);
          // BF16 like TinyLlama's published weights: 0x3f80 is 1.0.
          return {
            name: s.name,
            dtype: "BF16" as const,
            shape: s.shape,
            data: new Uint16Array(n).fill(0x3f80),
          };
        }),
      );
    });
    writeFileSync(
      join(dir, "model.safetensors.index.json"),
      JSON.stringify({ weight_map: weightMap }),
    );
    const { tinyllama_ts_model: _, ...hf } = JSON.parse(JSON.stringify(toHfConfig(c))) as Record<
      string,
      unknown
    >;
    writeFileSync(join(dir, "config.json"), JSON.stringify(hf));
    const w = loadWeights(dir);
    expect(w.config.name).toBe("custom");
    expect(w.read("lm_head.weight")[123]).toBe(1);
    writeFileSync(
      join(dir, "config.json"),
      JSON.stringify({ ...hf, hidden_size: 64, head_dim: 16 }),
    );
    expect(() => loadWeights(dir).read("model.embed_tokens.weight")).toThrow(
      /has shape \[32000,32\], config.json implies \[32000,64\]/,
    );
  });

  it("sharded and PyTorch-only directories fail naming the file (and the tensor)", () => {
    const c = modelConfig("tinyllama-test");
    const specs = parameterSpecs(c);
    const weightMap: Record<string, string> = {};
    const shard = (i: number) => `model-0000${i + 1}-of-00002.safetensors`;
    specs.forEach((s, i) => {
      weightMap[s.name] = shard(i === specs.length - 1 ? 1 : 0);
    });
    writeSafetensors(
      join(dir, shard(0)),
      specs.slice(0, -1).map((s) => ({
        name: s.name,
        dtype: "F32" as const,
        shape: s.shape,
        data: new Float32Array(s.shape.reduce((a, b) => a * b, 1)),
      })),
    );
    writeFileSync(join(dir, "config.json"), JSON.stringify(toHfConfig(c)));
    const index = join(dir, "model.safetensors.index.json");
    writeFileSync(index, JSON.stringify({ weight_map: weightMap }));
    const w = loadWeights(dir);
    expect(w.read("model.norm.weight")).toHaveLength(32);
    // The second shard was never downloaded.
    expect(() => w.read("lm_head.weight")).toThrow(
      `${index}: tensor "lm_head.weight" is in ${shard(1)}, but ${join(dir, shard(1))} does not exist`,
    );
    writeFileSync(index, '{"weight_map": {');
    expect(() => loadWeights(dir)).toThrow(`${index}: unreadable`);
    rmSync(index);
    rmSync(join(dir, shard(0)));
    writeFileSync(join(dir, "pytorch_model.bin.index.json"), "{}");
    expect(() => loadWeights(dir)).toThrow(
      /pytorch_model.bin.index.json: PyTorch pickle weights, not read here; convert them to safetensors/,
    );
  });
});
