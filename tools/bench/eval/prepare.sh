#!/usr/bin/env bash
# Dev machine: puts into .gpu/ what tools/bench/eval/run-gpu.sh needs on a GPU machine (no Node,
# no node_modules, no network): Node.js and the Node-API headers (as tools/gpu/prepare.sh does),
# `pnpm eval` bundled into one file, the Llama 2 tokenizer.model and synthetic task data.
# The bundles are built from the packages' sources (the @tinyllama/source condition), so they
# never carry a stale dist/.
# Usage: bash tools/bench/eval/prepare.sh [docsPerTask=500]
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
carry=/work/shared/gpu/prepare-carry.sh
[ -f "$carry" ] || carry="$root/../shared/gpu/prepare-carry.sh"
bash "$carry" >/dev/null
mkdir -p .gpu/headers/node-api-headers .gpu/headers/node-addon-api
cp packages/kernels/node_modules/node-api-headers/include/*.h .gpu/headers/node-api-headers/
cp packages/kernels/node_modules/node-addon-api/*.h .gpu/headers/node-addon-api/
# zstd-napi (native, absent there) stays external: the data package loads it only on a .zst read.
tools/node_modules/.bin/esbuild packages/eval/src/cli.ts --bundle --platform=node --format=esm \
  --target=node20 --log-level=warning --outfile=.gpu/eval-cli.mjs --conditions=@tinyllama/source \
  --external:zstd-napi \
  --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);"
tools/node_modules/.bin/esbuild tools/bench/eval/profile-forward.mjs --bundle --platform=node --format=esm \
  --target=node20 --log-level=warning --outfile=.gpu/profile-forward.mjs --external:zstd-napi \
  --conditions=@tinyllama/source \
  --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);"
tok=/work/shared/fixtures/llama2-tokenizer.model
[ -f "$tok" ] || tok="$root/../shared/fixtures/llama2-tokenizer.model"
cp "$tok" .gpu/llama2-tokenizer.model
rm -rf .gpu/eval-data
node tools/bench/eval/make-bench-data.mjs .gpu/eval-data "${1:-500}"
du -sh .gpu
