// The buckets merge with a bounded number of open files, and the typed-array cluster stage,
// against brute-force references on random data.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { clusterPairs, REMOVE_EXACT, REMOVE_NEAR } from "./cluster.js";
import { writeSortedKeys } from "./files.js";
import { mergeBand } from "./merge.js";
import { mulberry32 } from "./minhash.js";

/** Uniform [0, 1) from the MinHash parameters' mulberry32. */
function rng(seed: number): () => number {
  const next = mulberry32(seed);
  return () => next() / 2 ** 32;
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "merge-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes `tasks` signature files with keys from a small space, so buckets abound. */
async function randomBand(tasks: number, seed: number) {
  const r = rng(seed);
  const files: { task: number; path: string }[] = [];
  const all: [number, number, number, number][] = []; // hi, lo, task, doc
  for (let t = 0; t < tasks; t++) {
    const docs = Math.floor(r() * 40); // some tasks have no document at all
    const triples: number[] = [];
    for (let d = 0; d < docs; d++) {
      // hi spans the whole uint32 range, so ordering must not rely on signed compares
      const hi = r() < 0.5 ? 0xfffffff0 + Math.floor(r() * 4) : Math.floor(r() * 4);
      const lo = Math.floor(r() * 8);
      triples.push(hi, lo, d);
      all.push([hi, lo, t, d]);
    }
    const path = join(dir, `t${t}.bin`);
    await writeSortedKeys(path, Uint32Array.from(triples));
    files.push({ task: t, path });
  }
  return { files, all };
}

/** Pairs by brute force: sort every record, pair each bucket's members with its first. */
function referencePairs(all: [number, number, number, number][]): number[] {
  const s = [...all].sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2] || a[3] - b[3]);
  const out: number[] = [];
  for (let i = 0; i < s.length; ) {
    let j = i + 1;
    const head = s[i] as number[];
    while (j < s.length && s[j]?.[0] === head[0] && s[j]?.[1] === head[1]) {
      out.push(head[2] as number, head[3] as number, s[j]?.[2] as number, s[j]?.[3] as number);
      j++;
    }
    i = j;
  }
  return out;
}

const u32 = (path: string) => [...new Uint32Array(new Uint8Array(readFileSync(path)).buffer)];

describe("mergeBand", () => {
  it("gives the brute-force pairs, byte-identical whatever the number of files open at once", async () => {
    const { files, all } = await randomBand(53, 7);
    const expected = referencePairs(all);
    expect(expected.length).toBeGreaterThan(400); // the data does exercise buckets
    for (const maxOpenFiles of [1000, 53, 52, 7, 3, 2]) {
      const out = join(dir, `pairs-${maxOpenFiles}.bin`);
      const n = await mergeBand(files, out, { maxOpenFiles });
      expect(n, `maxOpenFiles ${maxOpenFiles}`).toBe(expected.length / 4);
      expect(u32(out), `maxOpenFiles ${maxOpenFiles}`).toEqual(expected);
      // the intermediate runs are gone, and so is every temporary file
      expect(readdirSync(dir).filter((f) => f.startsWith(`pairs-${maxOpenFiles}.bin.`))).toEqual(
        [],
      );
    }
  });

  it("a rerun after a kill mid-merge ignores the runs and temporary file left behind", async () => {
    const { files, all } = await randomBand(20, 5);
    const out = join(dir, "pairs.bin");
    // what a kill -9 during level 0 leaves: a half-written run and a temporary output
    await mkdir(`${out}.runs`, { recursive: true });
    await writeFile(join(`${out}.runs`, "level-0-run-0.bin"), new Uint8Array(40).fill(0xff));
    await writeFile(`${out}.tmp-999999`, "partial");
    expect(await mergeBand(files, out, { maxOpenFiles: 3 })).toBe(referencePairs(all).length / 4);
    expect(u32(out)).toEqual(referencePairs(all));
    expect(existsSync(`${out}.runs`)).toBe(false);
  });

  it("rejects a fan-in under 2 and names a truncated signature file", async () => {
    const { files } = await randomBand(3, 1);
    await expect(mergeBand(files, join(dir, "p"), { maxOpenFiles: 1 })).rejects.toThrow(
      /maxOpenFiles must be an integer >= 2/,
    );
    const bad = join(dir, "bad.bin");
    await writeFile(bad, new Uint8Array(14)); // not a whole number of 12-byte records
    await expect(mergeBand([...files, { task: 3, path: bad }], join(dir, "p"))).rejects.toThrow(
      /bad\.bin: truncated record file/,
    );
    expect(existsSync(join(dir, "p"))).toBe(false);
  });

  it("merges more tasks than the process may open files (ulimit -n 64)", async () => {
    const merge = fileURLToPath(new URL("../../dist/dedup/merge.js", import.meta.url));
    if (!existsSync(merge)) throw new Error(`${merge} missing: run pnpm build first`);
    const { files, all } = await randomBand(150, 3);
    await writeFile(join(dir, "files.json"), JSON.stringify(files));
    const run = (maxOpenFiles: number) =>
      spawnSync(
        "bash",
        [
          "-c",
          `ulimit -n 64 && exec "${process.execPath}" --input-type=module -e '
            import { readFileSync } from "node:fs";
            const { mergeBand } = await import(process.argv[1]);
            const files = JSON.parse(readFileSync(process.argv[2] + "/files.json", "utf8"));
            console.log(await mergeBand(files, process.argv[2] + "/out.bin", { maxOpenFiles: Number(process.argv[3]) }));
          ' "${merge}" "${dir}" ${maxOpenFiles}`,
        ],
        { encoding: "utf8" },
      );
    // all 150 at once: the process runs out of descriptors (the test can fail)
    const all150 = run(150);
    expect(all150.status).not.toBe(0);
    expect(all150.stderr).toMatch(/EMFILE/);
    const bounded = run(32);
    expect(bounded.stderr).toBe("");
    expect(Number(bounded.stdout.trim())).toBe(referencePairs(all).length / 4);
  });
});

