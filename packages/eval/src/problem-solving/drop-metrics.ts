/**
 * DROP's official answer metrics (drop_eval.py of allenai/allennlp-reading-comprehension,
 * also lm-evaluation-harness's drop task): answers are split on " " and "-", each token
 * lower-cased, stripped of punctuation unless it parses as a float, numbers rewritten as
 * Python's str(float(x)), articles removed, whitespace collapsed. Exact match compares the
 * normalised spans as sets; F1 is bag-of-words F1 per span, spans aligned one to one for the
 * best total (with the rule that a gold span with numbers scores 0 unless a number matches),
 * averaged over the larger number of spans and rounded to 2 decimals. Several gold answers:
 * the maximum of each metric over them.
 */
import { isPySpace } from "../pytext.js";

const PUNCTUATION = new Set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~");
const ARTICLES = /(?<![\p{L}\p{N}_])(a|an|the)(?![\p{L}\p{N}_])/gu;
const PY_FLOAT =
  /^[+-]?((\d(_?\d)*)?\.?\d(_?\d)*([eE][+-]?\d(_?\d)*)?|\d(_?\d)*\.([eE][+-]?\d(_?\d)*)?|inf(inity)?|nan)$/i;

/** Python `s.split()`: runs of whitespace separate, none at the ends. */
function pySplit(s: string): string[] {
  const out: string[] = [];
  let cur = "";
  for (const ch of s) {
    if (isPySpace(ch)) {
      if (cur) out.push(cur);
      cur = "";
    } else cur += ch;
  }
  if (cur) out.push(cur);
  return out;
}

/** Whether Python's float(text) accepts it (surrounding whitespace allowed). */
export function isPyFloat(text: string): boolean {
  const t = pySplit(text);
  return t.length === 1 && PY_FLOAT.test(t[0]!);
}

/** Python's repr(float(text)) for text that isPyFloat. */
export function pyFloatRepr(text: string): string {
  const t = pySplit(text)[0]!.replace(/_/g, "").toLowerCase();
  const x = /^[+-]?nan$/.test(t)
    ? Number.NaN
    : /^[+-]?inf(inity)?$/.test(t)
      ? (t.startsWith("-") ? -1 : 1) * Number.POSITIVE_INFINITY
      : Number(t);
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const abs = Math.abs(x);
  if (abs >= 1e16 || abs < 1e-4) {
    const [mant, exp] = x.toExponential().split("e") as [string, string];
    const e = Number(exp);
    return `${mant}e${e < 0 ? "-" : "+"}${String(Math.abs(e)).padStart(2, "0")}`;
  }
  const s = String(x);
  return s.includes(".") ? s : `${s}.0`;
}

function normalizeToken(token: string): string {
  let t = token.toLowerCase();
  if (!isPyFloat(t)) t = [...t].filter((ch) => !PUNCTUATION.has(ch)).join("");
  if (isPyFloat(t)) t = pyFloatRepr(t);
  t = t.replace(ARTICLES, " ");
  return pySplit(t).join(" ");
}

/** drop_eval's _normalize_answer. */
export function normalizeDropAnswer(text: string): string {
  const parts = text
    .split(/ |-/)
    .map(normalizeToken)
    .filter((p) => pySplit(p).length > 0);
  return parts.join(" ").trim();
}

function bags(spans: readonly string[]) {
  const normalized = spans.map(normalizeDropAnswer);
  return { normalized, bags: normalized.map((s) => new Set(pySplit(s))) };
}

function f1Of(pred: Set<string>, gold: Set<string>): number {
  let inter = 0;
  for (const w of gold) if (pred.has(w)) inter++;
  const precision = pred.size === 0 ? 1 : inter / pred.size;
  const recall = gold.size === 0 ? 1 : inter / gold.size;
  return precision === 0 && recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
}

function numbersMatch(gold: Set<string>, pred: Set<string>): boolean {
  const goldNums = [...gold].filter(isPyFloat);
  if (goldNums.length === 0) return true;
  return goldNums.some((n) => [...pred].some((p) => isPyFloat(p) && p === n));
}

/** Best one-to-one assignment of gold to predicted spans (exhaustive: DROP has few spans). */
function alignBags(pred: Set<string>[], gold: Set<string>[]): number[] {
  const scores = gold.map((g) => pred.map((p) => (numbersMatch(g, p) ? f1Of(p, g) : 0)));
  const best = new Array<number>(Math.max(gold.length, pred.length)).fill(0);
  let bestTotal = -1;
  let bestRows: number[] = [];
  const used = new Array<boolean>(pred.length).fill(false);
  const assign: number[] = [];
  const walk = (gi: number, total: number) => {
    if (gi === gold.length) {
      if (total > bestTotal) {
        bestTotal = total;
        bestRows = assign.slice();
      }
      return;
    }
    let any = false;
    for (let pi = 0; pi < pred.length; pi++) {
      if (used[pi]) continue;
      any = true;
      used[pi] = true;
      assign[gi] = pi;
      walk(gi + 1, total + scores[gi]![pi]!);
      used[pi] = false;
    }
    if (!any || gold.length - gi > pred.length - used.filter(Boolean).length) {
      assign[gi] = -1;
      walk(gi + 1, total);
    }
  };
  walk(0, 0);
  for (const [gi, pi] of bestRows.entries()) if (pi >= 0) best[gi] = scores[gi]![pi]!;
  return best;
}

/**
 * Python's round(x, 2) for x >= 0: the exact binary value rounded to 2 decimals, ties to even.
 * Math.round(x * 100) / 100 differs twice over: x * 100 is itself rounded (0.015 * 100 = 1.5
 * though 0.015 is below 0.015 exactly, so Python gives 0.01) and exact ties go up (0.125 -> 0.13,
 * Python 0.12). toFixed rounds the exact value; the only exact ties are x = odd / 8, where
 * x * 100 is exact and half-even is applied directly.
 */
export function pyRound2(x: number): number {
  const eighths = x * 8;
  if (Number.isInteger(eighths) && eighths % 2 === 1) {
    const lo = Math.floor(x * 100);
    return (lo % 2 === 0 ? lo : lo + 1) / 100;
  }
  return Number(x.toFixed(2));
}

/** drop_eval's get_metrics for one predicted answer (spans) against one gold answer (spans). */
export function dropMetrics(
  predicted: readonly string[],
  gold: readonly string[],
): { em: number; f1: number } {
  const p = bags(predicted);
  const g = bags(gold);
  const setP = new Set(p.normalized);
  const setG = new Set(g.normalized);
  const em =
    setP.size === setG.size &&
    [...setP].every((s) => setG.has(s)) &&
    p.normalized.length === g.normalized.length
      ? 1
      : 0;
  const perBag = alignBags(p.bags, g.bags);
  const f1 = pyRound2(perBag.reduce((a, b) => a + b, 0) / perBag.length);
  return { em, f1 };
}

/** The maximum EM and F1 of a prediction over every gold answer. */
export function dropScore(
  predicted: readonly string[],
  golds: readonly (readonly string[])[],
): { em: number; f1: number } {
  let em = 0;
  let f1 = 0;
  for (const g of golds) {
    const m = dropMetrics(predicted, g);
    em = Math.max(em, m.em);
    f1 = Math.max(f1, m.f1);
  }
  return { em, f1 };
}
