/**
 * `hf://<owner>/<name>[/<file>]`: fetches a tokenizer file from the Hugging Face hub through
 * @huggingface/hub's cache (the same layout as Python's huggingface_hub, so files already
 * downloaded by Python are reused). Honours HF_TOKEN and HF_ENDPOINT; without a file name it
 * tries tokenizer.model, then tokenizer.json.
 */
import { readFile } from "node:fs/promises";

export interface HubOptions {
  cacheDir?: string;
  revision?: string;
}

const CANDIDATES = ["tokenizer.model", "tokenizer.json"];

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
  const accessToken = process.env.HF_TOKEN || undefined;
  const misses: string[] = [];
  for (const path of files) {
    let local: string;
    try {
      // Imported here, not at the top: the hub client costs ~30 ms of module loading that
      // every process loading a local or bundled tokenizer would pay.
      const { downloadFileToCacheDir } = await import("@huggingface/hub");
      local = await downloadFileToCacheDir({
        repo,
        path,
        hubUrl,
        ...(accessToken ? { accessToken } : {}),
        ...(options.revision ? { revision: options.revision } : {}),
        ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
      });
    } catch (e) {
      const err = e as Error & { statusCode?: number; cause?: unknown };
      if (err.statusCode === 404 || /cannot get path info/.test(err.message)) {
        misses.push(path);
        continue;
      }
      const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
      throw new Error(
        `hf://${spec}: cannot download ${path} from ${hubUrl} (${err.message}${cause})` +
          (err.statusCode === 401 || err.statusCode === 403
            ? "; set HF_TOKEN for gated or private repos"
            : ""),
      );
    }
    return { path: local, bytes: await readFile(local) };
  }
  throw new Error(`hf://${spec}: ${repo} at ${hubUrl} has no ${misses.join(" or ")}`);
}
