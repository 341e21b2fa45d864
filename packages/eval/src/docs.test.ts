// Task data from local files, a local hub mirror and the hub (a stand-in HTTP server on
// 127.0.0.1 answering the endpoints @huggingface/hub calls; the real hub is never contacted).
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parquetWriteBuffer } from "hyparquet-writer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hubLayoutFiles, loadTaskDocs, readTaskRecords } from "./docs.js";
import { TASKS } from "./tasks/index.js";

const boolqRows = [
  { question: "is water wet", passage: "Water -- Water is a liquid.", idx: 0, label: 1 },
  { question: "is fire cold", passage: "Fire -- Fire is hot.", idx: 1, label: 0 },
];

function boolqParquet(): Buffer {
  const buf = parquetWriteBuffer({
    columnData: [
      { name: "question", data: boolqRows.map((r) => r.question), type: "STRING" },
      { name: "passage", data: boolqRows.map((r) => r.passage), type: "STRING" },
      { name: "idx", data: boolqRows.map((r) => r.idx), type: "INT32" },
      // int64 as on the hub: hyparquet returns bigint, which the task must accept.
      { name: "label", data: boolqRows.map((r) => BigInt(r.label)), type: "INT64" },
    ],
  });
  return Buffer.from(buf);
}

let root: string;
let server: Server;
let base: string;
const requests: string[] = [];
const hubFiles: Record<string, Buffer> = {};

function handler(req: IncomingMessage, res: ServerResponse) {
  const url = new URL(req.url ?? "/", base);
  requests.push(`${req.method} ${decodeURIComponent(url.pathname)}`);
  const tree = /^\/api\/datasets\/aps\/super_glue\/tree\/(.+)$/.exec(url.pathname);
  if (tree) {
    if (decodeURIComponent(tree[1]!) !== "refs/convert/parquet") {
      res.writeHead(404, { "x-error-code": "RevisionNotFound" }).end("no such revision");
      return;
    }
    const entries = Object.entries(hubFiles).map(([path, b]) => ({
      type: "file",
      path,
      size: b.length,
      oid: "x",
    }));
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(entries));
    return;
  }
  const file = /^\/datasets\/aps\/super_glue\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
  const body = file ? hubFiles[decodeURIComponent(file[2]!)] : undefined;
  if (!body) {
    res.writeHead(404, { "x-error-code": "EntryNotFound" }).end("Entry not found");
    return;
  }
  const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "");
  const start = m ? Number(m[1]) : 0;
  const end = m ? Math.min(Number(m[2]), body.length - 1) : body.length - 1;
  res.writeHead(m ? 206 : 200, {
    "content-length": String(end - start + 1),
    "content-range": `bytes ${start}-${end}/${body.length}`,
    etag: `"${createHash("sha1").update(body).digest("hex")}"`,
    "accept-ranges": "bytes",
  });
  res.end(body.subarray(start, end + 1));
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "eval-docs-"));
  hubFiles["boolq/validation/0000.parquet"] = boolqParquet();
  hubFiles["boolq/train/0000.parquet"] = Buffer.from("not used");
  hubFiles["cb/validation/0000.parquet"] = Buffer.from("not used");
  server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(root, { recursive: true, force: true });
});

