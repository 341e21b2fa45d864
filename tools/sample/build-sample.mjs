#!/usr/bin/env node
// Builds packages/data/sample: a few MB of real, openly licensed text from Debian packages in
// the on-disk formats of the four corpora (SlimPajama jsonl.zst with meta, StarCoderData
// parquet, Proof-Pile-2 jsonl.zst, SkyPile jsonl), with planted exact and near duplicates so
// dedup has work to do. Deterministic: same Debian package versions -> same bytes.
//
//   apt-get install debian-handbook debian-reference-zh-cn fortunes-zh libcoq-stdlib
//   node tools/sample/build-sample.mjs [--out packages/data/sample]
//
// Provenance and licences are written to <out>/README.md by hand (see that file); this
// script prints the package versions it used so they can be recorded there.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const outArg = process.argv.indexOf("--out");
const out =
  (outArg > 0 ? process.argv[outArg + 1] : undefined) ?? join(root, "packages/data/sample");
// zstd-napi and hyparquet-writer are dependencies of @tinyllama/data: resolve them from there.
const requireData = createRequire(join(root, "packages/data/package.json"));
const { compress } = requireData("zstd-napi");
const { parquetWriteBuffer } = await import(
  pathToFileURL(requireData.resolve("hyparquet-writer")).href
);

const need = {
  "debian-handbook": "/usr/share/doc/debian-handbook/html/en-US",
  "debian-reference-zh-cn": "/usr/share/debian-reference",
  "fortunes-zh": "/usr/share/games/fortunes/tang300.u8",
  "libcoq-stdlib": "/usr/lib/ocaml/coq/theories",
};
for (const [_pkg, path] of Object.entries(need)) {
  if (!existsSync(path)) {
    console.error(`missing ${path}: apt-get install ${Object.keys(need).join(" ")}`);
    process.exit(1);
  }
}
const pyLib = ["/usr/lib/python3.11", "/usr/lib/python3.12", "/usr/lib/python3.13"].find(
  existsSync,
);
if (!pyLib) {
  console.error("missing Python standard library sources (/usr/lib/python3.x)");
  process.exit(1);
}
/** @param {string} pkg */
const version = (pkg) => {
  try {
    return execFileSync("dpkg-query", ["-W", `-f=\${Version}`, pkg], { encoding: "utf8" });
  } catch {
    return "unknown";
  }
};

// --- deterministic helpers -----------------------------------------------------------------
let seed = 20240101;
const rand = () => {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
};
/** @param {number} n */
const pick = (n) => Math.floor(rand() * n);
/** @type {Record<string, string>} */
const entities = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: " ", "#160": " " };
/** @param {string} html */
function htmlToText(html) {
  return html
    .replace(/<(script|style|head)[\s\S]*?<\/\1>/gi, "")
    .replace(/<\/(p|div|h[1-6]|li|pre|tr|table|dt|dd|title)>/gi, "\n\n")
    .replace(/<br\s*\/?>/gi, "\n")
    .replace(/<[^>]+>/g, "")
    .replace(/&(#?\w+);/g, (/** @type {string} */ m, /** @type {string} */ e) =>
      e in entities
        ? (entities[e] ?? m)
        : e.startsWith("#x")
          ? String.fromCodePoint(parseInt(e.slice(2), 16))
          : e.startsWith("#")
            ? String.fromCodePoint(Number(e.slice(1)))
            : m,
    )
    .replace(/[ \t]+/g, " ")
    .replace(/\n[ \t]+/g, "\n")
    .replace(/\n{3,}/g, "\n\n")
    .trim();
}
/** Splits text into documents of roughly `size` characters at paragraph boundaries. */
/** @param {string} text @param {number} size */
function chunkParagraphs(text, size) {
  const paras = text.split(/\n\n+/).filter((p) => p.trim().length > 0);
  const docs = [];
  let cur = [];
  let len = 0;
  for (const p of paras) {
    cur.push(p);
    len += p.length;
    if (len >= size) {
      docs.push(cur.join("\n\n"));
      cur = [];
      len = 0;
    }
  }
  if (len > 200) docs.push(cur.join("\n\n"));
  return docs;
}
/** Near duplicate: a few edits of the kinds real corpora have (Jaccard stays high). */
/** @param {string} doc @param {number} kind */
function nearDuplicate(doc, kind) {
  const paras = doc.split("\n\n");
  switch (kind % 4) {
    case 0: // insertion of boilerplate
      return `${doc}\n\nThis page was last edited on 3 March. Content is available under CC BY-SA 3.0 unless otherwise noted.`;
    case 1: {
      // deletion of one sentence in the middle
      const words = doc.split(" ");
      const at = Math.floor(words.length / 2);
      return [...words.slice(0, at), ...words.slice(at + 12)].join(" ");
    }
    case 2: {
      // swapped paragraphs
      if (paras.length < 3) return `${doc} `;
      const i = 1 + pick(paras.length - 2);
      [paras[i], paras[i - 1]] = [paras[i - 1] ?? "", paras[i] ?? ""];
      return paras.join("\n\n");
    }
    default: // shared header + small typo fixes
      return `Share this article:\n\n${doc.replace(/ the /, " teh ").replace(/ a /, " an ")}`;
  }
}
/** @param {object[]} records */
const zst = (records) =>
  compress(Buffer.from(`${records.map((r) => JSON.stringify(r)).join("\n")}\n`), {
    compressionLevel: 19,
  });
/** @param {string} rel @param {Uint8Array} bytes */
const write = (rel, bytes) => {
  const p = join(out, rel);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, bytes);
  console.log(`${rel.padEnd(62)} ${(bytes.length / 1024).toFixed(0).padStart(6)} KiB`);
};
/** @param {string} dir @param {string} ext */
const walk = (dir, ext) =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(ext))
    .map((e) => join(e.parentPath ?? e.path, e.name))
    .sort();

