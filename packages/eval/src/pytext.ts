/**
 * Python `str` semantics the harness's templates rely on. The task code of lm-evaluation-harness
 * is Python: `strip()` uses `str.isspace()` (a different set from JavaScript's `trim()`), `len()`
 * and slicing count code points (not UTF-16 units), and `capitalize()` title-cases the first
 * character (not upper-cases: ß -> Ss, ǆ -> ǅ) and lower-cases the rest.
 * Getting any of these wrong changes the strings, hence the tokens, hence the scores.
 */

/** Code points for which Python's `str.isspace()` is true (Unicode White_Space + bidi B/S/WS). */
const PY_WHITESPACE = new Set<number>([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001,
  0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f,
  0x205f, 0x3000,
]);

export function isPySpace(ch: string): boolean {
  return PY_WHITESPACE.has(ch.codePointAt(0) ?? -1);
}

/** Python `s.rstrip()`. All whitespace code points are in the BMP, so UTF-16 indexing is safe. */
export function pyRstrip(s: string): string {
  let end = s.length;
  while (end > 0 && PY_WHITESPACE.has(s.charCodeAt(end - 1))) end--;
  return s.slice(0, end);
}

/** Python `s.lstrip()`. */
export function pyLstrip(s: string): string {
  let start = 0;
  while (start < s.length && PY_WHITESPACE.has(s.charCodeAt(start))) start++;
  return s.slice(start);
}

/** Python `s.strip()`. */
export function pyStrip(s: string): string {
  return pyLstrip(pyRstrip(s));
}

/** Python `len(s)`: the number of code points. */
export function pyLen(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Python `s[:-1]`: drops the last code point (not the last UTF-16 unit). */
export function dropLastCodePoint(s: string): string {
  if (s.length === 0) return s;
  const last = s.codePointAt(s.length - 2);
  const isPair = s.length >= 2 && last !== undefined && last > 0xffff;
  return s.slice(0, isPair ? -2 : -1);
}

function splitFirstCodePoint(s: string): [string, string] {
  const first = s.codePointAt(0);
  if (first === undefined) return ["", ""];
  const width = first > 0xffff ? 2 : 1;
  return [s.slice(0, width), s.slice(width)];
}

/**
 * Titlecase letters (Unicode category Lt: the digraphs ǅ ǈ ǋ ǲ and the Greek letters with
 * prosgegrammeni), keyed by their lower- and uppercase forms and by themselves: the titlecase
 * of "ǆ", "Ǆ" and "ǅ" is "ǅ", where uppercase gives "Ǆ".
 */
const TITLECASE_LETTER = (() => {
  const map = new Map<string, string>();
  for (let cp = 0x1c4; cp <= 0x1ffc; cp++) {
    const ch = String.fromCodePoint(cp);
    if (!/\p{Lt}/u.test(ch)) continue;
    map.set(ch, ch);
    map.set(ch.toLowerCase(), ch);
    const upper = ch.toUpperCase();
    if ([...upper].length === 1) map.set(upper, ch);
  }
  return map;
})();

/** SpecialCasing.txt's titlecase mappings that are neither the uppercase nor a single letter. */
const TITLECASE_SPECIAL: Record<string, string> = {
  "\u00df": "Ss",
  "\ufb00": "Ff",
  "\ufb01": "Fi",
  "\ufb02": "Fl",
  "\ufb03": "Ffi",
  "\ufb04": "Ffl",
  "\ufb05": "St",
  "\ufb06": "St",
  "\u0587": "\u0535\u0582",
  "\ufb13": "\u0544\u0576",
  "\ufb14": "\u0544\u0565",
  "\ufb15": "\u0544\u056b",
  "\ufb16": "\u054e\u0576",
  "\ufb17": "\u0544\u056d",
};

/**
 * Python's `str.title()` of one code point (what `capitalize()` applies to the first one since
 * Python 3.8). The Greek letters with ypogegrammeni whose uppercase spells the iota out
 * (ᾲ -> ᾺΙ) keep it as U+0345 in titlecase (Ὰͅ).
 */
function titlecase(ch: string): string {
  const single = TITLECASE_LETTER.get(ch) ?? TITLECASE_SPECIAL[ch];
  if (single !== undefined) return single;
  const cp = ch.codePointAt(0)!;
  // Georgian Mkhedruli: Unicode 11 gave it uppercase (Mtavruli) but kept its titlecase itself
  if ((cp >= 0x10d0 && cp <= 0x10fa) || (cp >= 0x10fd && cp <= 0x10ff)) return ch;
  const upper = ch.toUpperCase();
  if (cp >= 0x1f00 && cp <= 0x1fff && upper.length > 1 && upper.endsWith("\u0399")) {
    return upper.slice(0, -1) + "\u0345";
  }
  return upper;
}

/**
 * Python `s.capitalize()` (3.8+): the first character title-cased, the rest lower-cased with
 * the whole string as context (a final sigma after a cased first letter becomes ς).
 */
export function pyCapitalize(s: string): string {
  const [head] = splitFirstCodePoint(s);
  return titlecase(head) + s.toLowerCase().slice(head.toLowerCase().length);
}

/** `s[0].lower() + s[1:]` (xcopa's convert_choice). Throws like Python on an empty string. */
export function lowerFirst(s: string): string {
  if (s.length === 0) throw new Error("cannot lower-case the first character of an empty string");
  const [head, tail] = splitFirstCodePoint(s);
  return head.toLowerCase() + tail;
}
