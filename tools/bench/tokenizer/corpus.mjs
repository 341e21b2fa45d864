// Builds the varied text used by the tokenizer benchmark and the >= 10 MB agreement run, from
// files on this machine (Debian 12 with manpages-zh installed) plus deterministic generated
// cases. Same machine, same corpus: files are chosen in a fixed hash order with per-category
// byte budgets, and the category sizes are printed so a run on another machine can be compared.
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";

const MB = 1e6;

/** @typedef {{ category: string, source: string, text: string }} Doc */

/**
 * @param {string} dir
 * @param {(path: string, size: number) => boolean} accept
 * @param {string[]} [out]
 * @param {number} [depth]
 * @returns {string[]}
 */
function walk(dir, accept, out = [], depth = 0) {
  if (depth > 12 || !existsSync(dir)) return out;
  let names;
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    const p = join(dir, name);
    let st;
    try {
      st = statSync(p);
    } catch {
      continue;
    }
    if (st.isDirectory()) walk(p, accept, out, depth + 1);
    else if (st.isFile() && st.size > 0 && accept(p, st.size)) out.push(p);
  }
  return out;
}

/** @param {string[]} paths */
const hashOrder = (paths) =>
  paths
    .map((p) => /** @type {[string, string]} */ ([createHash("sha1").update(p).digest("hex"), p]))
    .sort((a, b) => (a[0] < b[0] ? -1 : 1))
    .map(([, p]) => p);

/** @param {string} path @returns {string | undefined} */
function readText(path) {
  let bytes = readFileSync(path);
  if (path.endsWith(".gz")) {
    try {
      bytes = gunzipSync(bytes);
    } catch {
      return undefined;
    }
  }
  // Lossy decoding: invalid UTF-8 in real files becomes U+FFFD, as a reader would do.
  return new TextDecoder("utf-8").decode(bytes);
}

/** @param {string} category @param {string[]} paths @param {number} budget @returns {Doc[]} */
function take(category, paths, budget, maxDoc = 1 * MB) {
  const docs = [];
  let bytes = 0;
  for (const p of hashOrder(paths)) {
    if (bytes >= budget) break;
    const text = readText(p);
    if (!text) continue;
    const doc = text.length > maxDoc ? text.slice(0, maxDoc) : text;
    docs.push({ category, source: p, text: doc });
    bytes += Buffer.byteLength(doc);
  }
  return docs;
}

/** Invalid UTF-8 read from files: slices of binaries decoded lossily, latin-1 as UTF-8. */
/** @param {number} budget @returns {Doc[]} */
function invalidUtf8(budget) {
  const docs = [];
  let bytes = 0;
  for (const p of hashOrder(walk("/usr/bin", (_, size) => size > 4096 && size < 4 * MB))) {
    if (bytes >= budget) break;
    const raw = readFileSync(p);
    const slice = raw.subarray(Math.floor(raw.length / 3), Math.floor(raw.length / 3) + 20_000);
    const text = new TextDecoder("utf-8").decode(slice);
    docs.push({ category: "invalid-utf8", source: p, text });
    bytes += Buffer.byteLength(text);
    // The same bytes seen as latin-1 and re-encoded: high characters everywhere.
    const latin1 = slice.toString("latin1");
    docs.push({ category: "invalid-utf8", source: `${p} (latin1)`, text: latin1 });
    bytes += Buffer.byteLength(latin1);
  }
  return docs;
}

