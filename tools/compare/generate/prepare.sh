#!/usr/bin/env bash
# Dev machine: bundles the generation dump into .gpu/generate-dump.mjs (run tools/gpu/prepare.sh
# first: it carries Node.js and the Node-API headers for the kernels build). zstd-napi stays
# external: the trainer imports @tinyllama/data, which loads it only on a .zst read.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
mkdir -p .gpu
tools/node_modules/.bin/esbuild tools/compare/generate/dump.ts --bundle --platform=node --format=esm \
  --target=node20 --conditions=@tinyllama/source --log-level=warning --external:zstd-napi \
  --outfile=.gpu/generate-dump.mjs
du -sh .gpu/generate-dump.mjs
