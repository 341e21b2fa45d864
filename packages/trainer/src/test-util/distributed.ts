/**
 * Fixtures for the distributed tests (not exported from the package): shards of a small
 * learnable token chain over a 256-token vocabulary, a micro model that fits it, run options
 * for runStage, and in-process ranks joined over 127.0.0.1 (every rank a runStage call in this
 * process, talking over real sockets).
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import {
  MANIFEST_FORMAT,
  type ShardManifest,
  ShardWriter,
  type TokenizerIdentity,
  writeManifest,
} from "@tinyllama/data";
import { freeRendezvousPort } from "@tinyllama/kernels/collectives";
import type { DistEnv } from "../distributed/env.js";
import type { ShardingMode } from "../distributed/sharded.js";
import { type DistributedJob, joinDistributed } from "../distributed/world.js";
import type { LlamaConfig } from "../model/config.js";
import { modelConfig } from "../model/config.js";
import type { Backend } from "../model/kernels.js";
import type { RunOptions } from "../train/run.js";

export const MICRO_VOCAB = 256;

export function microModel(): LlamaConfig {
  return {
    ...modelConfig("tinyllama-test"),
    name: "micro-dist",
    vocabSize: MICRO_VOCAB,
    hiddenSize: 32,
    intermediateSize: 48,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    maxSeqLen: 64,
  };
}

const IDENTITY: TokenizerIdentity = {
  name: "micro-chain",
  hash: "micro-chain-256",
  vocabSize: MICRO_VOCAB,
  eosId: 2,
};

function chainTokens(n: number, salt: number): Uint16Array {
  let x = (salt * 2654435761 + 1) >>> 0;
  const out = new Uint16Array(n);
  let s = salt % 200;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    const r = x / 4294967296;
    s = (s * (r < 0.6 ? 7 : r < 0.9 ? 13 : 31) + 1 + salt) % 250;
    out[i] = 3 + s;
  }
  return out;
}

/**
 * data/<source>/ for the v1.0 mixture (slimpajama, starcoder), `blocks` train blocks each. The
 * ids (3..252) are valid in any vocabulary; pass the Llama 2 identity to train the CLI's models.
 */
export async function writeMicroShards(
  root: string,
  blocks: number,
  tokenizer: TokenizerIdentity = IDENTITY,
): Promise<void> {
  for (const [i, name] of ["slimpajama", "starcoder"].entries()) {
    const dir = join(root, name);
    mkdirSync(dir, { recursive: true });
    const w = new ShardWriter({
      dir,
      prefix: `train_${name}`,
      blockSize: 2049,
      chunkTokens: 2049 * 4,
    });
    await w.add(chainTokens(blocks * 2049, i + 1));
    const r = await w.finish();
    const manifest: ShardManifest = {
      format: MANIFEST_FORMAT,
      source: name,
      blockSize: 2049,
      chunkTokens: 2049 * 4,
      dtype: "uint16",
      tokenizer,
      eosAppended: true,
      splits: {
        train: {
          files: r.files,
          documents: 0,
          tokens: r.tokens,
          blocks: r.blocks,
          droppedTailTokens: r.droppedTailTokens,
        },
      },
      stats: { documentsRead: 0, bytesRead: 0, removed: {}, badRecords: 0, documentsKept: 0 },
      config: { generator: "distributed test chain" },
      createdAt: new Date(0).toISOString(),
    };
    await writeManifest(dir, manifest);
  }
}

/** runStage options for `steps` steps of `globalBatch` x 64-token sequences of the micro model. */
export function microRunOptions(
  backend: Backend,
  dataDir: string,
  outDir: string,
  o: {
    steps: number;
    globalBatch: number;
    microBatch: number;
    maxSteps?: number;
    model?: LlamaConfig;
  },
): RunOptions {
  const tokensPerStep = o.globalBatch * 64;
  return {
    stage: "v1.0",
    variant: null,
    scale: (o.steps * tokensPerStep) / 3e12,
    model: o.model ?? microModel(),
    backend,
    dataDir,
    tokenizer: null,
    outDir,
    from: null,
    seqLen: 64,
    microBatch: o.microBatch,
    globalBatch: o.globalBatch,
    maxSteps: o.maxSteps ?? null,
    seed: 3407,
    maxLr: 2e-3,
    minLr: 2e-4,
    saveEvery: 0,
    keep: 3,
    evalEvery: 0,
    evalBatches: 0,
    maxBadSteps: 5,
    logSeconds: 1e9,
    peakFlops: null,
    handleSignals: false,
    log: () => {},
  };
}

/** Joins `hostIds.length` in-process ranks (rank r on "node" hostIds[r]) over 127.0.0.1. */
export async function joinInProcess(
  backend: Backend,
  hostIds: string[],
  mode: ShardingMode,
  timeoutMs = 20_000,
): Promise<DistributedJob[]> {
  const port = await freeRendezvousPort();
  const W = hostIds.length;
  const perNode = hostIds.filter((h) => h === hostIds[0]).length;
  return Promise.all(
    hostIds.map((hostId, rank) => {
      const env: DistEnv = {
        rank,
        worldSize: W,
        localRank: rank % perNode,
        localWorldSize: perNode,
        masterAddr: "127.0.0.1",
        masterPort: port,
        hostId,
        source: "torchrun",
      };
      return joinDistributed(backend, env, mode, { timeoutMs, connectTimeoutMs: 10_000 });
    }),
  );
}
