// The real @huggingface/hub client against a small HTTP server on 127.0.0.1 that answers the
// endpoints it calls (tree listing with paging, resolve with Range), including 401 without a
// token, 404, transient 429/503 and connections dropped mid-body. The real hub is never contacted.
import { createHash, randomBytes } from "node:crypto";
import { link, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { BadRecordLog } from "../document.js";
import { readRecords } from "../io/records.js";
import {
  type DownloadOptions,
  downloadToCache,
  HubError,
  hubOptionsFromEnv,
  listHubFiles,
  resolveHubRevision,
} from "./hub.js";

const TOKEN = "hf_testtoken123";
const files: Record<string, Buffer> = {
  "train/chunk1/example_train_0.jsonl.zst": randomBytes(300_000),
  "train/chunk1/example_train_1.jsonl.zst": randomBytes(1000),
  "train/chunk2/example_train_0.jsonl.zst": randomBytes(5000),
  "validation/chunk1/example_holdout_0.jsonl.zst": randomBytes(10),
  "README.md": Buffer.from("# readme"),
};
/** The hub's commits of acme/corpus (`files` is the first) and the branches naming them. */
const sha = (s: string) => createHash("sha1").update(s).digest("hex");
const FIRST = sha("first commit");
const commits: Record<string, Record<string, Buffer>> = { [FIRST]: files };
const branches: Record<string, string> = {};
const commitOf = (rev: string) => branches[rev] ?? (commits[rev] ? rev : undefined);
const log: { method: string; url: string; range?: string; auth?: string }[] = [];
/** Scripted failures: each call pops one. */
let failures: ("503" | "429" | "drop" | "500" | "ok")[] = [];
let requireToken = false;
let server: Server;
let base: string;
let cache: string;

function handler(req: IncomingMessage, res: ServerResponse) {
  const url = new URL(req.url ?? "/", base);
  log.push({
    method: req.method ?? "",
    url: url.pathname + url.search,
    range: req.headers.range,
    auth: req.headers.authorization,
  });
  if (requireToken && req.headers.authorization !== `Bearer ${TOKEN}`) {
    res
      .writeHead(401, { "content-type": "application/json" })
      .end(JSON.stringify({ error: "Access to this dataset is restricted" }));
    return;
  }
  const revision = /^\/api\/datasets\/acme\/corpus\/revision\/([^/]+)$/.exec(url.pathname);
  if (revision) {
    // what the hub answers for /api/datasets/<repo>/revision/<rev>?expand=sha: the commit id
    const commit = commitOf(decodeURIComponent(revision[1] as string));
    if (!commit) {
      res
        .writeHead(404, { "content-type": "application/json", "x-error-code": "RevisionNotFound" })
        .end(JSON.stringify({ error: "Invalid rev id" }));
      return;
    }
    res
      .writeHead(200, { "content-type": "application/json" })
      .end(JSON.stringify({ _id: "0", id: "acme/corpus", private: false, sha: commit }));
    return;
  }
  const tree = /^\/api\/datasets\/acme\/corpus\/tree\/([^/]+)$/.exec(url.pathname);
  const treeFiles = tree && commits[commitOf(decodeURIComponent(tree[1] as string)) ?? ""];
  if (tree && treeFiles) {
    const page = Number(url.searchParams.get("cursor") ?? "0");
    const all = Object.entries(treeFiles).map(([path, b]) => ({
      type: "file",
      path,
      size: b.length,
      oid: "x",
    }));
    all.push({ type: "directory", path: "train", size: 0, oid: "y" });
    const slice = all.slice(page * 3, page * 3 + 3);
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (page * 3 + 3 < all.length)
      headers.link = `<${base}${url.pathname}?recursive=true&expand=false&cursor=${page + 1}>; rel="next"`;
    res.writeHead(200, headers).end(JSON.stringify(slice));
    return;
  }
  const resolve = /^\/datasets\/acme\/corpus\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
  if (resolve) {
    const at = commits[commitOf(decodeURIComponent(resolve[1] as string)) ?? ""] ?? {};
    const body = at[decodeURIComponent(resolve[2] as string)];
    if (!body) {
      res.writeHead(404, { "x-error-code": "EntryNotFound" }).end("Entry not found");
      return;
    }
    const f = failures.shift();
    if (f === "503" || f === "500" || f === "429") {
      res.writeHead(Number(f)).end("try later");
      return;
    }
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "");
    const start = m ? Number(m[1]) : 0;
    const end = m ? Math.min(Number(m[2]), body.length - 1) : body.length - 1;
    const etag = `"${createHash("sha1").update(body).digest("hex")}"`;
    res.writeHead(m ? 206 : 200, {
      "content-length": String(end - start + 1),
      "content-range": `bytes ${start}-${end}/${body.length}`,
      etag,
      "accept-ranges": "bytes",
    });
    if (f === "drop") {
      // send part of the body, then cut the connection
      res.write(body.subarray(start, start + Math.floor((end - start + 1) / 2)));
      setTimeout(() => res.socket?.destroy(), 5);
      return;
    }
    res.end(body.subarray(start, end + 1));
    return;
  }
  res.writeHead(404).end("no route");
}

