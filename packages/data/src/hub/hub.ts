/**
 * Hugging Face hub inputs through `@huggingface/hub`: listing, downloads by HTTP range into a
 * local cache (resumable after a dropped connection or a killed process), retries with
 * exponential backoff on 429/5xx/network errors, HF_TOKEN (or huggingface_hub's token file) for
 * gated repos, HF_ENDPOINT for mirrors, HF_HUB_OFFLINE for nodes without internet, and files
 * already in huggingface_hub's cache (HF_HUB_CACHE) reused. The token is passed to the client
 * and never printed.
 */
import {
  copyFile,
  link,
  mkdir,
  open,
  readFile,
  realpath,
  rename,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import {
  datasetInfo,
  downloadFile,
  fileDownloadInfo,
  HubApiError,
  listFiles,
} from "@huggingface/hub";
import { hfHubCache, hfOffline, hfToken } from "@tinyllama/tokenizer";
import { matchAny } from "../io/glob.js";

export interface HubOptions {
  /** Base URL; default $HF_ENDPOINT or https://huggingface.co. */
  hubUrl?: string;
  /** Default $HF_TOKEN, else the token file ($HF_TOKEN_PATH or $HF_HOME/token). */
  accessToken?: string;
  /** The file accessToken was read from (error messages name it). */
  tokenFile?: string;
  /**
   * $HF_HUB_OFFLINE: never contact the hub; files come from the caches, and a file in neither
   * is an error naming it.
   */
  offline?: boolean;
  /**
   * huggingface_hub's cache (datasets--<owner>--<name>/snapshots/<commit>/...), searched before
   * downloading; default $HF_HUB_CACHE or $HF_HOME/hub. Never written.
   */
  hfCacheDir?: string;
  /** Branch, tag or commit; default "main". The pipeline passes the commit its plan pinned. */
  revision?: string;
  /**
   * Where downloads go, as <cacheDir>/<repo>/<revision>/<path>; default $TINYLLAMA_CACHE (the
   * download cache itself, nothing appended) or ~/.cache/tinyllama/hub.
   */
  cacheDir?: string;
  /** Retries per request on 429/5xx/network errors (default 6). */
  retries?: number;
  /** First backoff delay in ms, doubled each retry (default 1000). */
  backoffMs?: number;
  /** Bytes per range request (default 16 MiB): the unit of resume. */
  rangeBytes?: number;
  /** Replaces global fetch (tests count requests with it). */
  fetch?: typeof fetch;
  /** Called before each retry (for progress lines). */
  onRetry?: (what: string, attempt: number, err: Error) => void;
}

export interface HubFile {
  path: string;
  size: number;
}

export function hubOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): HubOptions {
  const o: HubOptions = {};
  if (env.HF_ENDPOINT) o.hubUrl = env.HF_ENDPOINT.replace(/\/+$/, "");
  const auth = hfToken(env);
  if (auth) {
    o.accessToken = auth.token;
    if (auth.from !== "HF_TOKEN") o.tokenFile = auth.from;
  }
  if (hfOffline(env)) o.offline = true;
  o.hfCacheDir = hfHubCache(env);
  // TINYLLAMA_CACHE is the download cache itself (README, `--help`): files go straight under it
  if (env.TINYLLAMA_CACHE) o.cacheDir = resolve(env.TINYLLAMA_CACHE);
  return o;
}

export class HubError extends Error {
  override name = "HubError";
}

function describe(err: unknown, repo: string, what: string, o: HubOptions): Error {
  if (err instanceof HubApiError) {
    if (err.statusCode === 401 || err.statusCode === 403) {
      return new HubError(
        `${repo}: ${what}: HTTP ${err.statusCode} (${o.accessToken ? `the token in ${o.tokenFile ?? "HF_TOKEN"} was refused` : "no HF_TOKEN set, no token file"}). ` +
          "Gated datasets such as bigcode/starcoderdata need you to accept their terms on the hub and export HF_TOKEN=<a read token>.",
      );
    }
    if (err.statusCode === 404)
      return new HubError(
        `${repo}: ${what}: not found (HTTP 404); check the repo name, path and revision`,
      );
    return new HubError(`${repo}: ${what}: HTTP ${err.statusCode}: ${err.message}`);
  }
  return new HubError(`${repo}: ${what}: ${(err as Error).message}`);
}

