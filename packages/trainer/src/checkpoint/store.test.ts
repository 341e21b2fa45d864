import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { checkpointName, commitCheckpoint, latestCheckpoint, listCheckpoints } from "./store.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "ckpt-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const writeState = (d: string) => writeFileSync(join(d, "trainer-state.json"), "{}");

describe("checkpoint store", () => {
  it("names sort correctly as strings past a million steps (the reference's iter-%06d did not)", () => {
    const steps = [999_999, 1_000_000, 5, 12_345_678];
    const names = steps.map(checkpointName);
    expect([...names].sort()).toEqual([5, 999_999, 1_000_000, 12_345_678].map(checkpointName));
    expect(checkpointName(1500)).toBe("step-000000001500");
    expect(() => checkpointName(-1)).toThrow(/integer/);
  });

  it("keeps the last N, newest last, and ignores incomplete or foreign directories", () => {
    for (const s of [10, 20, 30, 40]) commitCheckpoint(dir, s, 2, writeState);
    expect(listCheckpoints(dir).map((c) => c.step)).toEqual([30, 40]);
    expect(latestCheckpoint(dir)?.path).toBe(join(dir, "checkpoints", "step-000000000040"));
    mkdirSync(join(dir, "checkpoints", "step-000000000050")); // no trainer-state.json: incomplete
    mkdirSync(join(dir, "checkpoints", "notes"));
    expect(latestCheckpoint(dir)?.step).toBe(40);
  });

  it("a failing writer leaves no checkpoint and no temporary directory behind", () => {
    commitCheckpoint(dir, 1, 3, writeState);
    expect(() =>
      commitCheckpoint(dir, 2, 3, (d) => {
        writeFileSync(join(d, "model.safetensors"), "partial");
        throw new Error("disk full");
      }),
    ).toThrow(/disk full/);
    expect(listCheckpoints(dir).map((c) => c.step)).toEqual([1]);
    expect(readdirSync(join(dir, "checkpoints"))).toEqual(["step-000000000001"]);
  });

  it("removes temporary directories left by a crashed writer", () => {
    const stale = join(dir, "checkpoints", ".tmp-step-000000000007-999999");
    mkdirSync(stale, { recursive: true });
    commitCheckpoint(dir, 8, 3, writeState);
    expect(existsSync(stale)).toBe(false);
  });
});
