#!/bin/bash
# Builds out/device/: what the GPU machine needs to check @tinyllama/data against pyarrow and
# numpy (check.py) and to run tools/bench/data/bench.mjs without node_modules: a bundled
# parquet reader, the prepare/task CLIs and the tokenizer bundled by esbuild, zstd-napi's
# binary, this machine's node (xz), sample shards + expect.json, and a bench corpus.
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
cp packages/tokenizer/vocab/llama2.tltk.gz $D/dist/vocab/
cp -rL packages/data/node_modules/zstd-napi $D/node_modules/
rm -rf $D/node_modules/zstd-napi/{deps,src,build/Release/obj.target,build/Release/zstd.a}
echo '{"type":"module"}' > $D/package.json
cp tools/bench/data/gpu-check/check.py tools/bench/data/gpu-check/run.sh tools/bench/data/bench.mjs $D/
xz -T2 -6 -c "$(readlink -f "$(command -v node)")" > $D/node.xz
(cd $D && node "$root/packages/data/dist/cli/prepare.js" --output data >/dev/null && node "$root/tools/bench/data/gpu-check/expect.mjs" > expect.json)
w=$(mktemp -d)
node tools/bench/data/bench.mjs --mb 30 --repeat 1 --keep --json /dev/null >/dev/null
kept=$(ls -dt /tmp/tinyllama-data-bench-* | head -1)
mkdir -p $D/corpus-work && cp -r "$kept/corpus" $D/corpus-work/ && xz -T2 -6 -c "$kept/texts.json" > $D/corpus-work/texts.json.xz
rm -rf "$kept" "$w"
du -sh $D
