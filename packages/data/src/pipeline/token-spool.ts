/**
 * Token spool: the tokens of one task's documents, written by the signatures stage (which
 * already has every document parsed) so the pack stage never reads, decompresses, parses or
 * tokenizes the input a second time; it only drops the duplicates and packs.
 *   <work>/tokens/task-T.bin  uint16 tokens of every kept document (its tokens + EOS)
 *   <work>/tokens/task-T.idx  uint32 [docIndex, tokenCount, split] per document, in order
 * Both are written under temporary names and renamed by close(), so a spool either is
 * complete or absent.
 */
import { type FileHandle, mkdir, open, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { maxEncodedLength } from "@tinyllama/tokenizer";
import { RecordReader, tempSuffix } from "../dedup/files.js";
import { assertUint16Ids, type PipelineTokenizer } from "./tokenizer.js";

export const spoolPaths = (work: string, task: number) => {
  const base = join(work, "tokens", `task-${String(task).padStart(5, "0")}`);
  return { tokens: `${base}.bin`, index: `${base}.idx` };
};

export class TokenSpoolWriter {
  private tokens = new Uint16Array(1 << 20);
  private fill = 0;
  private index = new Uint32Array(3 * 4096);
  private indexFill = 0;
  private constructor(
    private readonly paths: { tokens: string; index: string },
    private readonly tokFh: FileHandle,
    private readonly idxFh: FileHandle,
  ) {}

  static async open(work: string, task: number): Promise<TokenSpoolWriter> {
    const paths = spoolPaths(work, task);
    await mkdir(dirname(paths.tokens), { recursive: true });
    const tmp = tempSuffix();
    return new TokenSpoolWriter(
      paths,
      await open(paths.tokens + tmp, "w"),
      await open(paths.index + tmp, "w"),
    );
  }

  /** Seconds spent writing buffers to disk (the rest of appendText is tokenizing). */
  writeSeconds = 0;

  /**
   * Tokenizes one document straight into the buffer: its ids, then EOS. Flushes first when
   * the worst case (`maxEncodedLength`) might not fit; a text whose worst case exceeds the
   * whole buffer gets a larger buffer.
   */
  async appendText(
    docIndex: number,
    split: number,
    text: string,
    tok: Pick<PipelineTokenizer, "encodeInto" | "identity">,
  ): Promise<void> {
    assertUint16Ids(tok, "token spool", "the spool (and LITPKDS dtype 8)");
    const bound = maxEncodedLength(text.length);
    if (this.fill + bound > this.tokens.length) {
      await this.flushTokens();
      if (bound > this.tokens.length) this.tokens = new Uint16Array(bound);
    }
    const n = tok.encodeInto(text, this.tokens, this.fill);
    this.fill += n;
    if (this.indexFill + 3 > this.index.length) await this.flushIndex();
    this.index[this.indexFill++] = docIndex;
    this.index[this.indexFill++] = n;
    this.index[this.indexFill++] = split;
  }

  private async flushTokens(): Promise<void> {
    if (this.fill === 0) return;
    const t = performance.now();
    await this.tokFh.write(new Uint8Array(this.tokens.buffer, 0, this.fill * 2));
    this.fill = 0;
    this.writeSeconds += (performance.now() - t) / 1000;
  }

  private async flushIndex(): Promise<void> {
    if (this.indexFill === 0) return;
    const t = performance.now();
    await this.idxFh.write(new Uint8Array(this.index.buffer, 0, this.indexFill * 4));
    this.indexFill = 0;
    this.writeSeconds += (performance.now() - t) / 1000;
  }

  async close(): Promise<void> {
    await this.flushTokens();
    await this.flushIndex();
    const tmp = tempSuffix();
    for (const fh of [this.tokFh, this.idxFh]) {
      await fh.sync();
      await fh.close();
    }
    await rename(this.paths.tokens + tmp, this.paths.tokens);
    await rename(this.paths.index + tmp, this.paths.index);
  }
}

/** Streams a spool back: one entry per document, its tokens (+ EOS) as a view. */
export async function* readTokenSpool(
  work: string,
  task: number,
): AsyncGenerator<{ docIndex: number; split: number; tokens: Uint16Array }> {
  const paths = spoolPaths(work, task);
  const index = new RecordReader(paths.index, 3);
  const fh = await open(paths.tokens, "r");
  let buf = new Uint16Array(1 << 20);
  let len = 0; // tokens in buf
  let pos = 0; // next unread token in buf
  let fileOffset = 0;
  try {
    for (let rec = index.next(); rec; rec = index.next()) {
      const docIndex = rec[0] as number;
      const count = rec[1] as number;
      const split = rec[2] as number;
      if (len - pos < count) {
        // move the unread rest to the front, grow if one document is larger than the buffer
        const rest = buf.subarray(pos, len);
        const next = count > buf.length ? new Uint16Array(count) : buf;
        next.set(rest, 0);
        buf = next;
        len = rest.length;
        pos = 0;
        const view = new Uint8Array(buf.buffer, len * 2, (buf.length - len) * 2);
        let got = 0;
        while (len + got / 2 < count) {
          const { bytesRead } = await fh.read(view, got, view.length - got, fileOffset + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        fileOffset += got;
        len += got / 2;
        if (len < count)
          throw new Error(
            `${paths.tokens}: truncated (document ${docIndex} needs ${count} tokens)`,
          );
      }
      yield { docIndex, split, tokens: buf.subarray(pos, pos + count) };
      pos += count;
    }
  } finally {
    index.close();
    await fh.close();
  }
}

export async function removeTokenSpool(work: string, task: number): Promise<void> {
  const paths = spoolPaths(work, task);
  await rm(paths.tokens, { force: true });
  await rm(paths.index, { force: true });
}