// replace the corpora, keep README.md (provenance, written by hand)
for (const d of ["slimpajama", "starcoderdata", "proofpile2", "skypile"])
  rmSync(join(out, d), { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const counts = {};
const planted = { exact: 0, near: 0 };
/**
 * @template T
 * @param {T[]} docs @param {number} every
 * @param {(d: T, i: number, kind: "exact" | "near") => T} mk
 */
const plant = (docs, every, mk) => {
  // append exact and near duplicates of every `every`-th document (deterministic)
  /** @type {T[]} */
  const extra = [];
  docs.forEach((d, i) => {
    if (i % every === 0) extra.push(mk(d, i, "exact"));
    if (i % every === 1) extra.push(mk(d, i, "near"));
  });
  const exact = docs.filter((_, i) => i % every === 0).length;
  planted.exact += exact;
  planted.near += extra.length - exact;
  return extra;
};

// --- SlimPajama: debian-handbook (en, fr, de) as Book/Wikipedia-like prose, Python sources as
// the RedPajamaGithub subset the pipeline must drop ------------------------------------------
{
  const langs = { "en-US": 60, "fr-FR": 14, "de-DE": 14 };
  const docs = [];
  for (const [lang, maxPages] of Object.entries(langs)) {
    const pages = walk(`/usr/share/doc/debian-handbook/html/${lang}`, ".html")
      .filter((p) => !p.includes("Common_Content"))
      .slice(0, maxPages);
    for (const page of pages) {
      for (const text of chunkParagraphs(htmlToText(readFileSync(page, "utf8")), 4000)) {
        docs.push({
          text,
          meta: {
            redpajama_set_name: docs.length % 3 === 0 ? "RedPajamaWikipedia" : "RedPajamaBook",
          },
        });
      }
    }
  }
  const github = walk(join(pyLib, "email"), ".py")
    .slice(0, 12)
    .map((p) => ({
      text: readFileSync(p, "utf8"),
      meta: { redpajama_set_name: "RedPajamaGithub" },
    }));
  const dups = plant(docs, 17, (d, i, kind) => ({
    text: kind === "exact" ? d.text : nearDuplicate(d.text, i),
    meta: d.meta,
  }));
  const all = [...docs, ...github, ...dups];
  // interleave deterministically so duplicates land in other files than their originals
  /** @type {(typeof all)[]} */
  const files = [[], [], []];
  all.forEach((d, i) => {
    files[i % 3]?.push(d);
  });
  files.forEach((f, i) => {
    write(`slimpajama/train/chunk1/example_train_${i}.jsonl.zst`, zst(f));
  });
  counts.slimpajama = {
    documents: all.length,
    github: github.length,
    plantedDuplicates: dups.length,
  };
}

// --- StarCoderData: python/, jupyter-scripts-dedup-filtered/, c/ -----------------------------
{
  /** @param {{ path: string, content: string }[]} rows @param {string} repo */
  const repoCols = (rows, repo) => [
    { name: "max_stars_repo_path", data: rows.map((r) => r.path), type: "STRING" },
    { name: "max_stars_repo_name", data: rows.map(() => repo), type: "STRING" },
    { name: "max_stars_count", data: rows.map((_, i) => BigInt(100 + i)), type: "INT64" },
    { name: "id", data: rows.map((_r, i) => `${repo}:${i}`), type: "STRING" },
    { name: "content", data: rows.map((r) => r.content), type: "STRING" },
  ];
  const py = walk(join(pyLib, "json"), ".py")
    .concat(walk(join(pyLib, "importlib"), ".py"), walk(join(pyLib, "concurrent"), ".py"))
    .slice(0, 40)
    .map((p) => ({ path: relative(pyLib, p), content: readFileSync(p, "utf8") }))
    .filter((r) => r.content.length < 60000);
  const pyDups = plant(py, 9, (r, _i, kind) => ({
    path: `fork/${r.path}`,
    content:
      kind === "exact"
        ? r.content
        : `# Copyright (c) a fork\n${r.content.replace(/\n\n/, "\n\n# vendored copy\n")}`,
  }));
  const pyRows = [...py, ...pyDups];
  // several row groups, as pyarrow writes large files
  write(
    "starcoderdata/python/train-00000-of-00001.parquet",
    Buffer.from(
      parquetWriteBuffer({ columnData: repoCols(pyRows, "python/cpython"), rowGroupSize: 16 }),
    ),
  );
  // jupyter-scripts: notebooks exported as scripts ("# In[n]:" cells); built from stdlib modules' top-level blocks
  const nb = walk(join(pyLib, "asyncio"), ".py")
    .slice(0, 20)
    .map((p) => {
      const blocks = readFileSync(p, "utf8").split(/\n(?=def |class |async def )/);
      return {
        path: `${relative(pyLib, p).replace(/\.py$/, ".ipynb")}`,
        content: blocks
          .map((b, i) => `#!/usr/bin/env python\n# coding: utf-8\n\n# In[${i + 1}]:\n\n\n${b}\n`)
          .join("\n"),
      };
    });
  write(
    "starcoderdata/jupyter-scripts-dedup-filtered/train-00000-of-00001.parquet",
    Buffer.from(
      parquetWriteBuffer({ columnData: repoCols(nb, "notebooks/asyncio"), rowGroupSize: 8 }),
    ),
  );
  // glibc's own headers only (libc6-dev, LGPL-2.1+), whatever else is installed
  const libcHeaders = execFileSync("dpkg-query", ["-L", "libc6-dev"], { encoding: "utf8" })
    .split("\n")
    .filter((p) => /^\/usr\/include\/[^/]+\.h$/.test(p))
    .sort();
  const c = libcHeaders
    .slice(0, 50)
    .map((p) => ({ path: relative("/usr/include", p), content: readFileSync(p, "utf8") }))
    .filter((r) => r.content.length < 40000);
  write(
    "starcoderdata/c/train-00000-of-00001.parquet",
    Buffer.from(parquetWriteBuffer({ columnData: repoCols(c, "glibc/include"), rowGroupSize: 16 })),
  );
  counts.starcoderdata = {
    python: pyRows.length,
    jupyter: nb.length,
    c: c.length,
    plantedDuplicates: pyDups.length,
  };
}

// --- Proof-Pile-2: algebraic-stack coq + python, open-web-math from Coq doc comments ---------
{
  const coqFiles = walk("/usr/lib/ocaml/coq/theories", ".v")
    .filter((_, i) => i % 5 === 0)
    .slice(0, 90);
  const coq = coqFiles
    .map((p) => ({
      text: readFileSync(p, "utf8"),
      meta: { path: relative("/usr/lib/ocaml/coq", p) },
    }))
    .filter((d) => d.text.length < 50000);
  const coqDups = plant(coq, 11, (d, i, kind) => ({
    text: kind === "exact" ? d.text : nearDuplicate(d.text, i),
    meta: d.meta,
  }));
  write("proofpile2/algebraic-stack/train/coq0000.jsonl.zst", zst([...coq, ...coqDups]));
  const pyMath = [
    "fractions.py",
    "statistics.py",
    "decimal.py",
    "numbers.py",
    "random.py",
    "colorsys.py",
  ]
    .map((f) => join(pyLib, f))
    .filter(existsSync)
    .map((p) => ({ text: readFileSync(p, "utf8"), meta: { path: relative(pyLib, p) } }));
  write("proofpile2/algebraic-stack/train/python0000.jsonl.zst", zst(pyMath));
  // doc comments (** ... *) of the Coq library: mathematical prose with notation
  const web = [];
  for (const p of walk("/usr/lib/ocaml/coq/theories", ".v")) {
    const comments = [...readFileSync(p, "utf8").matchAll(/\(\*\*([\s\S]*?)\*\)/g)]
      .map((m) => (m[1] ?? "").trim())
      .filter((c) => c.length > 80);
    if (comments.join("\n\n").length > 600)
      web.push({
        text: comments.join("\n\n"),
        meta: { url: `coq:theories/${relative("/usr/lib/ocaml/coq/theories", p)}` },
      });
    if (web.length >= 120) break;
  }
  write("proofpile2/open-web-math/train/shard-0000.jsonl.zst", zst(web));
  counts.proofpile2 = {
    coq: coq.length + coqDups.length,
    python: pyMath.length,
    openWebMath: web.length,
    plantedDuplicates: coqDups.length,
  };
}

// --- SkyPile: Chinese text from debian-reference-zh-cn, the zh-CN handbook and fortunes-zh ---
{
  const docs = [];
  for (const p of walk("/usr/share/debian-reference", ".zh-cn.html")) {
    for (const text of chunkParagraphs(htmlToText(readFileSync(p, "utf8")), 2500))
      docs.push({ text });
  }
  for (const p of walk("/usr/share/doc/debian-handbook/html/zh-CN", ".html")
    .filter((p) => !p.includes("Common_Content"))
    .slice(0, 10)) {
    for (const text of chunkParagraphs(htmlToText(readFileSync(p, "utf8")), 2500))
      docs.push({ text });
  }
  const esc = String.fromCharCode(27);
  const strip = (/** @type {string} */ s) => s.replace(new RegExp(`${esc}\\[[0-9;]*m`, "g"), "");
  for (const f of ["tang300.u8", "song100.u8"]) {
    const poems = strip(readFileSync(`/usr/share/games/fortunes/${f}`, "utf8"))
      .split(/\n%\n/)
      .map((s) => s.trim())
      .filter(Boolean);
    for (let i = 0; i < poems.length; i += 12)
      docs.push({ text: poems.slice(i, i + 12).join("\n\n") });
  }
  const limited = docs.slice(0, 700);
  const dups = plant(limited, 13, (d, _i, kind) => ({
    text: kind === "exact" ? d.text : `${d.text}\n\n本文来自网络，版权归原作者所有。`,
  }));
  const all = [...limited, ...dups];
  const half = Math.ceil(all.length / 2);
  write(
    "skypile/data/2023-14_zh_head_0000.jsonl",
    Buffer.from(
      `${all
        .slice(0, half)
        .map((d) => JSON.stringify(d))
        .join("\n")}\n`,
    ),
  );
  write(
    "skypile/data/2023-14_zh_middle_0000.jsonl",
    Buffer.from(
      `${all
        .slice(half)
        .map((d) => JSON.stringify(d))
        .join("\n")}\n`,
    ),
  );
  counts.skypile = { documents: all.length, plantedDuplicates: dups.length };
}

const versions = Object.fromEntries(
  [...Object.keys(need), "libpython3.11-stdlib", "libc6-dev"].map((p) => [p, version(p)]),
);
writeFileSync(
  join(out, "BUILD-INFO.json"),
  `${JSON.stringify({ builtBy: "tools/sample/build-sample.mjs", pythonLib: pyLib, debianPackages: versions, counts, planted }, null, 2)}\n`,
);
console.log(JSON.stringify({ versions, counts }, null, 2));
