/**
 * huggingface_hub's environment conventions, read the way Python's client reads them, for
 * every hub user of this project (the tokenizer's hf:// loader, @tinyllama/data's hub client).
 */
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/** $HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface. */
export function hfHome(env: NodeJS.ProcessEnv = process.env): string {
  return (
    env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(env.HOME ?? homedir(), ".cache"), "huggingface")
  );
}

/** $HF_HUB_CACHE (or the older $HUGGINGFACE_HUB_CACHE), else $HF_HOME/hub. */
export function hfHubCache(env: NodeJS.ProcessEnv = process.env): string {
  return env.HF_HUB_CACHE ?? env.HUGGINGFACE_HUB_CACHE ?? join(hfHome(env), "hub");
}

/** $HF_HUB_OFFLINE set to 1/on/yes/true. */
export function hfOffline(env: NodeJS.ProcessEnv = process.env): boolean {
  return /^(1|on|yes|true)$/i.test(env.HF_HUB_OFFLINE ?? "");
}

/**
 * $HF_TOKEN, else the file `huggingface-cli login` writes ($HF_TOKEN_PATH or $HF_HOME/token);
 * `from` names where it came from, for messages (the token itself is never printed).
 */
export function hfToken(
  env: NodeJS.ProcessEnv = process.env,
): { token: string; from: string } | undefined {
  if (env.HF_TOKEN) return { token: env.HF_TOKEN, from: "HF_TOKEN" };
  const file = env.HF_TOKEN_PATH ?? join(hfHome(env), "token");
  let token = "";
  try {
    token = readFileSync(file, "utf8").trim();
  } catch {
    // no token file: anonymous
  }
  return token ? { token, from: file } : undefined;
}
