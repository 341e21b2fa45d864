/**
 * The settings check at the rendezvous (agree.ts), with in-process ranks: ranks started with
 * other settings, or an --out that some rank does not see, stop on every rank with one message
 * naming the flag, rank 0's value and the first rank that differs; equal settings pass.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freeRendezvousPort } from "@tinyllama/kernels/collectives";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Backend, loadKernels } from "../model/kernels.js";
import type { Setting } from "./agree.js";
import type { DistEnv } from "./env.js";
import { joinDistributed } from "./world.js";

let backend: Backend;
let root: string;
beforeAll(async () => {
  backend = await loadKernels("cpu");
  root = mkdtempSync(join(tmpdir(), "trainer-agree-"));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Joins 3 ranks (nodes a, a, b), rank r with settings(r) and sharedDir(r). */
async function join3(
  settings: (r: number) => Setting[],
  sharedDir: (r: number) => string,
  mode: "full" | "hybrid" = "full",
): Promise<PromiseSettledResult<unknown>[]> {
  const port = await freeRendezvousPort();
  const hosts = ["a", "a", "b", "b"];
  const results = await Promise.allSettled(
    hosts.map((hostId, rank) => {
      const env: DistEnv = {
        rank,
        worldSize: hosts.length,
        localRank: rank % 2,
        localWorldSize: 2,
        masterAddr: "127.0.0.1",
        masterPort: port,
        hostId,
        source: "torchrun",
      };
      return joinDistributed(backend, env, mode, {
        timeoutMs: 10_000,
        connectTimeoutMs: 10_000,
        settings: settings(rank),
        sharedDir: sharedDir(rank),
      });
    }),
  );
  for (const r of results) if (r.status === "fulfilled") (r.value as { close(): void }).close();
  return results;
}

const base = (seed: string, data = "slimpajama 4a4713b56631"): Setting[] => [
  { flag: "--seed", value: seed },
  { flag: "--data", value: data, shown: `/data (manifests: ${data})` },
  { flag: "--sharding", value: "hybrid" },
];

describe("settings agreed at the rendezvous", () => {
  it("equal settings and a shared --out pass (hybrid groups are built), leaving no marker file", async () => {
    const out = join(root, "shared");
    const results = await join3(
      () => base("3407"),
      () => out,
      "hybrid",
    );
    expect(results.map((r) => r.status)).toEqual([
      "fulfilled",
      "fulfilled",
      "fulfilled",
      "fulfilled",
    ]);
    expect(readdirSync(out)).toEqual([]);
  }, 30_000);

  it("a rank with another --seed and other shards: every rank stops naming both values", async () => {
    const out = join(root, "mismatch");
    const results = await join3(
      (r) => (r >= 2 ? base("1", "slimpajama 0123456789ab") : base("3407")),
      () => out,
      "hybrid",
    );
    for (const r of results) {
      expect(r.status).toBe("rejected");
      const e = (r as PromiseRejectedResult).reason as Error;
      expect(e.name).toBe("SettingsMismatchError");
      expect(e.message).toMatch(
        /different settings .*--seed: rank 0 \(a\) has 3407, rank 2 \(b\) has 1; --data: rank 0 \(a\) has \/data \(manifests: slimpajama 4a4713b56631\), rank 2 \(b\) has \/data \(manifests: slimpajama 0123456789ab\)$/,
      );
      expect(e.message).not.toMatch(/--sharding/);
    }
  }, 30_000);

  it("an --out that another node does not see (same path, other filesystem): every rank stops naming it", async () => {
    // Node b's "same path" is another directory, as a node-local disk would be.
    const shared = join(root, "node-a");
    const local = join(root, "node-b");
    mkdirSync(local, { recursive: true });
    const results = await join3(
      () => base("3407"),
      (r) => (r >= 2 ? local : shared),
    );
    for (const r of results) {
      expect(r.status).toBe("rejected");
      expect(((r as PromiseRejectedResult).reason as Error).message).toMatch(
        /^--out .*node-[ab] is not shared between the nodes: rank 2 \(b\) does not see the file rank 0 \(a\) wrote there/,
      );
    }
    expect(existsSync(shared) && readdirSync(shared)).toEqual([]);
  }, 30_000);
});