function retriable(err: unknown): boolean {
  if (err instanceof HubApiError) return err.statusCode === 429 || err.statusCode >= 500;
  // fetch() rejects with TypeError on connection resets and refusals
  return err instanceof TypeError || (err as NodeJS.ErrnoException)?.code === "ECONNRESET";
}

async function withRetry<T>(o: HubOptions, what: string, fn: () => Promise<T>): Promise<T> {
  const retries = o.retries ?? 6;
  const base = o.backoffMs ?? 1000;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!retriable(err) || attempt >= retries) throw err;
      o.onRetry?.(what, attempt + 1, err as Error);
      const delay = base * 2 ** attempt * (0.5 + Math.random() / 2);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

function endpoint(o: HubOptions): string {
  return o.hubUrl ?? "https://huggingface.co";
}

function refuseOffline(repo: string, what: string, o: HubOptions): void {
  if (o.offline)
    throw new HubError(
      `${repo}: ${what}: HF_HUB_OFFLINE is set, and this needs the hub (${endpoint(o)}); ` +
        "run it on a node with internet access (for data:prepare: plan there; the plan pins the commit and lists every file, so its tasks can run offline from the cache), or unset HF_HUB_OFFLINE",
    );
}

function common(o: HubOptions) {
  return {
    ...(o.hubUrl ? { hubUrl: o.hubUrl } : {}),
    ...(o.accessToken ? { accessToken: o.accessToken } : {}),
    ...(o.fetch ? { fetch: o.fetch } : {}),
    revision: o.revision ?? "main",
  };
}

