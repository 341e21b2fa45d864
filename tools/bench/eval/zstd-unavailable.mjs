// Stand-in for zstd-napi in the GPU bundle of `pnpm eval` (bundle.sh): the GPU machines have no
// node_modules, and eval never reads .zst files there. Using it fails loudly instead of silently.
export class DecompressStream {
  constructor() {
    throw new Error(
      "zstd is not available in the GPU bundle of pnpm eval; decompress the inputs first",
    );
  }
}
export class CompressStream extends DecompressStream {}
export default { DecompressStream, CompressStream };