/** @param {number} budget @param {() => number} rand @param {string[]} words @returns {Doc[]} */
function latex(budget, rand, words) {
  const docs = [];
  let bytes = 0;
  const files = walk("/usr/lib", (p) => /\.(tex|sty)$/.test(p)).concat(
    walk("/root/.pyenv", (p) => /\.(tex|sty)$/.test(p)),
  );
  for (const p of files) {
    const text = readText(p);
    if (text) docs.push({ category: "latex", source: p, text });
  }
  const cmds = [
    "\\alpha",
    "\\beta",
    "\\sum_{i=1}^{n}",
    "\\frac{1}{2}",
    "\\int_0^1",
    "\\mathbb{R}",
    "\\cdot",
    "\\leq",
    "\\nabla",
  ];
  while (bytes < budget) {
    let s = "\\section{" + words[Math.floor(rand() * words.length)] + "}\n";
    for (let i = 0; i < 40; i++) {
      s += words[Math.floor(rand() * words.length)] + " ";
      if (rand() < 0.2) s += "$" + cmds[Math.floor(rand() * cmds.length)] + " x_{" + i + "}^2$ ";
      if (rand() < 0.05)
        s += "\n\\begin{align}\n  f(x) &= \\sum_{k} a_k x^k \\\\\n  g(x) &= e^{-x}\n\\end{align}\n";
    }
    docs.push({ category: "latex", source: "generated", text: s });
    bytes += Buffer.byteLength(s);
  }
  return docs;
}

/**
 * @param {{
 *   scale?: number,
 *   variedTexts: (o: { seed: number, count: number, pieces: readonly string[], maxLength?: number }) => string[],
 *   rng: (seed: number) => () => number,
 *   pieces: string[],
 * }} opts  scale 1 gives about 24 MB.
 * @returns {Doc[]}
 */
export function buildCorpus({ scale = 1, variedTexts, rng, pieces }) {
  const docs = [];
  const prose = walk(
    "/usr/share/doc",
    (p) => /(changelog|copyright|README|NEWS)/i.test(p) && !/\.(png|jpg|pdf)$/.test(p),
  ).concat(walk("/usr/share/common-licenses", () => true));
  docs.push(...take("english-prose", prose, 5 * MB * scale));
  docs.push(
    ...take(
      "code-python",
      walk("/usr/lib/python3.11", (p) => p.endsWith(".py")),
      3 * MB * scale,
    ),
  );
  docs.push(
    ...take(
      "code-c",
      walk("/usr/include", (p) => /\.(h|hpp)$/.test(p)),
      2 * MB * scale,
    ),
  );
  docs.push(
    ...take(
      "code-js",
      walk("/work/main/node_modules/.pnpm", (p, size) => /\.(m?js|ts)$/.test(p) && size < 2 * MB),
      3 * MB * scale,
    ),
  );
  const zh = walk("/usr/share/man/zh_CN", () => true).concat(
    walk("/usr/share/man/zh_TW", () => true),
  );
  if (zh.length === 0)
    console.log(
      "corpus: no Chinese man pages (apt-get install manpages-zh); Chinese comes from generated text only",
    );
  docs.push(...take("chinese", zh, 4 * MB * scale));
  const rand = rng(42);
  const words = pieces.filter((p) => /^\u2581[a-z]{3,}$/.test(p)).map((p) => p.slice(1));
  docs.push(...latex(1 * MB * scale, rand, words));
  docs.push(...invalidUtf8(1 * MB * scale));
  // Generated: emoji, whitespace runs, lone surrogates, long lines without spaces, glued pieces.
  let generated = 0;
  for (let seed = 1; generated < 3 * MB * scale; seed++) {
    for (const text of variedTexts({ seed, count: 500, pieces, maxLength: 200_000 })) {
      docs.push({ category: "generated", source: `variedTexts seed ${seed}`, text });
      generated += Buffer.byteLength(text);
    }
  }
  return docs;
}

/** @param {Doc[]} docs */
export function summarize(docs) {
  const by = new Map();
  for (const d of docs) {
    const e = by.get(d.category) ?? { docs: 0, bytes: 0 };
    e.docs++;
    e.bytes += Buffer.byteLength(d.text);
    by.set(d.category, e);
  }
  return [...by.entries()].map(([category, e]) => ({
    category,
    docs: e.docs,
    MB: +(e.bytes / MB).toFixed(2),
  }));
}