/** Lists the dataset files matching `globs`, sorted by path (the same order on every node). */
export async function listHubFiles(
  repo: string,
  globs: readonly string[],
  o: HubOptions = {},
): Promise<HubFile[]> {
  refuseOffline(repo, `listing files at revision ${o.revision ?? "main"}`, o);
  const out: HubFile[] = [];
  try {
    await withRetry(o, `list ${repo}`, async () => {
      out.length = 0;
      for await (const f of listFiles({
        repo: { type: "dataset", name: repo },
        recursive: true,
        ...common(o),
      })) {
        if (f.type === "file" && matchAny(f.path, globs)) out.push({ path: f.path, size: f.size });
      }
    });
  } catch (err) {
    throw describe(err, repo, "listing files", o);
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** A full git commit id, as the hub answers it. */
export const COMMIT_SHA = /^[0-9a-f]{40}$/;

/**
 * The commit that `revision` (a branch, tag or commit) of dataset `repo` names now. The plan
 * stores it and every download asks for it, so files listed together are read from one
 * version of the dataset however long the run takes.
 */
export async function resolveHubRevision(
  repo: string,
  revision: string,
  o: HubOptions = {},
): Promise<string> {
  refuseOffline(repo, `resolving revision "${revision}"`, o);
  let sha: unknown;
  try {
    sha = await withRetry(o, `resolve ${repo}@${revision}`, async () => {
      const info = await datasetInfo({
        name: repo,
        revision,
        additionalFields: ["sha"],
        ...(o.hubUrl ? { hubUrl: o.hubUrl } : {}),
        ...(o.accessToken ? { accessToken: o.accessToken } : {}),
        ...(o.fetch ? { fetch: o.fetch } : {}),
      });
      return (info as { sha?: unknown }).sha;
    });
  } catch (err) {
    throw describe(err, repo, `resolving revision "${revision}"`, o);
  }
  if (typeof sha !== "string" || !COMMIT_SHA.test(sha))
    throw new HubError(
      `${repo}: resolving revision "${revision}": the hub answered no commit id (sha ${JSON.stringify(sha)})`,
    );
  return sha;
}

export function defaultCacheDir(): string {
  return join(process.env.HOME ?? ".", ".cache", "tinyllama", "hub");
}

export interface DownloadOptions extends HubOptions {
  /**
   * The branch or tag the pinned revision came from (the plan's "main"): a complete copy cached
   * under that name by an earlier version of this package, which cached by branch, is adopted
   * when its size and etag are the planned file's, instead of downloaded again.
   */
  formerRevision?: string;
  /**
   * The size the plan listed: a file of another size at the same revision is an error, never
   * read (a mirror serving other bytes, a plan edited by hand).
   */
  expectedSize?: number;
}

/**
 * Where earlier versions of this package cached the same file: under the branch name instead
 * of the pinned commit, and under $TINYLLAMA_CACHE/hub when that variable named the cache's
 * parent. A complete copy there with this file's size and etag is hard-linked (copied across
 * filesystems) into place, so an upgrade does not download a corpus again.
 */
async function adoptEarlierCopy(
  repo: string,
  path: string,
  revision: string,
  local: string,
  info: { size: number; etag: string },
  o: DownloadOptions,
): Promise<boolean> {
  const roots = [o.cacheDir ?? defaultCacheDir()];
  const env = process.env.TINYLLAMA_CACHE;
  if (env && resolve(env) === resolve(roots[0] as string)) roots.push(join(env, "hub"));
  const revisions = [revision, ...(o.formerRevision ? [o.formerRevision] : [])];
  for (const root of roots) {
    for (const rev of revisions) {
      const earlier = join(root, repo, rev, path);
      if (resolve(earlier) === resolve(local)) continue;
      const st = await stat(earlier).catch(() => undefined);
      const etag = await readFile(`${earlier}.etag`, "utf8").catch(() => undefined);
      if (!st || st.size !== info.size || etag !== info.etag) continue;
      await mkdir(dirname(local), { recursive: true });
      await rm(local, { force: true });
      await link(earlier, local).catch(async (e: NodeJS.ErrnoException) => {
        if (e.code !== "EXDEV" && e.code !== "EPERM") throw e;
        await copyFile(earlier, `${local}.partial`);
        await rename(`${local}.partial`, local);
      });
      await writeFile(`${local}.etag`, info.etag);
      return true;
    }
  }
  return false;
}

/**
 * The copy of `path` in huggingface_hub's cache (`huggingface-cli download`): the snapshot of
 * the commit `revision` names (a branch through refs/<branch>, offline only: online the hub
 * says where the branch is now), when it has `size` bytes and, linked into blobs/ as
 * huggingface_hub writes it, its blob is named by `etag`.
 */
async function hfCacheCopy(
  repo: string,
  path: string,
  revision: string,
  o: DownloadOptions,
  size: number | undefined,
  etag?: string,
): Promise<string | undefined> {
  if (!o.hfCacheDir) return undefined;
  const root = join(o.hfCacheDir, `datasets--${repo.split("/").join("--")}`);
  let commit: string | undefined = revision;
  if (!COMMIT_SHA.test(revision))
    commit = o.offline
      ? (await readFile(join(root, "refs", revision), "utf8").catch(() => undefined))?.trim()
      : undefined;
  if (!commit) return undefined;
  const file = join(root, "snapshots", commit, path);
  const st = await stat(file).catch(() => undefined);
  if (!st?.isFile() || (size !== undefined && st.size !== size)) return undefined;
  const real = await realpath(file).catch(() => file);
  const blob = resolve(real) !== resolve(file) && basename(dirname(real)) === "blobs";
  if (etag && blob && basename(real) !== etag.replace(/^W\//, "").replace(/"/g, ""))
    return undefined;
  return file;
}

/**
 * Downloads `path` of dataset `repo` into the cache and returns the local path. A complete
 * cached copy (same size and etag) is reused, from this cache or huggingface_hub's; a partial
 * one is continued from its last byte. Offline, only the caches are read.
 */
export async function downloadToCache(
  repo: string,
  path: string,
  o: DownloadOptions = {},
): Promise<string> {
  const revision = o.revision ?? "main";
  const local = join(o.cacheDir ?? defaultCacheDir(), repo, revision, path);
  const partial = `${local}.partial`;
  const etagFile = `${local}.etag`;
  const what = `download ${path}`;
  if (o.offline) {
    // only a renamed, complete download is at `local` (partial bytes live in .partial)
    const st = await stat(local).catch(() => undefined);
    if (st && (o.expectedSize === undefined || st.size === o.expectedSize)) return local;
    const hf = await hfCacheCopy(repo, path, revision, o, o.expectedSize);
    if (hf) return hf;
    throw new HubError(
      `${repo}: ${path} at revision ${revision}: ` +
        (st
          ? `the cached copy ${local} has ${st.size} bytes, the plan listed ${o.expectedSize}`
          : `not in the cache (${local}${o.hfCacheDir ? ` nor under ${o.hfCacheDir}` : ""})`) +
        `, and HF_HUB_OFFLINE is set, so it is not downloaded from ${endpoint(o)}; download it on a node with internet access, or unset HF_HUB_OFFLINE`,
    );
  }
  let info: Awaited<ReturnType<typeof fileDownloadInfo>>;
  try {
    info = await withRetry(o, what, () =>
      fileDownloadInfo({ repo: { type: "dataset", name: repo }, path, ...common(o) }),
    );
  } catch (err) {
    throw describe(err, repo, what, o);
  }
  if (!info)
    throw new HubError(`${repo}: ${path}: not found (HTTP 404); check the path and revision`);
  // every range below is checked for its length, so the file written has the announced size:
  // checking that size against the plan's checks the download
  if (o.expectedSize !== undefined && info.size !== o.expectedSize)
    throw new HubError(
      `${repo}: ${path} at revision ${revision}: the hub has ${info.size} bytes, the plan listed ${o.expectedSize}; ` +
        "this is not the file that was planned: check HF_ENDPOINT, or remove the work directory and rerun to plan again",
    );
  const cachedEtag = await readFile(etagFile, "utf8").catch(() => undefined);
  const done = await stat(local).catch(() => undefined);
  if (done && done.size === info.size && cachedEtag === info.etag) return local;
  const hf = await hfCacheCopy(repo, path, revision, o, info.size, info.etag);
  if (hf) return hf;
  if (await adoptEarlierCopy(repo, path, revision, local, info, o)) return local;

  await mkdir(dirname(local), { recursive: true });
  if (cachedEtag !== info.etag) {
    await rm(partial, { force: true }); // the remote file changed: start over
    // the old copy goes first: under the new etag, a copy of the same size would pass for the
    // new file if this download is interrupted
    await rm(local, { force: true });
    await writeFile(etagFile, info.etag);
  }
  let offset = (await stat(partial).catch(() => undefined))?.size ?? 0;
  if (offset > info.size) {
    await rm(partial, { force: true });
    offset = 0;
  }
  const blob = await downloadFile({
    repo: { type: "dataset", name: repo },
    path,
    downloadInfo: info,
    xet: false,
    ...common(o),
  });
  if (!blob) throw new HubError(`${repo}: ${path}: not found (HTTP 404)`);
  const step = o.rangeBytes ?? 16 << 20;
  const fh = await open(partial, "a");
  try {
    while (offset < info.size) {
      const end = Math.min(info.size, offset + step);
      const at = offset;
      let bytes: ArrayBuffer;
      try {
        bytes = await withRetry(o, `${what} bytes ${at}-${end}`, () =>
          blob.slice(at, end).arrayBuffer(),
        );
      } catch (err) {
        throw describe(
          err,
          repo,
          `${what} (bytes ${at}-${end}; rerun to resume from byte ${at})`,
          o,
        );
      }
      if (bytes.byteLength !== end - at) {
        throw new HubError(
          `${repo}: ${path}: asked for ${end - at} bytes at ${at}, got ${bytes.byteLength}`,
        );
      }
      await fh.write(new Uint8Array(bytes));
      offset = end;
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(partial, local);
  return local;
}
