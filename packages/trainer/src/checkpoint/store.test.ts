import { spawn, spawnSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pidAlive } from "@tinyllama/data";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  CheckpointSpaceError,
  checkpointName,
  checkpointTestHooks,
  commitCheckpoint,
  latestCheckpoint,
  listCheckpoints,
  recoverCheckpoints,
} from "./store.js";

/** The pid of a process that has exited (and was reaped). */
const deadPid = () => spawnSync(process.execPath, ["-e", ""]).pid!;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "ckpt-"));
});
afterEach(() => {
  checkpointTestHooks.afterWrite = undefined;
  checkpointTestHooks.betweenRenames = undefined;
  rmSync(dir, { recursive: true, force: true });
});

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

  it("removes temporary directories left by a crashed writer, not those of a live one", async () => {
    const stale = join(dir, "checkpoints", `.tmp-step-000000000007-${deadPid()}`);
    mkdirSync(stale, { recursive: true });
    const other = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)"]);
    try {
      const busy = join(dir, "checkpoints", `.tmp-step-000000000009-${other.pid}`);
      mkdirSync(busy);
      commitCheckpoint(dir, 8, 3, writeState);
      expect(existsSync(stale)).toBe(false);
      expect(existsSync(busy)).toBe(true); // another job writing right now
    } finally {
      other.kill("SIGKILL");
      await new Promise((r) => other.once("exit", r));
    }
    expect(pidAlive(other.pid!)).toBe(false);
  });

  const write = (text: string) => (d: string) => {
    writeFileSync(join(d, "model.safetensors"), text);
    writeState(d);
  };
  const model = (step: number) =>
    readFileSync(join(dir, "checkpoints", checkpointName(step), "model.safetensors"), "utf8");

  it("re-writing a step: a kill between the two renames loses neither checkpoint", () => {
    commitCheckpoint(dir, 4, 1, write("old"));
    // The kill: a copy of the checkpoints directory at that moment, as a dead process left it.
    const killed = mkdtempSync(join(tmpdir(), "ckpt-killed-"));
    const pid = deadPid();
    checkpointTestHooks.betweenRenames = () => {
      cpSync(join(dir, "checkpoints"), join(killed, "checkpoints"), { recursive: true });
      for (const name of readdirSync(join(killed, "checkpoints")))
        renameSync(
          join(killed, "checkpoints", name),
          join(killed, "checkpoints", name.replace(`-${process.pid}`, `-${pid}`)),
        );
    };
    commitCheckpoint(dir, 4, 1, write("new"));
    expect(model(4)).toBe("new");
    expect(readdirSync(join(dir, "checkpoints"))).toEqual(["step-000000000004"]);
    try {
      const left = readdirSync(join(killed, "checkpoints")).sort();
      expect(left).toEqual([`.replaced-step-000000000004-${pid}`, `.tmp-step-000000000004-${pid}`]);
      expect(latestCheckpoint(killed)).toBeNull(); // what the old code resumed from: nothing
      // The new directory was complete and fsynced: it goes in.
      const both = mkdtempSync(join(tmpdir(), "ckpt-both-"));
      cpSync(killed, both, { recursive: true });
      expect(recoverCheckpoints(both)).toEqual([
        expect.stringMatching(/completed an interrupted re-write of .*step-000000000004/),
      ]);
      expect(readdirSync(join(both, "checkpoints"))).toEqual(["step-000000000004"]);
      expect(
        readFileSync(join(both, "checkpoints/step-000000000004/model.safetensors"), "utf8"),
      ).toBe("new");
      rmSync(both, { recursive: true });
      // Without a complete new directory, the old one comes back.
      rmSync(join(killed, "checkpoints", `.tmp-step-000000000004-${pid}`, "trainer-state.json"));
      expect(recoverCheckpoints(killed)).toEqual([
        expect.stringMatching(/restored .*step-000000000004 from .*\.replaced-step-000000000004/),
        expect.stringMatching(
          /removed .*\.tmp-step-000000000004-\d+, a temporary checkpoint directory/,
        ),
      ]);
      expect(latestCheckpoint(killed)?.step).toBe(4);
      expect(
        readFileSync(join(killed, "checkpoints/step-000000000004/model.safetensors"), "utf8"),
      ).toBe("old");
    } finally {
      rmSync(killed, { recursive: true, force: true });
    }
  });

  it("re-writing a step: an error between the two renames puts the old one back", () => {
    commitCheckpoint(dir, 4, 3, write("old"));
    checkpointTestHooks.betweenRenames = () => {
      throw new Error("rename failed");
    };
    expect(() => commitCheckpoint(dir, 4, 3, write("new"))).toThrow(/rename failed/);
    expect(model(4)).toBe("old");
    expect(readdirSync(join(dir, "checkpoints"))).toEqual(["step-000000000004"]);
  });

  it("damaged checkpoints never count toward --keep", () => {
    for (const s of [10, 20]) commitCheckpoint(dir, s, 3, writeState);
    // Newer than anything written next, and damaged: the old prune kept them and deleted the new.
    for (const s of [50, 60, 70]) commitCheckpoint(dir, s, 5, write("bad"));
    const usable = (p: string) => !readdirSync(p).includes("model.safetensors");
    commitCheckpoint(dir, 30, 2, writeState, { usable });
    expect(listCheckpoints(dir).map((c) => c.step)).toEqual([20, 30, 50, 60, 70]);
  });

  it("a full disk: the message names the checkpoint, the room needed and --keep + 1; no temporary directory", () => {
    commitCheckpoint(dir, 2, 3, write("x".repeat(3 * 1024)));
    checkpointTestHooks.afterWrite = (tmp) => {
      writeFileSync(join(tmp, "optimizer.safetensors"), "partial");
      throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
    };
    let err: unknown;
    try {
      commitCheckpoint(dir, 4, 3, write("x".repeat(3 * 1024)), { approxBytes: 1 << 30 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CheckpointSpaceError);
    expect((err as Error).message).toMatch(
      /^no space left on the device while writing checkpoint step-000000000004 into .*checkpoints \(ENOSPC: no space left on device, write\); its temporary directory was removed and no checkpoint was lost\. One checkpoint of this run takes about 3\.\d KiB, and with --keep 3 there must be room for 4 of them at once \(about 12\.\d KiB\): older ones are deleted only after a new one is written; .* is free there now\. Free space .* then rerun the same command to resume from .*step-000000000002$/,
    );
    expect(readdirSync(join(dir, "checkpoints"))).toEqual(["step-000000000002"]);
  });
});
