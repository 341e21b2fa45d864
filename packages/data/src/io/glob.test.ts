// Input listing over links: a Hugging Face hub cache snapshot is all symbolic links into blobs/,
// and a local copy may link files or folders elsewhere. Links count as what they point to;
// whatever cannot be read as a file or walked as a folder is left out and reported.
import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveConfig } from "../pipeline/config.js";
import { makePlan } from "../pipeline/plan.js";
import { globToRegExp, listInputFiles } from "./glob.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "glob-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const doc = (i: number) => `${JSON.stringify({ text: `document ${i} ${"words ".repeat(10)}` })}\n`;

describe("listInputFiles", () => {
  it("lists plain files and folders as before, sorted", async () => {
    const root = join(dir, "plain");
    await mkdir(join(root, "b", "c"), { recursive: true });
    await writeFile(join(root, "a.jsonl"), "");
    await writeFile(join(root, "b", "c", "d.jsonl"), "");
    await writeFile(join(root, "b", "x.jsonl"), "");
    expect(await listInputFiles(root)).toEqual({
      files: ["a.jsonl", "b/c/d.jsonl", "b/x.jsonl"],
      skipped: [],
    });
  });

  it("follows links to files and folders; loops and broken links are skipped and reported", async () => {
    const root = join(dir, "links");
    const elsewhere = join(dir, "elsewhere");
    await mkdir(join(elsewhere, "sub"), { recursive: true });
    await writeFile(join(elsewhere, "sub", "deep.jsonl"), "");
    await writeFile(join(elsewhere, "top.jsonl"), "");
    await mkdir(join(root, "real"), { recursive: true });
    await writeFile(join(root, "real", "own.jsonl"), "");
    await symlink(join(elsewhere, "top.jsonl"), join(root, "real", "file-link.jsonl"));
    await symlink(elsewhere, join(root, "dir-link"));
    await symlink(root, join(root, "real", "loop")); // points back to the root
    await symlink("..", join(root, "real", "up")); // relative loop
    await symlink(join(dir, "nowhere.jsonl"), join(root, "real", "broken.jsonl"));
    await symlink(join(root, "real"), join(root, "again")); // a folder already listed
    const got = await listInputFiles(root);
    expect(got.files).toEqual([
      "dir-link/sub/deep.jsonl",
      "dir-link/top.jsonl",
      "real/file-link.jsonl",
      "real/own.jsonl",
    ]);
    expect(got.skipped).toEqual([
      { path: "again", reason: "same folder as real, already listed" },
      { path: "real/broken.jsonl", reason: "broken symbolic link (ENOENT)" },
      { path: "real/loop", reason: "symbolic link loop (points to an enclosing folder)" },
      { path: "real/up", reason: "symbolic link loop (points to an enclosing folder)" },
    ]);
  });

  it("reports a fifo instead of hanging on it or dropping it silently", async () => {
    const root = join(dir, "fifo");
    await mkdir(root, { recursive: true });
    await writeFile(join(root, "ok.jsonl"), "");
    const made = spawnSync("mkfifo", [join(root, "pipe.jsonl")]);
    if (made.status !== 0) return; // no mkfifo on this system: nothing to test
    await symlink(join(root, "pipe.jsonl"), join(root, "link-to-pipe.jsonl"));
    expect(await listInputFiles(root)).toEqual({
      files: ["ok.jsonl"],
      skipped: [
        { path: "link-to-pipe.jsonl", reason: "symbolic link to a fifo" },
        { path: "pipe.jsonl", reason: "a fifo" },
      ],
    });
  });

  it("a source laid out like a hub cache snapshot (every file a link into blobs/) is planned", async () => {
    // huggingface-cli download: snapshots/<commit>/data/<file> -> ../../../blobs/<hash>
    const repo = join(dir, "hf-cache", "datasets--Skywork--SkyPile-150B");
    const snapshot = join(repo, "snapshots", "abc123");
    await mkdir(join(repo, "blobs"), { recursive: true });
    await mkdir(join(snapshot, "data"), { recursive: true });
    for (const [i, name] of [
      "2023-14_zh_head_0000.jsonl",
      "2023-14_zh_head_0001.jsonl",
    ].entries()) {
      await writeFile(join(repo, "blobs", `blob${i}`), doc(i));
      await symlink(join("..", "..", "..", "blobs", `blob${i}`), join(snapshot, "data", name));
    }
    await symlink(
      join(repo, "blobs", "missing"),
      join(snapshot, "data", "2023-14_zh_head_0002.jsonl"),
    );
    const config = resolveConfig(
      {
        output: join(dir, "out"),
        tokenizer: "bytes",
        sources: [{ name: "skypile", local: snapshot }],
      },
      dir,
    );
    const plan = await makePlan(config);
    // the links' targets: their sizes and modification times (the plan's check of its inputs)
    expect(plan.tasks.flatMap((t) => t.files)).toEqual([
      { path: "data/2023-14_zh_head_0000.jsonl", size: doc(0).length, mtimeMs: expect.any(Number) },
      { path: "data/2023-14_zh_head_0001.jsonl", size: doc(1).length, mtimeMs: expect.any(Number) },
    ]);
    expect(plan.sources[0]?.skipped).toEqual([
      { path: "data/2023-14_zh_head_0002.jsonl", reason: "broken symbolic link (ENOENT)" },
    ]);
  });

  it("no matching file names the entries it left out instead of a bare 'no input files match'", async () => {
    const root = join(dir, "only-broken");
    await mkdir(join(root, "data"), { recursive: true });
    await symlink(join(dir, "gone"), join(root, "data", "2023-14_zh_head_0000.jsonl"));
    const config = resolveConfig(
      { output: join(dir, "out2"), sources: [{ name: "skypile", local: root }] },
      dir,
    );
    await expect(makePlan(config)).rejects.toThrow(
      /source skypile: no input files match .* \(1 entries left out: data\/2023-14_zh_head_0000\.jsonl \(broken symbolic link \(ENOENT\)\)\)/,
    );
  });
});

describe("globToRegExp", () => {
  it("matches ** across folders and * within one", () => {
    expect(globToRegExp("train/**/*.jsonl.zst").test("train/chunk1/a.jsonl.zst")).toBe(true);
    expect(globToRegExp("data/*.jsonl").test("data/x/a.jsonl")).toBe(false);
  });
});
