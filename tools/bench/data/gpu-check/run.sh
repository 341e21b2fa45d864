#!/bin/bash
# On the GPU machine, in out/device: pyarrow + numpy checks, then the throughput bench on 1
# worker (best of 3) and on 10 workers. Results go to $OUT (or ./results).
set -uo pipefail
out=${OUT:-results}; mkdir -p "$out"
xz -dc node.xz > node && chmod +x node
./node --version; nproc
python3 check.py; echo "check.py exit $?"
mkdir -p /tmp/cw && cp -r corpus-work/corpus /tmp/cw/ && xz -dc corpus-work/texts.json.xz > /tmp/cw/texts.json
export BENCH_REQUIRE_FROM=$PWD/package.json BENCH_PREPARE=$PWD/dist/cli/prepare.js BENCH_TOKENIZER=$PWD/dist/cli/tokenizer.js
./node bench.mjs --reuse /tmp/cw --repeat 3 --workers 1 --json "$out/bench-1w.json"
./node bench.mjs --reuse /tmp/cw --repeat 2 --workers 10 --json "$out/bench-10w.json"
