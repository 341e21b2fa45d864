#!/bin/bash
# Builds out/device/: what the GPU machine needs to check @tinyllama/data against pyarrow and
# numpy (check.py) and to run tools/bench/data/bench.mjs without node_modules: a bundled
# parquet reader, the prepare/task CLIs and the tokenizer bundled by esbuild, zstd-napi's
# binary, this machine's node (xz), sample shards + expect.json, two bench corpora, and the
# reference preparation (reference/litgpt_prepare.py, the Llama 2 tokenizer.model) for vs-reference.mjs.
# Then: run `cd out/device && bash run.sh` there (carry out/device).
set -euo pipefail
root=$(cd "$(dirname "$0")/../../../.." && pwd)
cd "$root"
esb=$(ls node_modules/.pnpm/@esbuild+linux-x64@*/node_modules/@esbuild/linux-x64/bin/esbuild | head -1)
D=out/device
rm -rf $D && mkdir -p $D/dist/cli $D/dist/vocab $D/node_modules
bundle() { "$esb" "$1" --bundle --platform=node --format=esm --target=node20 --external:zstd-napi --external:typescript --conditions=@tinyllama/source --log-level=warning --outfile="$2"; }
bundle tools/bench/data/gpu-check/read-parquet.ts $D/check.mjs
bundle packages/data/src/cli/prepare.ts $D/dist/cli/prepare.js
bundle packages/data/src/cli/task.ts $D/dist/cli/task.js
bundle packages/tokenizer/src/index.ts $D/dist/cli/tokenizer.js
bundle packages/data/src/index.ts $D/dist/cli/data.js
cp packages/tokenizer/vocab/llama2.tltk.gz $D/dist/vocab/
cp -rL packages/data/node_modules/zstd-napi $D/node_modules/
rm -rf $D/node_modules/zstd-napi/{deps,src,build/Release/obj.target,build/Release/zstd.a}
echo '{"type":"module"}' > $D/package.json
cp tools/bench/data/gpu-check/check.py tools/bench/data/gpu-check/run.sh tools/bench/data/bench.mjs tools/bench/data/marginal.mjs tools/bench/data/vs-reference.mjs tools/bench/data/steady.mjs tools/bench/data/floor.mjs tools/bench/data/report.mjs $D/
mkdir -p $D/reference && cp tools/bench/data/reference/litgpt_prepare.py $D/reference/
cp ../shared/fixtures/llama2-tokenizer.model $D/
xz -T2 -6 -c "$(readlink -f "$(command -v node)")" > $D/node.xz
(cd $D && node "$root/packages/data/dist/cli/prepare.js" --output data >/dev/null && node "$root/tools/bench/data/gpu-check/expect.mjs" > expect.json)
# Two corpora, 30 MB and 3 MB of text (the small one for marginal.mjs's per-byte cost).
corpus() { # MB, directory under $D
  local kept
  kept=$(node tools/bench/data/bench.mjs --mb "$1" --repeat 1 --keep | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).keptCorpus))')
  mkdir -p "$D/$2" && cp -r "$kept/corpus" "$D/$2/" && xz -T2 -6 -c "$kept/texts.json" > "$D/$2/texts.json.xz"
  rm -rf "$kept"
}
corpus 30 corpus-work
corpus 3 corpus-small
du -sh $D
