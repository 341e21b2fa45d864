#!/usr/bin/env bash
# Dev machine: bundles the trainer's compare dump (packages/trainer/src/compare/dump.ts) into
# .gpu/trainer-dump.mjs for the GPU machine (no node_modules there). Run tools/gpu/prepare.sh
# first (it carries Node.js and the Node-API headers the kernels build needs).
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
mkdir -p .gpu
tools/node_modules/.bin/esbuild packages/trainer/src/compare/dump.ts --bundle --platform=node \
  --format=esm --target=node20 --conditions=@tinyllama/source --log-level=warning \
  --outfile=.gpu/trainer-dump.mjs
ls -la .gpu/trainer-dump.mjs
