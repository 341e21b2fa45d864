#!/bin/bash
# On the GPU machine, in out/device (built by build.sh; carry out/device, no .gpu needed).
# Parts (default: check bench): check = pyarrow + numpy checks; bench = the throughput bench on
# 1 worker (best of 3) and on 10 workers; marginal = tools/bench/data/marginal.mjs (per-byte cost
# from the 3 MB and 30 MB corpora, with and without dedup) and bench.mjs on every core; flags =
# bench.mjs with V8's background threads (default) against BENCH_NODE_FLAGS=--single-threaded,
# alternated, on 1 worker and on every core; reference = vs-reference.mjs (our pipeline against
# TinyLlama's own preparation with both lit-gpt tokenizer backends, 30 MB and 3 MB corpora);
# steady = steady.mjs (warm workers: the last of 4 passes in one process, 3 rounds); floor =
# floor.mjs (tokenizing against the least any pipeline must read, write and hash, 10 rounds).
# Results go to $OUT (or ./results).
set -uo pipefail
out=${OUT:-results}; mkdir -p "$out"
parts=${*:-check bench}
want() { case " $parts " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
xz -dc node.xz > node && chmod +x node
./node --version; nproc; lscpu | grep -E "Model name|^CPU\(s\)|MHz" | head -4
if want check; then python3 check.py; echo "check.py exit $?"; fi
unpack() { mkdir -p "$2" && cp -r "$1/corpus" "$2/" && xz -dc "$1/texts.json.xz" > "$2/texts.json"; }
unpack corpus-work /tmp/cw
export BENCH_REQUIRE_FROM=$PWD/package.json BENCH_PREPARE=$PWD/dist/cli/prepare.js BENCH_TOKENIZER=$PWD/dist/cli/tokenizer.js BENCH_DATA=$PWD/dist/cli/data.js
if want bench; then
  ./node bench.mjs --reuse /tmp/cw --repeat 3 --workers 1 --json "$out/bench-1w.json"
  ./node bench.mjs --reuse /tmp/cw --repeat 2 --workers 10 --json "$out/bench-10w.json"
fi
if want marginal; then
  unpack corpus-small /tmp/cws
  ./node marginal.mjs --small /tmp/cws --large /tmp/cw --rounds 4 --repeat 3 --json "$out/marginal.json"
  ./node marginal.mjs --small /tmp/cws --large /tmp/cw --rounds 4 --repeat 3 --no-dedup --json "$out/marginal-nodedup.json"
  ./node bench.mjs --reuse /tmp/cw --repeat 2 --workers "$(nproc)" --json "$out/bench-allcores.json"
fi
if want reference; then
  unpack corpus-small /tmp/cws
  ./node vs-reference.mjs --corpus /tmp/cw --small /tmp/cws --rounds "${REF_ROUNDS:-3}" --sp-model "$PWD/llama2-tokenizer.model" --json "$out/vs-reference.json"
fi
if want steady; then
  ./node bench.mjs --reuse /tmp/cw --repeat 1 >/dev/null # writes the config and pipeline-order texts
  ./node steady.mjs --corpus /tmp/cw --passes 4 --rounds 3 --json "$out/steady.json"
fi
if want floor; then
  ./node bench.mjs --reuse /tmp/cw --repeat 1 >/dev/null # writes the pipeline-order texts
  ./node floor.mjs --corpus /tmp/cw --rounds 10 --json "$out/floor.json"
fi
if want flags; then
  for r in 1 2 3; do
    for f in "" --single-threaded; do
      BENCH_NODE_FLAGS="$f" ./node bench.mjs --reuse /tmp/cw --repeat 2 --workers 1 --json "$out/flags-1w-r$r${f:+-st}.json" >/dev/null
    done
  done
  for f in "" --single-threaded; do
    BENCH_NODE_FLAGS="$f" ./node bench.mjs --reuse /tmp/cw --repeat 2 --workers "$(nproc)" --json "$out/flags-allcores${f:+-st}.json" >/dev/null
  done
  ./node -e 'const fs=require("fs");for(const f of fs.readdirSync(process.argv[1]).filter(n=>n.startsWith("flags-")).sort()){const d=JSON.parse(fs.readFileSync(process.argv[1]+"/"+f));console.log(f,d["pipeline CPU-seconds in tasks (best run)"],d["tokenizer-only CPU-seconds, texts in the pipeline'"'"'s order"],d["pipeline cost / tokenizer-only cost, CPU time, pipeline'"'"'s order"],d.wallSeconds)}' "$out"
fi