beforeAll(async () => {
  server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
});
beforeEach(async () => {
  for (const c of Object.keys(commits)) if (c !== FIRST) delete commits[c];
  branches.main = FIRST;
  cache = await mkdtemp(join(tmpdir(), "hubcache-"));
  log.length = 0;
  failures = [];
  requireToken = false;
});
afterEach(async () => {
  await rm(cache, { recursive: true, force: true });
});

const opts = (o: Partial<DownloadOptions> = {}): DownloadOptions => ({
  hubUrl: base,
  cacheDir: cache,
  backoffMs: 1,
  rangeBytes: 64 * 1024,
  ...o,
});

describe("hub client against a local server", () => {
  it("lists files through every page, filtered by glob and sorted", async () => {
    const got = await listHubFiles("acme/corpus", ["train/**/*.jsonl.zst"], opts());
    expect(got.map((f) => f.path)).toEqual([
      "train/chunk1/example_train_0.jsonl.zst",
      "train/chunk1/example_train_1.jsonl.zst",
      "train/chunk2/example_train_0.jsonl.zst",
    ]);
    expect(got[0]?.size).toBe(300_000);
    expect(log.filter((l) => l.url.startsWith("/api/")).length).toBe(2); // two pages
  });

  it("downloads with range requests into the cache and reuses the cached copy", async () => {
    const path = "train/chunk1/example_train_0.jsonl.zst";
    const local = await downloadToCache("acme/corpus", path, opts());
    expect((await readFile(local)).equals(files[path] as Buffer)).toBe(true);
    const ranges = log.filter((l) => l.range && l.range !== "bytes=0-0").map((l) => l.range);
    expect(ranges[0]).toBe("bytes=0-65535");
    expect(ranges.length).toBe(5); // 300,000 bytes in 64 KiB ranges
    log.length = 0;
    expect(await downloadToCache("acme/corpus", path, opts())).toBe(local);
    expect(log.every((l) => l.range === "bytes=0-0")).toBe(true); // only the size/etag probe
  });

  it("retries 429/5xx and dropped connections, then completes", async () => {
    const path = "train/chunk1/example_train_0.jsonl.zst";
    // size/etag probe: 503, 429, then ok; range requests: dropped body, 500, dropped body
    failures = ["503", "429", "ok", "drop", "500", "drop"];
    const retries: string[] = [];
    const local = await downloadToCache(
      "acme/corpus",
      path,
      opts({ onRetry: (what) => retries.push(what) }),
    );
    expect((await readFile(local)).equals(files[path] as Buffer)).toBe(true);
    expect(retries.length).toBe(5);
  });

  it("gives up after the retry budget with an error that says how to resume", async () => {
    failures = Array(20).fill("503");
    await expect(
      downloadToCache(
        "acme/corpus",
        "train/chunk1/example_train_1.jsonl.zst",
        opts({ retries: 2 }),
      ),
    ).rejects.toThrow(/HTTP 503/);
  });

  it("resumes a partial download from its last byte", async () => {
    const path = "train/chunk1/example_train_0.jsonl.zst";
    const body = files[path] as Buffer;
    const local = join(cache, "acme/corpus/main", path);
    await mkdir(join(local, ".."), { recursive: true });
    await writeFile(`${local}.partial`, body.subarray(0, 200_000));
    await writeFile(`${local}.etag`, `"${createHash("sha1").update(body).digest("hex")}"`);
    await downloadToCache("acme/corpus", path, opts());
    expect((await readFile(local)).equals(body)).toBe(true);
    const ranges = log.filter((l) => l.range && l.range !== "bytes=0-0").map((l) => l.range);
    expect(ranges[0]).toBe("bytes=200000-265535");
  });

  it("sends HF_TOKEN as a bearer token; 401 without it says what to do", async () => {
    requireToken = true;
    await expect(listHubFiles("acme/corpus", ["**"], opts())).rejects.toThrow(
      /HTTP 401 \(no HF_TOKEN set, no token file\).*accept their terms/,
    );
    await expect(downloadToCache("acme/corpus", "README.md", opts())).rejects.toThrow(HubError);
    await expect(
      downloadToCache("acme/corpus", "README.md", opts({ accessToken: "hf_wrong" })),
    ).rejects.toThrow(/token in HF_TOKEN was refused/);
    const env = hubOptionsFromEnv({ HF_TOKEN: TOKEN, HF_ENDPOINT: `${base}/` });
    expect(env.hubUrl).toBe(base);
    const local = await downloadToCache("acme/corpus", "README.md", { ...opts(), ...env });
    expect(await readFile(local, "utf8")).toBe("# readme");
    expect(log.at(-1)?.auth).toBe(`Bearer ${TOKEN}`);
  });

  it("reports a missing file (404) and an unreachable hub", async () => {
    await expect(downloadToCache("acme/corpus", "nope.jsonl", opts())).rejects.toThrow(
      /nope\.jsonl: not found \(HTTP 404\)/,
    );
    await expect(
      listHubFiles("acme/corpus", ["**"], opts({ hubUrl: "http://127.0.0.1:1", retries: 1 })),
    ).rejects.toThrow(/acme\/corpus: listing files: fetch failed/);
  });

  it("prepare runs a hub source end to end through HF_ENDPOINT and the cache", async () => {
    const { resolveConfig } = await import("../pipeline/config.js");
    const { loadOrMakePlan } = await import("../pipeline/plan.js");
    const { runLocal } = await import("../executors/local.js");
    const { ProgressPrinter } = await import("../executors/progress.js");
    const { bytesTokenizer } = await import("../pipeline/tokenizer.js");
    const { ShardSet } = await import("../shards/shard-set.js");
    const lines = Array.from({ length: 40 }, (_, i) =>
      JSON.stringify({ text: `文档 ${i} ${"天地玄黄宇宙洪荒".repeat(10 + i)}` }),
    );
    files["data/2023-14_zh_head_0000.jsonl"] = Buffer.from(`${lines.slice(0, 20).join("\n")}\n`);
    files["data/2023-14_zh_head_0001.jsonl"] = Buffer.from(`${lines.slice(20).join("\n")}\n`);
    const saved = process.env.HF_ENDPOINT;
    process.env.HF_ENDPOINT = base;
    try {
      const config = resolveConfig(
        {
          output: join(cache, "out"),
          tokenizer: "bytes",
          blockSize: 16,
          chunkTokens: 64,
          validationFraction: 0,
          dedup: { enabled: false },
          sources: [{ name: "skypile", hub: { repo: "acme/corpus" } }],
          hub: { cacheDir: join(cache, "hub") },
        },
        cache,
      );
      const { plan } = await loadOrMakePlan(config);
      expect(plan.tasks.flatMap((t) => t.files.map((f) => f.path))).toEqual([
        "data/2023-14_zh_head_0000.jsonl",
        "data/2023-14_zh_head_0001.jsonl",
      ]);
      const quiet = new ProgressPrinter({
        write: () => true,
        isTTY: false,
      } as unknown as NodeJS.WriteStream);
      await runLocal(plan, { inProcess: true, tokenizer: bytesTokenizer(), printer: quiet });
      const set = await ShardSet.open(join(cache, "out", "skypile"));
      expect(set.manifest.stats.documentsRead).toBe(40);
      // every byte of the 40 documents (+ EOS) is in whole blocks, minus one partial block
      const textBytes = lines.reduce((a, l) => a + Buffer.byteLength(JSON.parse(l).text) + 1, 0);
      expect(set.numBlocks).toBe(Math.floor(textBytes / 16));
    } finally {
      if (saved === undefined) delete process.env.HF_ENDPOINT;
      else process.env.HF_ENDPOINT = saved;
    }
  });

  it("TINYLLAMA_CACHE is the download cache itself (nothing appended), as the README says", async () => {
    const env = hubOptionsFromEnv({ TINYLLAMA_CACHE: join(cache, "tc") });
    expect(env.cacheDir).toBe(join(cache, "tc"));
    const local = await downloadToCache("acme/corpus", "README.md", {
      ...opts(),
      cacheDir: undefined,
      ...env,
    });
    expect(local).toBe(join(cache, "tc", "acme/corpus", "main", "README.md"));
  });

  it("resolves a revision to the commit it names", async () => {
    expect(await resolveHubRevision("acme/corpus", "main", opts())).toBe(FIRST);
    expect(await resolveHubRevision("acme/corpus", FIRST, opts())).toBe(FIRST);
    await expect(resolveHubRevision("acme/corpus", "no-such-branch", opts())).rejects.toThrow(
      /acme\/corpus: resolving revision "no-such-branch": not found \(HTTP 404\)/,
    );
  });

  it("refuses a file whose size is not the planned one", async () => {
    const path = "train/chunk1/example_train_1.jsonl.zst";
    await expect(
      downloadToCache("acme/corpus", path, opts({ revision: FIRST, expectedSize: 999 })),
    ).rejects.toThrow(
      `acme/corpus: ${path} at revision ${FIRST}: the hub has 1000 bytes, the plan listed 999`,
    );
    const local = await downloadToCache(
      "acme/corpus",
      path,
      opts({ revision: FIRST, expectedSize: 1000 }),
    );
    expect(local).toBe(join(cache, "acme/corpus", FIRST, path));
  });

  it("adopts a copy an earlier version cached under the branch name instead of downloading it", async () => {
    const path = "train/chunk1/example_train_0.jsonl.zst";
    const root = join(cache, "adopt");
    // the layouts of earlier versions: <cache>/<repo>/main/..., and $TINYLLAMA_CACHE/hub/...
    const byBranch = await downloadToCache("acme/corpus", path, opts({ cacheDir: root }));
    expect(byBranch).toBe(join(root, "acme/corpus/main", path));
    const saved = process.env.TINYLLAMA_CACHE;
    try {
      for (const [cacheDir, env] of [
        [root, undefined],
        [join(cache, "tc-adopt"), join(cache, "tc-adopt")],
      ] as const) {
        if (env) {
          await mkdir(join(env, "hub", "acme/corpus/main", path, ".."), { recursive: true });
          await link(byBranch, join(env, "hub", "acme/corpus/main", path));
          await writeFile(
            join(env, "hub", "acme/corpus/main", `${path}.etag`),
            await readFile(`${byBranch}.etag`, "utf8"),
          );
          process.env.TINYLLAMA_CACHE = env;
        } else delete process.env.TINYLLAMA_CACHE;
        log.length = 0;
        const local = await downloadToCache(
          "acme/corpus",
          path,
          opts({ cacheDir, revision: FIRST, formerRevision: "main", expectedSize: 300_000 }),
        );
        expect(local).toBe(join(cacheDir, "acme/corpus", FIRST, path));
        expect((await readFile(local)).equals(files[path] as Buffer)).toBe(true);
        // only the size/etag probe: no byte of the body downloaded again
        expect(log.every((l) => l.range === "bytes=0-0")).toBe(true);
      }
    } finally {
      if (saved === undefined) delete process.env.TINYLLAMA_CACHE;
      else process.env.TINYLLAMA_CACHE = saved;
    }
    // a copy whose etag differs (the file changed upstream since) is not adopted
    const other = join(cache, "adopt-stale");
    await downloadToCache("acme/corpus", path, opts({ cacheDir: other }));
    await writeFile(join(other, "acme/corpus/main", `${path}.etag`), '"stale"');
    log.length = 0;
    await downloadToCache(
      "acme/corpus",
      path,
      opts({ cacheDir: other, revision: FIRST, formerRevision: "main" }),
    );
    expect(log.some((l) => l.range && l.range !== "bytes=0-0")).toBe(true);
  });

  it("a run resumed after the dataset changed upstream reads the commit it planned", async () => {
    const { loadConfigFile } = await import("../pipeline/config.js");
    const { loadOrMakePlan } = await import("../pipeline/plan.js");
    const { runLocal } = await import("../executors/local.js");
    const { ProgressPrinter } = await import("../executors/progress.js");
    const { bytesTokenizer } = await import("../pipeline/tokenizer.js");
    const { ShardSet } = await import("../shards/shard-set.js");
    const docs = (n: number, tag: string) =>
      Buffer.from(
        `${Array.from({ length: n }, (_, i) => JSON.stringify({ text: `${tag} ${i} ${"天地玄黄".repeat(5 + i)}` })).join("\n")}\n`,
      );
    const name = "data/2024-01_zh_middle_0000.jsonl"; // the only "middle" file
    files[name] = docs(10, "first");
    // a config file with a relative hub.cacheDir: it resolves against the file's folder
    const conf = join(cache, "conf");
    await mkdir(conf, { recursive: true });
    await writeFile(
      join(conf, "prepare.json"),
      JSON.stringify({
        output: "out",
        tokenizer: "bytes",
        blockSize: 16,
        chunkTokens: 64,
        validationFraction: 0,
        dedup: { enabled: false },
        sources: [{ name: "skypile", hub: { repo: "acme/corpus" }, subsets: ["middle"] }],
        hub: { cacheDir: "hf" },
      }),
    );
    const saved = process.env.HF_ENDPOINT;
    process.env.HF_ENDPOINT = base;
    try {
      const config = await loadConfigFile(join(conf, "prepare.json"));
      const { plan } = await loadOrMakePlan(config);
      expect(plan.sources).toEqual([
        {
          name: "skypile",
          hub: { repo: "acme/corpus", revision: "main", commit: FIRST },
          definition: expect.any(String),
        },
      ]);
      expect(plan.tasks[0]?.files).toEqual([{ path: name, size: files[name]?.length }]);
      // upstream moves on before any file is downloaded: other documents, another size
      const SECOND = sha("second commit");
      commits[SECOND] = { ...files, [name]: docs(25, "second") };
      branches.main = SECOND;
      const again = await loadOrMakePlan(config);
      expect(again.resumed).toBe(true);
      const quiet = new ProgressPrinter({
        write: () => true,
        isTTY: false,
      } as unknown as NodeJS.WriteStream);
      await runLocal(again.plan, { inProcess: true, tokenizer: bytesTokenizer(), printer: quiet });
      const set = await ShardSet.open(join(conf, "out", "skypile"));
      expect(set.manifest.stats.documentsRead).toBe(10); // the planned commit's file
      expect(log.some((l) => l.url.includes(`/resolve/${SECOND}/`))).toBe(false);
      expect(log.some((l) => l.url.includes("/resolve/main/"))).toBe(false);
      // downloaded into the config's relative cacheDir, under the commit
      expect(await readFile(join(conf, "hf", "acme/corpus", FIRST, name))).toEqual(files[name]);
      // the manifest names the commit: its config reruns the same inputs
      expect(set.manifest.run?.sources).toEqual([
        { name: "skypile", hub: { repo: "acme/corpus", revision: "main", commit: FIRST } },
      ]);
      const recorded = set.manifest.config as { sources: { hub: { revision: string } }[] };
      expect(recorded.sources[0]?.hub.revision).toBe(FIRST);
    } finally {
      if (saved === undefined) delete process.env.HF_ENDPOINT;
      else process.env.HF_ENDPOINT = saved;
      delete files[name];
    }
  });

  it("a plan written before commits were pinned is not resumed for a hub source", async () => {
    const { resolveConfig } = await import("../pipeline/config.js");
    const { loadOrMakePlan, planPath, StalePlanError } = await import("../pipeline/plan.js");
    const config = resolveConfig(
      {
        output: join(cache, "old"),
        tokenizer: "bytes",
        sources: [{ name: "skypile", hub: { repo: "acme/corpus" } }],
      },
      cache,
    );
    const { plan } = await loadOrMakePlan(config, opts());
    const { sources: _dropped, ...old } = plan;
    await writeFile(planPath(plan.workDir), JSON.stringify(old));
    await expect(loadOrMakePlan(config, opts())).rejects.toThrow(StalePlanError);
    await expect(loadOrMakePlan(config, opts())).rejects.toThrow(
      /was made before hub inputs were pinned to a commit/,
    );
  });

  it("HF_HUB_OFFLINE=1 reads the cache without contacting the hub and names a missing file", async () => {
    const path = "train/chunk1/example_train_1.jsonl.zst";
    const planned = { revision: FIRST, expectedSize: 1000 };
    const local = await downloadToCache("acme/corpus", path, opts(planned));
    // another file left half downloaded by a killed process
    const half = "train/chunk2/example_train_0.jsonl.zst";
    const halfLocal = join(cache, "acme/corpus", FIRST, half);
    await mkdir(join(halfLocal, ".."), { recursive: true });
    await writeFile(`${halfLocal}.partial`, (files[half] as Buffer).subarray(0, 2000));
    const env = hubOptionsFromEnv({ HF_HUB_OFFLINE: "1", HF_HOME: join(cache, "hf-home") });
    expect(env.offline).toBe(true);
    const offline = { ...opts(planned), ...env };
    log.length = 0;
    expect(await downloadToCache("acme/corpus", path, offline)).toBe(local);
    await expect(
      downloadToCache("acme/corpus", half, { ...offline, expectedSize: 5000 }),
    ).rejects.toThrow(
      `acme/corpus: ${half} at revision ${FIRST}: not in the cache (${halfLocal} nor under ${join(cache, "hf-home", "hub")}), and HF_HUB_OFFLINE is set, so it is not downloaded from ${base}`,
    );
    // a cached copy of another size than the plan's is refused, not read
    await writeFile(local, "truncated");
    await expect(downloadToCache("acme/corpus", path, offline)).rejects.toThrow(
      /the cached copy .* has 9 bytes, the plan listed 1000, and HF_HUB_OFFLINE is set/,
    );
    await expect(listHubFiles("acme/corpus", ["**"], offline)).rejects.toThrow(
      /acme\/corpus: listing files at revision .*: HF_HUB_OFFLINE is set, and this needs the hub/,
    );
    await expect(resolveHubRevision("acme/corpus", "main", offline)).rejects.toThrow(
      /resolving revision "main": HF_HUB_OFFLINE is set/,
    );
    expect(log).toEqual([]); // no request at all
  });

  it("reads the token from $HF_HOME/token or $HF_TOKEN_PATH when HF_TOKEN is unset", async () => {
    requireToken = true;
    const home = join(cache, "hf-home");
    await mkdir(home, { recursive: true });
    await writeFile(join(home, "token"), `${TOKEN}\n`);
    const env = hubOptionsFromEnv({ HF_HOME: home });
    expect(env.accessToken).toBe(TOKEN);
    const local = await downloadToCache("acme/corpus", "README.md", { ...opts(), ...env });
    expect(await readFile(local, "utf8")).toBe("# readme");
    expect(log.at(-1)?.auth).toBe(`Bearer ${TOKEN}`);
    await writeFile(join(home, "other-token"), "hf_wrong");
    const other = hubOptionsFromEnv({ HF_HOME: home, HF_TOKEN_PATH: join(home, "other-token") });
    await expect(listHubFiles("acme/corpus", ["**"], { ...opts(), ...other })).rejects.toThrow(
      `the token in ${join(home, "other-token")} was refused`,
    );
    // HF_TOKEN wins over the file
    expect(hubOptionsFromEnv({ HF_HOME: home, HF_TOKEN: "hf_env" }).accessToken).toBe("hf_env");
  });

  it("reuses a file huggingface-cli download put in HF_HUB_CACHE, online and offline", async () => {
    const path = "train/chunk1/example_train_0.jsonl.zst";
    const body = files[path] as Buffer;
    // huggingface_hub's layout: blobs/<etag>, snapshots/<commit>/<path> -> blob, refs/main
    const hf = join(cache, "hf-hub");
    const repoDir = join(hf, "datasets--acme--corpus");
    const blob = join(repoDir, "blobs", createHash("sha1").update(body).digest("hex"));
    const pointer = join(repoDir, "snapshots", FIRST, path);
    await mkdir(join(blob, ".."), { recursive: true });
    await mkdir(join(pointer, ".."), { recursive: true });
    await writeFile(blob, body);
    await symlink(relative(join(pointer, ".."), blob), pointer);
    await mkdir(join(repoDir, "refs"), { recursive: true });
    await writeFile(join(repoDir, "refs", "main"), FIRST);
    const env = hubOptionsFromEnv({ HF_HUB_CACHE: hf, HF_HOME: join(cache, "unused") });
    const o = { ...opts({ revision: FIRST, expectedSize: body.length }), ...env };
    expect(await downloadToCache("acme/corpus", path, o)).toBe(pointer);
    expect(log.every((l) => l.range === "bytes=0-0")).toBe(true); // only the size/etag probe
    // offline, a branch is read through refs/<branch>, as huggingface_hub does
    log.length = 0;
    const offline = { ...env, ...hubOptionsFromEnv({ HF_HUB_OFFLINE: "1", HF_HUB_CACHE: hf }) };
    expect(
      await downloadToCache("acme/corpus", path, {
        ...opts({ expectedSize: body.length }),
        ...offline,
      }),
    ).toBe(pointer);
    expect(log).toEqual([]);
    // a corrupted blob (another size) is not used: the file is downloaded into this cache
    await writeFile(blob, body.subarray(0, 1000));
    const local = await downloadToCache("acme/corpus", path, o);
    expect(local).toBe(join(cache, "acme/corpus", FIRST, path));
    expect((await readFile(local)).equals(body)).toBe(true);
  });

  it("an interrupted update of a branch's file does not pass the old copy off as the new one", async () => {
    const local = await downloadToCache("acme/corpus", "README.md", opts());
    // main moves on: README.md has other bytes of the same size
    const SECOND = sha("second commit");
    commits[SECOND] = { ...files, "README.md": Buffer.from("# READ!!") };
    branches.main = SECOND;
    failures = ["ok", "drop"]; // the probe answers, the body is cut
    await expect(downloadToCache("acme/corpus", "README.md", opts({ retries: 0 }))).rejects.toThrow(
      HubError,
    );
    expect(await downloadToCache("acme/corpus", "README.md", opts())).toBe(local);
    expect(await readFile(local, "utf8")).toBe("# READ!!");
  });

  it("a downloaded file feeds the normal reader", async () => {
    const { compress } = await import("zstd-napi");
    files["train/chunk3/x.jsonl.zst"] = compress(
      Buffer.from('{"text":"hello","meta":{"redpajama_set_name":"RedPajamaC4"}}\n'),
    );
    const local = await downloadToCache("acme/corpus", "train/chunk3/x.jsonl.zst", opts());
    const recs = [];
    for await (const r of readRecords(local, "jsonl.zst", new BadRecordLog()))
      recs.push(r.value.text);
    expect(recs).toEqual(["hello"]);
  });
});
