/**
 * hf://<repo> loading against a local stand-in for the Hugging Face hub on 127.0.0.1 (the
 * endpoints @huggingface/hub uses: revision, paths-info and resolve). Never touches the real hub.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { LlamaTokenizer, toHuggingFaceTokenizerJson } from "./index.js";

const FIXTURE_MODEL = new URL("./testdata/llama2-tokenizer.model", import.meta.url).pathname;

/** The commit that last changed the files, and the later one the branch main names now. */
const COMMIT = "0123456789abcdef0123456789abcdef01234567";
const HEAD = "89abcdef0123456789abcdef0123456789abcdef";
const files = new Map<string, Buffer>();
const requests: Array<{ method: string; url: string; auth: string | undefined }> = [];
let server: Server;
let endpoint: string;
const ENV = [
  "HF_ENDPOINT",
  "HF_TOKEN",
  "HF_HOME",
  "HF_TOKEN_PATH",
  "HF_HUB_OFFLINE",
  "HF_HUB_CACHE",
];
const savedEnv = Object.fromEntries(ENV.map((k) => [k, process.env[k]]));
/** An empty HF_HOME, so that no token file of the machine running the tests is read. */
let emptyHome: string;

const readBody = (req: IncomingMessage): Promise<string> =>
  new Promise((resolve) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => resolve(body));
  });

beforeAll(async () => {
  const bundled = await LlamaTokenizer.load();
  files.set("llama/with-model/tokenizer.model", readFileSync(FIXTURE_MODEL));
  files.set(
    "llama/json-only/tokenizer.json",
    Buffer.from(toHuggingFaceTokenizerJson(bundled.model)),
  );
  server = createServer(async (req, res) => {
    requests.push({
      method: req.method ?? "",
      url: req.url ?? "",
      auth: req.headers.authorization,
    });
    const url = new URL(req.url ?? "/", "http://x");
    const rev = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(url.pathname);
    if (rev && req.method === "GET") {
      const known = [...files.keys()].some((k) => k.startsWith(`${rev[1]}/`));
      if (!known) {
        res.writeHead(404, { "content-type": "application/json", "x-error-code": "RepoNotFound" });
        res.end(JSON.stringify({ error: "Repository not found" }));
        return;
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ _id: "0", id: rev[1], private: false, sha: HEAD }));
      return;
    }
    const info = /^\/api\/models\/([^/]+\/[^/]+)\/paths-info\/([^/]+)$/.exec(url.pathname);
    if (info && req.method === "POST") {
      const { paths } = JSON.parse(await readBody(req)) as { paths: string[] };
      const found = paths.flatMap((p) => {
        const data = files.get(`${info[1]}/${p}`);
        if (!data) return [];
        const oid = createHash("sha1").update(data).digest("hex");
        return [
          {
            path: p,
            type: "file",
            oid,
            size: data.length,
            lastCommit: { id: COMMIT, title: "t", date: new Date(0).toISOString() },
          },
        ];
      });
      if (!files.has(`${info[1]}/tokenizer.model`) && !files.has(`${info[1]}/tokenizer.json`)) {
        res.writeHead(404, { "content-type": "application/json", "x-error-code": "RepoNotFound" });
        res.end(JSON.stringify({ error: "Repository not found" }));
        return;
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(found));
      return;
    }
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const data = resolve ? files.get(`${resolve[1]}/${resolve[3]}`) : undefined;
    if (!data) {
      res.writeHead(404, { "x-error-code": "EntryNotFound" });
      res.end("not found");
      return;
    }
    const etag = `"${createHash("sha1").update(data).digest("hex")}"`;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    if (range) {
      const start = Number(range[1]);
      const end = range[2] ? Math.min(Number(range[2]), data.length - 1) : data.length - 1;
      res.writeHead(206, {
        "content-range": `bytes ${start}-${end}/${data.length}`,
        "content-length": end - start + 1,
        etag,
      });
      res.end(data.subarray(start, end + 1));
      return;
    }
    res.writeHead(200, { "content-length": data.length, etag });
    res.end(data);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  emptyHome = await freshCacheDir();
});

beforeEach(() => {
  for (const k of ENV) delete process.env[k];
  process.env.HF_HOME = emptyHome;
});

afterEach(() => {
  requests.length = 0;
  for (const k of ENV) {
    if (savedEnv[k] === undefined) delete process.env[k];
    else process.env[k] = savedEnv[k];
  }
});

afterAll(async () => {
  server.close();
  await Promise.all(cacheDirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** A fresh cache directory per test, removed after the file's tests. */
const cacheDirs: string[] = [];
async function freshCacheDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "tokenizer-hub-cache-"));
  cacheDirs.push(dir);
  return dir;
}

