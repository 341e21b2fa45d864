/**
 * Minimal glob matching for input selection (`**`, `*`, `?`, `{a,b}`), over relative paths
 * with "/" separators. Node 20 has no fs.glob.
 */
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";

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

/** A directory entry the listing left out, and why (a broken link, a fifo, a link loop...). */
export interface SkippedEntry {
  /** Relative "/"-separated path, as the listed files are. */
  path: string;
  reason: string;
}

export interface FileListing {
  /** Regular files, and symbolic links to them, as sorted relative "/"-separated paths. */
  files: string[];
  /** Entries that are neither a regular file nor a directory nor a link to one, sorted by path. */
  skipped: SkippedEntry[];
}

function kindOf(e: {
  isFIFO(): boolean;
  isSocket(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
}): string {
  if (e.isFIFO()) return "a fifo";
  if (e.isSocket()) return "a socket";
  if (e.isCharacterDevice()) return "a character device";
  if (e.isBlockDevice()) return "a block device";
  return "neither a file nor a directory";
}

/**
 * Every file under `root` (recursively), following symbolic links. A Hugging Face hub cache
 * snapshot (`huggingface-cli download`) is nothing but links into its blobs/ folder, and a
 * local copy may link some files or folders elsewhere, so a link counts as what it points to.
 * A folder is walked once: a linked one whose (device, inode) is an enclosing folder is a loop,
 * one already walked under another path would read the same files twice; both are skipped and
 * reported, as is every entry that is not a file or folder (a broken link, a fifo, ...), so
 * nothing goes missing from a run without a line saying so. Real folders are walked before
 * linked ones, so a folder reachable both ways is listed under its own path.
 */
export async function listInputFiles(root: string): Promise<FileListing> {
  const files: string[] = [];
  const skipped: SkippedEntry[] = [];
  const top = await stat(root);
  if (!top.isDirectory()) throw new Error(`${root} is not a directory`);
  // every folder walked so far, by device:inode, with the relative path it was walked under
  const walked = new Map<string, string>([[`${top.dev}:${top.ino}`, "."]]);
  // linked folders found on the way, walked once every real folder has been
  const linked: { dir: string; path: string; key: string; enclosing: ReadonlySet<string> }[] = [];

  async function walk(dir: string, rel: string, enclosing: ReadonlySet<string>): Promise<void> {
    const entries = await readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    // a snapshot folder holds thousands of links: stat them concurrently, walk in name order
    const targets = await Promise.all(
      entries.map((e) =>
        e.isSymbolicLink() || e.isDirectory()
          ? stat(join(dir, e.name)).catch((err: NodeJS.ErrnoException) => err)
          : undefined,
      ),
    );
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i] as (typeof entries)[number];
      const path = rel ? `${rel}/${e.name}` : e.name;
      const link = e.isSymbolicLink();
      if (e.isFile()) {
        files.push(path);
        continue;
      }
      if (!link && !e.isDirectory()) {
        skipped.push({ path, reason: kindOf(e) });
        continue;
      }
      const st = targets[i];
      if (st instanceof Error || st === undefined) {
        skipped.push({
          path,
          reason: link
            ? `broken symbolic link (${st?.code ?? "no target"})`
            : `cannot stat (${st?.message})`,
        });
        continue;
      }
      if (st.isFile()) {
        files.push(path);
        continue;
      }
      if (!st.isDirectory()) {
        skipped.push({ path, reason: `symbolic link to ${kindOf(st)}` });
        continue;
      }
      const key = `${st.dev}:${st.ino}`;
      if (link) {
        linked.push({ dir: join(dir, e.name), path, key, enclosing });
        continue;
      }
      if (walked.has(key)) {
        skipped.push({ path, reason: `same folder as ${walked.get(key)}, already listed` });
        continue;
      }
      walked.set(key, path);
      await walk(join(dir, e.name), path, new Set([...enclosing, key]));
    }
  }

  await walk(root, "", new Set([`${top.dev}:${top.ino}`]));
  // linked folders in the order found (name order, real folders first): deterministic
  for (let next = linked.shift(); next; next = linked.shift()) {
    const { dir, path, key, enclosing } = next;
    if (enclosing.has(key)) {
      skipped.push({ path, reason: "symbolic link loop (points to an enclosing folder)" });
      continue;
    }
    const first = walked.get(key);
    if (first !== undefined) {
      skipped.push({ path, reason: `same folder as ${first}, already listed` });
      continue;
    }
    walked.set(key, path);
    await walk(dir, path, new Set([...enclosing, key]));
  }
  const byPath = (a: { path: string } | string, b: { path: string } | string) => {
    const x = typeof a === "string" ? a : a.path;
    const y = typeof b === "string" ? b : b.path;
    return x < y ? -1 : x > y ? 1 : 0;
  };
  return { files: files.sort(byPath), skipped: skipped.sort(byPath) };
}

export function matchAny(path: string, globs: readonly string[]): boolean {
  return globs.some((g) => globToRegExp(g).test(path));
}
