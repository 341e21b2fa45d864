/**
 * Minimal glob matching for input selection (`**`, `*`, `?`, `{a,b}`), over relative paths
 * with "/" separators. Node 20 has no fs.glob.
 */
import { readdir } from "node:fs/promises";
import { join, relative, sep } from "node:path";

export function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === "*") {
      if (glob[i + 1] === "*") {
        i++;
        if (glob[i + 1] === "/") {
          i++;
          re += "(?:.*/)?";
        } else re += ".*";
      } else re += "[^/]*";
    } else if (c === "?") re += "[^/]";
    else if (c === "{") {
      const end = glob.indexOf("}", i);
      if (end < 0) throw new Error(`glob ${glob}: unclosed {`);
      re += `(?:${glob
        .slice(i + 1, end)
        .split(",")
        .map((alt) => alt.replace(/[.+^$()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*"))
        .join("|")})`;
      i = end;
    } else re += c.replace(/[.+^$()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/** Every file under `root` (recursively), as sorted relative "/"-separated paths. */
export async function listFilesRecursive(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  const out: string[] = [];
  for (const e of entries) {
    if (!e.isFile()) continue;
    const parent =
      (e as unknown as { parentPath?: string; path?: string }).parentPath ??
      (e as { path?: string }).path ??
      root;
    out.push(relative(root, join(parent, e.name)).split(sep).join("/"));
  }
  return out.sort();
}

export function matchAny(path: string, globs: readonly string[]): boolean {
  return globs.some((g) => globToRegExp(g).test(path));
}