describe("hf://<repo>", () => {
  it("downloads tokenizer.model through HF_ENDPOINT with HF_TOKEN, then reuses the cache", async () => {
    process.env.HF_ENDPOINT = endpoint;
    process.env.HF_TOKEN = "hf_localtesttoken";
    const cacheDir = await freshCacheDir();
    const tok = await LlamaTokenizer.load("hf://llama/with-model", { cacheDir });
    expect(tok.encode("Hello world!")).toEqual([1, 15043, 3186, 29991]);
    expect(requests.length).toBeGreaterThan(0);
    expect(requests.every((r) => r.auth === "Bearer hf_localtesttoken")).toBe(true);
    const downloads = requests.filter((r) => r.method === "GET").length;
    requests.length = 0;
    await LlamaTokenizer.load("hf://llama/with-model", { cacheDir });
    expect(requests.filter((r) => r.url.includes("/resolve/"))).toHaveLength(0);
    expect(downloads).toBeGreaterThan(0);
  });

  it("falls back to tokenizer.json when the repo has no tokenizer.model", async () => {
    process.env.HF_ENDPOINT = endpoint;
    const cacheDir = await freshCacheDir();
    const tok = await LlamaTokenizer.load("hf://llama/json-only", { cacheDir });
    expect(tok.encode("           grabbed")).toEqual([1, 9651, 2646, 1327, 287]);
    expect(requests.every((r) => r.auth === undefined)).toBe(true);
  });

  it("a repo without tokenizer files is a clear error", async () => {
    process.env.HF_ENDPOINT = endpoint;
    const cacheDir = await freshCacheDir();
    await expect(LlamaTokenizer.load("hf://nobody/nothing", { cacheDir })).rejects.toThrow(
      /hf:\/\/nobody\/nothing: nobody\/nothing at http:\/\/127\.0\.0\.1:\d+ has no revision main \(HTTP 404/,
    );
  });

  it("an unreachable hub is a clear error, not a hang", async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    process.env.HF_ENDPOINT = `http://127.0.0.1:${port}`;
    const cacheDir = await freshCacheDir();
    await expect(LlamaTokenizer.load("hf://llama/with-model", { cacheDir })).rejects.toThrow(
      /cannot resolve revision main of llama\/with-model from http:\/\/127\.0\.0\.1:\d+ .*(ECONNREFUSED|fetch failed)/,
    );
  });

  it("writes huggingface_hub's layout: refs/main and the snapshot of the commit main names", async () => {
    process.env.HF_ENDPOINT = endpoint;
    const cacheDir = await freshCacheDir();
    await LlamaTokenizer.load("hf://llama/with-model", { cacheDir });
    const repoDir = join(cacheDir, "models--llama--with-model");
    // what huggingface_hub.hf_hub_download(..., local_files_only=True) looks for
    expect(await readFile(join(repoDir, "refs", "main"), "utf8")).toBe(HEAD);
    expect((await stat(join(repoDir, "snapshots", HEAD, "tokenizer.model"))).isFile()).toBe(true);
  });

  it("HF_HUB_OFFLINE=1 reads a huggingface-cli cache with no request; a missing file is named", async () => {
    process.env.HF_ENDPOINT = endpoint;
    process.env.HF_HUB_OFFLINE = "1";
    const hub = await freshCacheDir();
    process.env.HF_HUB_CACHE = hub;
    // `huggingface-cli download llama/with-model tokenizer.model`: blob, snapshot link, ref
    const repoDir = join(hub, "models--llama--with-model");
    const data = readFileSync(FIXTURE_MODEL);
    const blob = join(repoDir, "blobs", createHash("sha256").update(data).digest("hex"));
    await mkdir(join(repoDir, "blobs"), { recursive: true });
    await mkdir(join(repoDir, "snapshots", HEAD), { recursive: true });
    await mkdir(join(repoDir, "refs"), { recursive: true });
    await writeFile(blob, data);
    await symlink(blob, join(repoDir, "snapshots", HEAD, "tokenizer.model"));
    await writeFile(join(repoDir, "refs", "main"), HEAD);
    const tok = await LlamaTokenizer.load("hf://llama/with-model");
    expect(tok.encode("Hello world!")).toEqual([1, 15043, 3186, 29991]);
    await LlamaTokenizer.load("hf://llama/with-model", { revision: HEAD });
    expect(requests).toEqual([]);
    await expect(LlamaTokenizer.load("hf://llama/json-only")).rejects.toThrow(
      `hf://llama/json-only: HF_HUB_OFFLINE is set and tokenizer.model or tokenizer.json of llama/json-only at revision main is not in the cache (no ${join(hub, "models--llama--json-only", "refs", "main")})`,
    );
    expect(requests).toEqual([]);
  });

  it("reads the token from $HF_HOME/token when HF_TOKEN is unset", async () => {
    process.env.HF_ENDPOINT = endpoint;
    const home = await freshCacheDir();
    process.env.HF_HOME = home;
    await writeFile(join(home, "token"), "hf_fromfile\n");
    await LlamaTokenizer.load("hf://llama/with-model", { cacheDir: await freshCacheDir() });
    expect(requests.length).toBeGreaterThan(0);
    expect(requests.every((r) => r.auth === "Bearer hf_fromfile")).toBe(true);
  });

  it("a malformed hf:// spec is refused", async () => {
    await expect(LlamaTokenizer.load("hf://just-a-name")).rejects.toThrow(
      /expected hf:\/\/<owner>\/<name>/,
    );
  });
});
