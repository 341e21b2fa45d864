// Long-lived Python SentencePiece process over JSON lines.
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = join(here, "..", "..", "..", "..");
export const MODEL = join(ROOT, "packages/tokenizer/src/testdata/llama2-tokenizer.model");
/** @typedef {{ ids: number[][], dec: string[] }} OracleReply SentencePiece's ids and decodes */

export class Oracle {
  constructor(model = MODEL) {
    this.p = spawn("python3", [join(here, "sp_server.py"), model], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    this.rl = createInterface({ input: this.p.stdout, crlfDelay: Infinity });
    /** @type {((reply: OracleReply) => void)[]} */
    this.waiting = [];
    this.rl.on("line", (l) => this.waiting.shift()?.(JSON.parse(l)));
  }
  /**
   * @param {object} obj one request
   * @returns {Promise<OracleReply>}
   */
  req(obj) {
    return new Promise((res) => {
      this.waiting.push(res);
      this.p.stdin.write(`${JSON.stringify(obj)}\n`);
    });
  }
  /** @param {string[]} texts */
  encode(texts, dec = true) {
    return this.req({ op: "enc", texts, dec });
  }
  /** @param {number[][]} ids */
  decode(ids) {
    return this.req({ op: "dec", ids });
  }
  close() {
    this.p.stdin.end(JSON.stringify({ op: "bye" }) + "\n");
  }
}
/** @param {string} s */
export function wellFormed(s) {
  // each lone surrogate -> U+FFFD
  let out = "";
  let last = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdfff) {
      if (c <= 0xdbff && i + 1 < s.length) {
        const d = s.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          i++;
          continue;
        }
      }
      out += s.slice(last, i) + "\ufffd";
      last = i + 1;
    }
  }
  return last === 0 ? s : out + s.slice(last);
}
/**
 * @param {ArrayLike<number>} a
 * @param {ArrayLike<number>} b
 */
export function eq(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