/** Union-find by brute force: components by repeated relabelling, min (task, doc) survives. */
function referenceCluster(pairs: { rec: number[]; exact: boolean }[]): Map<number, number[]> {
  const key = (t: number, d: number) => t * 2 ** 32 + d;
  const label = new Map<number, number>();
  const exact = new Set<number>();
  for (const { rec, exact: ex } of pairs) {
    const a = key(rec[0] as number, rec[1] as number);
    const b = key(rec[2] as number, rec[3] as number);
    if (!label.has(a)) label.set(a, a);
    if (!label.has(b)) label.set(b, b);
    if (ex) exact.add(b);
  }
  for (let changed = true; changed; ) {
    changed = false;
    for (const { rec } of pairs) {
      const a = key(rec[0] as number, rec[1] as number);
      const b = key(rec[2] as number, rec[3] as number);
      const m = Math.min(label.get(a) as number, label.get(b) as number);
      for (const x of [a, b])
        if ((label.get(x) as number) > m) {
          label.set(x, m);
          changed = true;
        }
    }
  }
  const out = new Map<number, number[]>();
  for (const x of [...label.keys()].sort((p, q) => p - q)) {
    if (label.get(x) === x) continue;
    const task = Math.floor(x / 2 ** 32);
    const list = out.get(task) ?? [];
    list.push(x % 2 ** 32, exact.has(x) ? REMOVE_EXACT : REMOVE_NEAR);
    out.set(task, list);
  }
  return out;
}

describe("clusterPairs", () => {
  it("matches brute-force components on random pairs, across its tables' growth", async () => {
    const r = rng(11);
    const pairs: { rec: number[]; exact: boolean }[] = [];
    const files: { path: string; exact: boolean }[] = [];
    for (let f = 0; f < 4; f++) {
      const recs: number[] = [];
      const exact = f === 3;
      // 30,000 pairs over ~60,000 documents: the tables grow from 32K ids several times; task
      // ids up to 2^20 and docs up to 2^32 - 1 exercise the key arithmetic
      for (let i = 0; i < 7500; i++) {
        const doc = () => (r() < 0.01 ? 0xffffffff - Math.floor(r() * 3) : Math.floor(r() * 20000));
        const task = () => (r() < 0.01 ? 2 ** 20 : Math.floor(r() * 3));
        const rec = [task(), doc(), task(), doc()];
        recs.push(...rec);
        pairs.push({ rec, exact });
      }
      const path = join(dir, `band-${f}.bin`);
      await writeFile(path, new Uint8Array(Uint32Array.from(recs).buffer));
      files.push({ path, exact });
    }
    const got = clusterPairs(files);
    const expected = referenceCluster(pairs);
    expect([...got.keys()].sort((a, b) => a - b)).toEqual(
      [...expected.keys()].sort((a, b) => a - b),
    );
    for (const [task, list] of expected)
      expect([...(got.get(task) ?? [])], `task ${task}`).toEqual(list);
  });

  it("rejects a task index beyond its sort keys' range", async () => {
    const path = join(dir, "band.bin");
    await writeFile(path, new Uint8Array(Uint32Array.from([0, 1, 2 ** 21, 2]).buffer));
    expect(() => clusterPairs([{ path, exact: false }])).toThrow(/task index 2097152 is over/);
  });
});
