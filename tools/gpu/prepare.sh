#!/usr/bin/env bash
# Dev machine: puts into .gpu/ everything tools/gpu/run.sh needs on a GPU machine (which has
# no Node.js, no node_modules and no network): Node.js (shared/gpu/prepare-carry.sh), the
# Node-API headers, and the check/bench entry points bundled into single files by esbuild.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
carry=/work/shared/gpu/prepare-carry.sh
[ -f "$carry" ] || carry="$root/../shared/gpu/prepare-carry.sh"
bash "$carry" >/dev/null
kernels=packages/kernels
mkdir -p .gpu/headers/node-api-headers .gpu/headers/node-addon-api
cp "$kernels"/node_modules/node-api-headers/include/*.h .gpu/headers/node-api-headers/
cp "$kernels"/node_modules/node-addon-api/*.h .gpu/headers/node-addon-api/
esbuild=tools/node_modules/.bin/esbuild
for entry in tools/gpu/kernels-check.ts:kernels-check tools/bench/kernels/bench.ts:kernels-bench \
  tools/gpu/distributed-check.ts:distributed-check; do
  "$esbuild" "${entry%%:*}" --bundle --platform=node --format=esm --target=node20 \
    --log-level=warning --outfile=".gpu/${entry##*:}.mjs"
done
du -sh .gpu
