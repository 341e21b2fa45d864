/**
 * Worker thread for encodeBatch: builds a BpeEngine over the SharedArrayBuffer tables it is
 * given (no copy, no rebuild) and answers chunks of texts with concatenated ids + offsets.
 *
 * Replies are copied (structured clone), not transferred: transferring detaches the
 * worker's ArrayBuffer, which invalidates V8's ArrayBufferDetaching protector in this
 * isolate and deoptimises every optimised typed-array function here (mergeSmall, findPair,
 * the word cache...) for the rest of the worker's life. The copy costs less than that
 * (tools/bench/tokenizer/detach.mjs, RESULTS.md).
 */
import { parentPort, workerData } from "node:worker_threads";
import { BpeEngine, type EngineTables } from "./engine.js";

export interface ChunkRequest {
  kind: "encode";
  chunk: number;
  texts: string[];
  bosId: number;
  eosId: number;
}

export interface ChunkReply {
  kind: "encoded";
  chunk: number;
  ids: Int32Array;
  offsets: Int32Array;
}

const engine = new BpeEngine((workerData as { tables: EngineTables }).tables);
const port = parentPort!;

port.on("message", (msg: ChunkRequest) => {
  const out = engine.out;
  out.length = 0;
  const offsets = new Int32Array(msg.texts.length + 1);
  for (let i = 0; i < msg.texts.length; i++) {
    if (msg.bosId >= 0) out.push(msg.bosId);
    engine.encodeInto(msg.texts[i]!);
    if (msg.eosId >= 0) out.push(msg.eosId);
    offsets[i + 1] = out.length;
  }
  const ids = out.ids.slice(0, out.length);
  if (out.ids.length > 1 << 22) out.ids = new Int32Array(1024);
  const reply: ChunkReply = { kind: "encoded", chunk: msg.chunk, ids, offsets };
  port.postMessage(reply);
});