describe("task data", () => {
  it("downloads the split's parquet from refs/convert/parquet and reads it (int64 labels too)", async () => {
    const cacheDir = join(root, "cache");
    const loaded = await loadTaskDocs(TASKS.boolq!, { hub: { hubUrl: base, cacheDir } });
    expect(loaded.files).toHaveLength(1);
    expect(loaded.files[0]).toContain(join("boolq", "validation", "0000.parquet"));
    const task = TASKS.boolq!;
    const built = loaded.docs.map((d) => task.build(task.parse(d)));
    expect(built.map((b) => b.gold)).toEqual([1, 0]);
    expect(built[0]!.requests[0]!.context).toBe(
      "Water -- Water is a liquid.\nQuestion: is water wet?\nAnswer:",
    );
    // Only the one split was fetched.
    expect(requests.some((r) => r.includes("/train/") && r.startsWith("GET /datasets"))).toBe(
      false,
    );
    // A second load is served from the cache (no new download of the body).
    const before = requests.filter((r) => r.startsWith("GET /datasets")).length;
    await loadTaskDocs(TASKS.boolq!, { hub: { hubUrl: base, cacheDir } });
    const after = requests.filter((r) => r.startsWith("GET /datasets")).length;
    expect(after - before).toBeLessThanOrEqual(1);
  });

  it("says which split is missing on the hub", async () => {
    await expect(
      loadTaskDocs(TASKS.piqa!, { hub: { hubUrl: base, cacheDir: join(root, "c2"), retries: 0 } }),
    ).rejects.toThrow(/baber\/piqa/);
  });

  it("finds a local mirror in the hub's parquet layout and in the per-task layouts", async () => {
    const mirror = join(root, "mirror");
    const split = join(mirror, "aps", "super_glue", "boolq", "validation");
    mkdirSync(split, { recursive: true });
    writeFileSync(join(split, "0000.parquet"), boolqParquet());
    const loaded = await loadTaskDocs(TASKS.boolq!, { dataDir: mirror });
    expect(loaded.docs).toHaveLength(2);
    writeFileSync(join(mirror, "piqa.jsonl"), '{"goal":"g","sol1":"a","sol2":"b","label":1}\n');
    expect(hubLayoutFiles(mirror, TASKS.piqa!)).toEqual([join(mirror, "piqa.jsonl")]);
    expect(() => hubLayoutFiles(mirror, TASKS.hellaswag!)).toThrow(
      /hellaswag: no data under .*Rowan\/hellaswag\/default\/validation/,
    );
  });

  it("in a <dir>/<task>/ folder reads only the files of the task's split", () => {
    const mirror = join(root, "mirror-splits");
    const piqa = join(mirror, "piqa");
    mkdirSync(piqa, { recursive: true });
    for (const f of ["train.jsonl", "validation.jsonl", "test-00000-of-00001.parquet"]) {
      writeFileSync(join(piqa, f), "");
    }
    expect(hubLayoutFiles(mirror, TASKS.piqa!)).toEqual([join(piqa, "validation.jsonl")]);
    // files that name no split are all the split's
    const arc = join(mirror, "arc_easy");
    mkdirSync(arc, { recursive: true });
    writeFileSync(join(arc, "part-0.jsonl"), "");
    writeFileSync(join(arc, "part-1.jsonl"), "");
    expect(hubLayoutFiles(mirror, TASKS.arc_easy!)).toHaveLength(2);
    // only other splits: refused rather than scoring the train set
    const boolq = join(mirror, "boolq");
    mkdirSync(boolq, { recursive: true });
    writeFileSync(join(boolq, "train.jsonl"), "");
    expect(() => hubLayoutFiles(mirror, TASKS.boolq!)).toThrow(
      /boolq: .*boolq has train\.jsonl but no file named for the validation split/,
    );
  });

  it("reads the split from what huggingface-cli download leaves of the main branch", async () => {
    const piqaRow = (goal: string) => ({ goal, sol1: "a", sol2: "b", label: 1 });
    const parquet = (goal: string) =>
      Buffer.from(
        parquetWriteBuffer({
          columnData: [
            { name: "goal", data: [goal], type: "STRING" },
            { name: "sol1", data: ["a"], type: "STRING" },
            { name: "sol2", data: ["b"], type: "STRING" },
            { name: "label", data: [1], type: "INT32" },
          ],
        }),
      );
    // default config: <repo>/data/<split>-00000-of-00001.parquet, under <owner>/<repo> or <task>
    for (const repoDir of [join("baber", "piqa"), "piqa"]) {
      const mirror = join(root, `main-branch-${repoDir.replace(/\W/g, "-")}`);
      const data = join(mirror, repoDir, "data");
      mkdirSync(data, { recursive: true });
      writeFileSync(join(data, "train-00000-of-00001.parquet"), parquet("train"));
      writeFileSync(join(data, "validation-00000-of-00001.parquet"), parquet("validation"));
      writeFileSync(join(data, "test-00000-of-00001.parquet"), parquet("test"));
      const loaded = await loadTaskDocs(TASKS.piqa!, { dataDir: mirror });
      expect(loaded.files).toEqual([join(data, "validation-00000-of-00001.parquet")]);
      expect(loaded.docs).toEqual([piqaRow("validation")]);
    }
    // a named config: <repo>/<config>/<split>-00000-of-00001.parquet
    const mirror = join(root, "main-branch-config");
    const config = join(mirror, "allenai", "ai2_arc", "ARC-Easy");
    mkdirSync(config, { recursive: true });
    for (const s of ["train", "validation", "test"])
      writeFileSync(join(config, `${s}-00000-of-00001.parquet`), "");
    expect(hubLayoutFiles(mirror, TASKS.arc_easy!)).toEqual([
      join(config, "test-00000-of-00001.parquet"),
    ]);
    // what was looked for is named when nothing is found
    expect(() => hubLayoutFiles(mirror, TASKS.arc_challenge!)).toThrow(
      /ARC-Challenge\/test\/\*\.parquet, .*ARC-Challenge\/test-\*\.parquet, .*arc_challenge\.jsonl/,
    );
  });

  it("reads a .json file in JSON Lines, as datasets' to_json writes it", async () => {
    const dir = join(root, "to-json", "piqa");
    mkdirSync(dir, { recursive: true });
    const rows = [
      { goal: "g1", sol1: "a", sol2: "b", label: 0 },
      { goal: "g2", sol1: "a", sol2: "b", label: 1 },
    ];
    writeFileSync(join(dir, "validation.json"), rows.map((r) => JSON.stringify(r)).join("\n"));
    writeFileSync(join(dir, "train.json"), JSON.stringify(rows[0]));
    const loaded = await loadTaskDocs(TASKS.piqa!, { dataDir: join(root, "to-json") });
    expect(loaded.files).toEqual([join(dir, "validation.json")]);
    expect(loaded.docs).toEqual(rows);
    // a JSON array still reads as one
    writeFileSync(join(dir, "validation.json"), JSON.stringify(rows));
    expect(await readTaskRecords(join(dir, "validation.json"))).toEqual(rows);
  });

  it("names a datasets save_to_disk copy instead of reading its metadata as records", async () => {
    const mirror = join(root, "save-to-disk");
    const dataset = join(mirror, "piqa");
    mkdirSync(dataset, { recursive: true });
    writeFileSync(join(dataset, "data-00000-of-00001.arrow"), "");
    writeFileSync(join(dataset, "dataset_info.json"), "{}");
    writeFileSync(join(dataset, "state.json"), "{}");
    await expect(loadTaskDocs(TASKS.piqa!, { dataDir: mirror })).rejects.toThrow(
      /piqa: .*piqa holds a datasets save_to_disk copy \(Arrow files\).*to_parquet/,
    );
    const dict = join(mirror, "boolq");
    mkdirSync(join(dict, "validation"), { recursive: true });
    writeFileSync(join(dict, "dataset_dict.json"), '{"splits": ["train", "validation"]}');
    writeFileSync(join(dict, "validation", "data-00000-of-00001.arrow"), "");
    expect(() => hubLayoutFiles(mirror, TASKS.boolq!)).toThrow(/save_to_disk/);
  });

  it("fails on a corrupt record with the file and line instead of skipping it", async () => {
    const bad = join(root, "bad.jsonl");
    writeFileSync(bad, '{"goal":"g","sol1":"a","sol2":"b","label":1}\n{"goal": oops\n');
    const err = readTaskRecords(bad);
    await expect(err).rejects.toThrow(/bad\.jsonl.*2/);
    // worded for the command that read it: neither eval command has @tinyllama/data's --strict
    await expect(err).rejects.toThrow(/\(pnpm eval reads benchmark data strictly and has no flag/);
    await expect(err).rejects.not.toThrow(/--strict/);
    await expect(readTaskRecords(bad, "pnpm eval:problem-solving")).rejects.toThrow(
      /\(pnpm eval:problem-solving reads benchmark data strictly/,
    );
    const corrupt = join(root, "corrupt.parquet");
    writeFileSync(corrupt, Buffer.from("PAR1 this is not parquet PAR1"));
    await expect(readTaskRecords(corrupt)).rejects.toThrow(/corrupt\.parquet/);
    await expect(readTaskRecords(join(root, "nope.jsonl"))).rejects.toThrow(/task data not found/);
  });
});
