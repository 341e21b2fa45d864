/**
 * Model weights in Hugging Face Llama form: `config.json` plus `model.safetensors` (or the
 * sharded `model-0000i-of-0000n.safetensors` with `model.safetensors.index.json`) under
 * LlamaForCausalLM tensor names, so `LlamaForCausalLM.from_pretrained(dir)` loads this
 * project's checkpoints unchanged and TinyLlama's own weights load here.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fromHfConfig, type LlamaConfig, parameterSpecs, toHfConfig } from "../model/config.js";
import {
  type FileDigest,
  readSafetensorsHeader,
  readTensorF32,
  type SafetensorsHeader,
  type TensorToWrite,
  writeSafetensors,
} from "./safetensors.js";
import { latestCheckpoint } from "./store.js";

export const MODEL_FILE = "model.safetensors";
export const INDEX_FILE = "model.safetensors.index.json";
export const CONFIG_FILE = "config.json";

export interface WeightSource {
  dir: string;
  config: LlamaConfig;
  /** Reads one parameter as f32, checking its shape against the config. */
  read(name: string): Float32Array;
}

/**
 * Finds the weights directory for `dir`: the directory itself when it holds config.json and
 * safetensors, else the newest checkpoint of a stage directory (`<dir>/checkpoints/step-*`),
 * else the newest checkpoint over the stages of a run directory.
 */
export function resolveWeightsDir(dir: string): string {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new Error(`checkpoint directory ${dir} does not exist`);
  }
  if (existsSync(join(dir, CONFIG_FILE))) return dir;
  const latest = latestCheckpoint(dir);
  if (latest) return latest.path;
  // A run directory: the newest checkpoint of its stages (global steps continue across stages).
  let best: { step: number; path: string } | null = null;
  for (const name of readdirSync(dir)) {
    const sub = join(dir, name);
    if (!statSync(sub).isDirectory()) continue;
    const c = latestCheckpoint(sub);
    if (c && (!best || c.step > best.step)) best = c;
  }
  if (best) return best.path;
  throw new Error(
    `${dir} holds neither config.json + ${MODEL_FILE} (a checkpoint or a Hugging Face Llama model) ` +
      `nor checkpoints/step-* (a stage directory) nor stage directories with checkpoints (a run directory)`,
  );
}

export function loadWeights(dirIn: string): WeightSource {
  const dir = resolveWeightsDir(dirIn);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(join(dir, CONFIG_FILE), "utf8")) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${join(dir, CONFIG_FILE)}: unreadable (${(e as Error).message})`);
  }
  let config: LlamaConfig;
  try {
    config = fromHfConfig(raw);
  } catch (e) {
    // Name the file read (fromHfConfig's own messages start "config.json: ").
    const msg = (e as Error).message.replace(/^config\.json: /, "");
    throw new Error(`${join(dir, CONFIG_FILE)}: ${msg}`);
  }
  const files = new Map<string, { path: string; header: SafetensorsHeader }>();
  const indexPath = join(dir, INDEX_FILE);
  const sharded = !existsSync(join(dir, MODEL_FILE)) && existsSync(indexPath);
  const headerOf = (file: string, tensor: string) => {
    let h = files.get(file);
    if (!h) {
      const path = join(dir, file);
      if (sharded && !existsSync(path)) {
        throw new Error(
          `${indexPath}: tensor "${tensor}" is in ${file}, but ${path} does not exist (a shard not downloaded?)`,
        );
      }
      h = { path, header: readSafetensorsHeader(path) };
      files.set(file, h);
    }
    return h;
  };
  let fileOf: (name: string) => string;
  if (!sharded && existsSync(join(dir, MODEL_FILE))) {
    fileOf = () => MODEL_FILE;
  } else if (sharded) {
    let index: { weight_map?: Record<string, string> };
    try {
      index = JSON.parse(readFileSync(indexPath, "utf8")) as typeof index;
    } catch (e) {
      throw new Error(`${indexPath}: unreadable (${(e as Error).message})`);
    }
    const map = index.weight_map ?? {};
    fileOf = (name) => {
      const f = map[name];
      if (!f) throw new Error(`${indexPath}: no file for tensor "${name}"`);
      return f;
    };
  } else {
    const pickles = ["pytorch_model.bin", "pytorch_model.bin.index.json"].filter((f) =>
      existsSync(join(dir, f)),
    );
    const pickle =
      pickles.length > 0
        ? ` (${pickles.join(", ")}: PyTorch pickle weights, not read here; convert them to safetensors first)`
        : "";
    throw new Error(`${dir}: has config.json but neither ${MODEL_FILE} nor ${INDEX_FILE}${pickle}`);
  }
  const shapes = new Map(parameterSpecs(config).map((s) => [s.name, s.shape]));
  return {
    dir,
    config,
    read(name: string): Float32Array {
      const want = shapes.get(name);
      if (!want) throw new Error(`"${name}" is not a parameter of this Llama config`);
      const { path, header } = headerOf(fileOf(name), name);
      const e = header.tensors.get(name);
      if (!e) throw new Error(`${path}: tensor "${name}" is missing`);
      if (e.shape.length !== want.length || e.shape.some((d, i) => d !== want[i])) {
        throw new Error(
          `${path}: tensor "${name}" has shape [${e.shape.join(",")}], config.json implies [${want.join(",")}]`,
        );
      }
      return readTensorF32(path, header, name);
    },
  };
}

/**
 * Writes config.json and model.safetensors (f32, HF names, HF order) into `dir`; returns each
 * file's size and SHA-256 by file name.
 */
export function writeHfModel(
  dir: string,
  config: LlamaConfig,
  read: (name: string) => Float32Array,
): Record<string, FileDigest> {
  const tensors: TensorToWrite[] = parameterSpecs(config).map((s) => ({
    name: s.name,
    dtype: "F32",
    shape: s.shape,
    data: () => read(s.name),
  }));
  const model = writeSafetensors(join(dir, MODEL_FILE), tensors, { format: "pt" });
  const json = Buffer.from(`${JSON.stringify(toHfConfig(config), null, 2)}\n`);
  writeFileSync(join(dir, CONFIG_FILE), json);
  return {
    [MODEL_FILE]: model,
    [CONFIG_FILE]: { bytes: json.length, sha256: createHash("sha256").update(json).digest("hex") },
  };
}
