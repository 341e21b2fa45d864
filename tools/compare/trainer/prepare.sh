#!/usr/bin/env bash
# Dev machine: puts into .gpu/ what run-gpu.sh needs beyond tools/gpu/prepare.sh (run that
# first: it carries Node.js and the Node-API headers for the kernels build):
#   .gpu/trainer-dump.mjs          the compare dump (packages/trainer/src/compare/dump.ts; zstd-napi external too)
#   .gpu/trainer/trainer-cli.mjs   the `pnpm train` CLI, bundled (zstd-napi external: loaded only on a .zst read)
#   .gpu/vocab/llama2.tltk.gz      the tokenizer vocabulary the CLI's shard check loads
#   .gpu/data/                     shards of the bundled sample (pnpm data:prepare)
#   .gpu/tokenizer-expect.json     texts and our ids with BOS, for check_tokenizer.py
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
mkdir -p .gpu/trainer .gpu/vocab
esbuild=tools/node_modules/.bin/esbuild
common=(--bundle --platform=node --format=esm --target=node20 --conditions=@tinyllama/source --log-level=warning)
"$esbuild" packages/trainer/src/compare/dump.ts "${common[@]}" --external:zstd-napi \
  --outfile=.gpu/trainer-dump.mjs
"$esbuild" packages/trainer/src/cli.ts "${common[@]}" \
  --external:zstd-napi --outfile=.gpu/trainer/trainer-cli.mjs
cp packages/tokenizer/vocab/llama2.tltk.gz .gpu/vocab/
if [ ! -f .gpu/data/slimpajama/manifest.json ] || [ ! -f .gpu/data/starcoder/manifest.json ]; then
  npx -y pnpm@12.4.2 run data:prepare --output .gpu/data >/dev/null
fi
node tools/compare/trainer/tokenizer-expect.mjs > .gpu/tokenizer-expect.json
du -sh .gpu/trainer-dump.mjs .gpu/trainer .gpu/vocab .gpu/data
