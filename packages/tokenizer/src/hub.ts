/**
 * `hf://<owner>/<name>[/<file>]`: fetches a tokenizer file from the Hugging Face hub through
 * @huggingface/hub's cache, in the layout of Python's huggingface_hub
 * (`models--<owner>--<name>/snapshots/<commit>/<file>`, `refs/<branch>` naming the commit), so
 * files already downloaded by Python are reused and Python reads the files downloaded here.
 * Honours HF_TOKEN (else the token file, $HF_TOKEN_PATH or $HF_HOME/token), HF_ENDPOINT,
 * HF_HUB_CACHE/HF_HOME and HF_HUB_OFFLINE (the cache only: a branch through refs/<branch>);
 * without a file name it tries tokenizer.model, then tokenizer.json.
 */
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { hfHubCache, hfOffline, hfToken } from "./hf-env.js";

export interface HubOptions {
  cacheDir?: string;
  revision?: string;
}

const CANDIDATES = ["tokenizer.model", "tokenizer.json"];
const COMMIT_SHA = /^[0-9a-f]{40}$/;

export async function downloadFromHub(
  spec: string,
  options: HubOptions,
): Promise<{ path: string; bytes: Buffer }> {
  const parts = spec.split("/").filter((p) => p.length > 0);
  if (parts.length < 2) {
    throw new Error(`hf://${spec}: expected hf://<owner>/<name> or hf://<owner>/<name>/<file>`);
  }
  const repo = `${parts[0]}/${parts[1]}`;
  const files = parts.length > 2 ? [parts.slice(2).join("/")] : CANDIDATES;
  const hubUrl = process.env.HF_ENDPOINT?.replace(/\/+$/, "") || "https://huggingface.co";
  const revision = options.revision ?? "main";
  const cacheDir = options.cacheDir ?? hfHubCache();
  const storage = join(cacheDir, `models--${parts[0]}--${parts[1]}`);

  if (hfOffline()) {
    // huggingface_hub's offline lookup: a branch or tag names its commit in refs/<revision>
    const commit = COMMIT_SHA.test(revision)
      ? revision
      : (await readFile(join(storage, "refs", revision), "utf8").catch(() => undefined))?.trim();
    for (const path of commit ? files : []) {
      const local = join(storage, "snapshots", commit as string, path);
      if ((await stat(local).catch(() => undefined))?.isFile())
        return { path: local, bytes: await readFile(local) };
    }
    throw new Error(
      `hf://${spec}: HF_HUB_OFFLINE is set and ${files.join(" or ")} of ${repo} at revision ${revision} is not in the cache ` +
        (commit
          ? `(${join(storage, "snapshots", commit)})`
          : `(no ${join(storage, "refs", revision)})`) +
        `; download it where ${hubUrl} can be reached, or unset HF_HUB_OFFLINE`,
    );
  }

  const auth = hfToken();
  const accessToken = auth?.token;
  const failure = (what: string, e: unknown) => {
    const err = e as Error & { statusCode?: number; cause?: unknown };
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
    return new Error(
      `hf://${spec}: cannot ${what} from ${hubUrl} (${err.message}${cause})` +
        (err.statusCode === 401 || err.statusCode === 403
          ? auth
            ? `; the token in ${auth.from} was refused`
            : "; set HF_TOKEN for gated or private repos"
          : ""),
    );
  };
  // Imported here, not at the top: the hub client costs ~30 ms of module loading that every
  // process loading a local or bundled tokenizer would pay.
  const { downloadFileToCacheDir, modelInfo } = await import("@huggingface/hub");
  // A branch or tag is resolved to the commit it names now, recorded in refs/<revision> and
  // downloaded as that commit's snapshot, as huggingface_hub does (the client alone would file
  // it under the commit that last changed the file, with no ref: Python could not find it).
  let commit = revision;
  if (!COMMIT_SHA.test(revision)) {
    let sha: unknown;
    try {
      const info = await modelInfo({
        name: repo,
        revision,
        hubUrl,
        additionalFields: ["sha"],
        ...(accessToken ? { accessToken } : {}),
      });
      sha = (info as { sha?: unknown }).sha;
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404)
        throw new Error(
          `hf://${spec}: ${repo} at ${hubUrl} has no revision ${revision} (HTTP 404: no such repo or revision, or a private repo without HF_TOKEN)`,
        );
      throw failure(`resolve revision ${revision} of ${repo}`, e);
    }
    if (typeof sha !== "string" || !COMMIT_SHA.test(sha))
      throw new Error(
        `hf://${spec}: ${hubUrl} answered no commit id for revision ${revision} of ${repo}`,
      );
    commit = sha;
    const ref = join(storage, "refs", revision);
    await mkdir(dirname(ref), { recursive: true });
    await writeFile(ref, commit);
  }
  const misses: string[] = [];
  for (const path of files) {
    let local: string;
    try {
      local = await downloadFileToCacheDir({
        repo,
        path,
        hubUrl,
        revision: commit,
        cacheDir,
        ...(accessToken ? { accessToken } : {}),
      });
    } catch (e) {
      const err = e as Error & { statusCode?: number };
      if (err.statusCode === 404 || /cannot get path info/.test(err.message)) {
        misses.push(path);
        continue;
      }
      throw failure(`download ${path}`, e);
    }
    return { path: local, bytes: await readFile(local) };
  }
  throw new Error(
    `hf://${spec}: ${repo} at ${hubUrl} has no ${misses.join(" or ")} (revision ${revision})`,
  );
}
