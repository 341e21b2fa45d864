// Stand-in for zstd-napi (a native module) in the GPU bundle of the trainer CLI: training reads
// LITPKDS shards and never decompresses .zst, so the data package's reader is never called.
export class DecompressStream {
  constructor() {
    throw new Error(
      "zstd-napi is not available in the GPU bundle of the trainer (no .zst input there)",
    );
  }
}
