import ref from "llama-tokenizer-js";
import { LlamaTokenizer } from "./dist/index.js";

const a = await LlamaTokenizer.load();
const b = await LlamaTokenizer.load("/work/shared/fixtures/llama2-tokenizer.model");
console.log(
  JSON.stringify(a.model.pieces[30143]),
  JSON.stringify(b.model.pieces[30143]),
  JSON.stringify(ref.vocabById[30143]),
);
let d = 0;
for (let i = 0; i < 32000; i++)
  if (a.model.pieces[i] !== b.model.pieces[i]) {
    if (d++ < 5)
      console.log(i, JSON.stringify(a.model.pieces[i]), JSON.stringify(b.model.pieces[i]));
  }
console.log("diffs", d);
console.log(
  Buffer.from([0xef, 0xbb, 0xbf, 0x41]).toString("utf8", 0, 4).length,
  new TextDecoder().decode(new Uint8Array([0xef, 0xbb, 0xbf, 0x41])).length,
);
