/**
 * Python `str` semantics the harness's templates rely on. The task code of lm-evaluation-harness
 * is Python: `strip()` uses `str.isspace()` (a different set from JavaScript's `trim()`), `len()`
 * and slicing count code points (not UTF-16 units), and `capitalize()` lower-cases the tail.
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

/** Python `s.capitalize()`: first character upper-cased, the rest lower-cased. */
export function pyCapitalize(s: string): string {
  const [head, tail] = splitFirstCodePoint(s);
  return head.toUpperCase() + tail.toLowerCase();
}

/** `s[0].lower() + s[1:]` (xcopa's convert_choice). Throws like Python on an empty string. */
export function lowerFirst(s: string): string {
  if (s.length === 0) throw new Error("cannot lower-case the first character of an empty string");
  const [head, tail] = splitFirstCodePoint(s);
  return head.toLowerCase() + tail;
}
