// Types for the parts of sentencepiece-js (a dev dependency without typings) the tests use.
declare module "sentencepiece-js" {
  export class SentencePieceProcessor {
    load(path: string): Promise<void>;
    encodeIds(text: string): number[];
    decodeIds(ids: number[]): string;
  }
  const spjs: { SentencePieceProcessor: typeof SentencePieceProcessor };
  export default spjs;
}
