/**
 * GPU-side correctness check of @tinyllama/kernels (bundled by tools/gpu/run.sh; run where
 * the CUDA addon was built). Runs the cross-backend suite (CUDA f32 and bf16 against the CPU
 * backend in f32, poisoned outputs), the native-boundary fuzz on the CUDA addon, a leak check,
 * zero-sized dimensions at every op, the data-error path (out-of-range token id reported by
 * synchronize()), and a bad value of
 * each kernel-choice setting (TINYLLAMA_ATTENTION, _ATTENTION_BWD, _ROW_KERNELS, _RMSNORM_FWD: a
 * clear error in a child process, not a crash). Prints one row per check and exits non-zero on any failure.
 * `--quick` runs a subset for compute-sanitizer.
 */
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { join } from "node:path";
import { builtBackends, defaultBuildDir, loadBackend } from "../../packages/kernels/src/loader.js";
import type { NativeAddon } from "../../packages/kernels/src/native.js";
import { crossCases, SMALL } from "../../packages/kernels/src/testing/cross-backend.js";
import { fuzzNative, fuzzPool, runZeroSizeCalls } from "../../packages/kernels/src/testing/fuzz.js";
import type { Backend, DType } from "../../packages/kernels/src/types.js";

const quick = process.argv.includes("--quick");
const rows: Array<{ suite: string; check: string; err: number; tol: number; ok: boolean }> = [];
const record = (suite: string, check: string, err: number, tol: number) =>
  rows.push({ suite, check, err, tol, ok: err <= tol });

// --backend cpu: a dry run of this script on a machine without a GPU (checks cpu bf16).
const target = process.argv.includes("--backend") ? "cpu" : "cuda";
const built = builtBackends();
if (target === "cuda" && !built.cuda) {
  console.error(`CUDA backend not built: ${built.cudaReason}`);
  process.exit(2);
}
const cpu = await loadBackend("cpu");
const cuda = await loadBackend(target);
// --zero-size-probe FROM (run by the check below): the zero-size calls from index FROM on, each
// announced before it runs and reported after, then a leak count.
if (process.argv.includes("--zero-size-probe")) {
  const from = Number(process.argv[process.argv.indexOf("--zero-size-probe") + 1] ?? 0);
  const before = cuda.stats().liveTensors;
  runZeroSizeCalls(cuda, {
    from,
    onStart: (i, n) => console.log(`zero-size start ${i} ${n}`),
    onDone: (i, n, outcome) =>
      console.log(`zero-size done ${i} ${n}: ${outcome.replace(/\n/g, " ")}`),
  });
  const leaked = cuda.stats().liveTensors - before;
  console.log(
    `zero-size done 0 no leaked tensors: ${leaked === 0 ? "ran" : `bad: ${leaked} leaked`}`,
  );
  process.exit(0);
}
// --env-probe (run by the check below with a bad setting): one call of each op that reads a
// kernel-choice setting, at shapes that reach the code reading it, printing each error.
if (process.argv.includes("--env-probe")) {
  const bf = (shape: number[]) =>
    cuda.fromHost(new Float32Array(shape.reduce((a, b) => a * b)).fill(0.5), shape, "bf16");
  const f32 = (shape: number[]) => cuda.zeros(shape, "f32");
  const attempt = (name: string, fn: () => void) => {
    try {
      fn();
      cuda.synchronize();
      console.log(`env-probe ${name}: ran`);
    } catch (e) {
      console.log(`env-probe ${name}: ${(e as Error).message}`);
    }
  };
  attempt("rmsnormBackward", () =>
    cuda.rmsnormBackward(
      bf([4, 2048]),
      f32([2048]),
      bf([4, 2048]),
      bf([4, 2048]),
      bf([2048]),
      f32([4]),
    ),
  );
  attempt("rmsnormForward", () =>
    cuda.rmsnormForward(bf([4, 2048]), f32([4]), bf([4, 2048]), bf([2048]), 1e-5),
  );
  attempt("crossEntropy", () =>
    cuda.crossEntropy(f32([2]), bf([2, 64]), cuda.fromHost(new Int32Array([1, 2]), [2], "i32"), {
      computeGrad: true,
      dlossScale: 0.5,
    }),
  );
  const [q, k, v, out, lse] = [
    bf([1, 64, 2, 64]),
    bf([1, 64, 1, 64]),
    bf([1, 64, 1, 64]),
    bf([1, 64, 2, 64]),
    f32([1, 2, 64]),
  ];
  attempt("attentionForward", () => cuda.attentionForward(out, lse, q, k, v, { causal: true }));
  attempt("attentionBackward", () =>
    cuda.attentionBackward(
      bf([1, 64, 2, 64]),
      bf([1, 64, 1, 64]),
      bf([1, 64, 1, 64]),
      bf([1, 64, 2, 64]),
      q,
      k,
      v,
      out,
      lse,
      {
        causal: true,
      },
    ),
  );
  process.exit(0);
}

console.log(
  `device: ${cuda.device.name} (cc ${cuda.device.computeCapability}), ${cuda.device.detail}`,
);

// Attention once more at a length that spans several 128-row query tiles and ends mid-tile
// (the suite's T = 67 fits one tile). TINYLLAMA_ATTENTION (cudnn | mma | wmma | fp32) picks the kernels.
const attention = crossCases({ ...SMALL, B: 1, T: 300 }).filter((c) =>
  c.name.startsWith("attention"),
);
// and at the small presets' head dims (tinyllama-18m 32, -4m 16, -test 8: the fp32 CUDA-core
// kernels; until 2026-11-28 only 64 and 128 were compiled and these models could not train on CUDA)
const smallHeads = [32, 16, 8].flatMap((D) =>
  crossCases({ ...SMALL, D, H: 4, Hkv: 2 })
    .filter((c) => c.name.startsWith("attention"))
    .map((c) => ({ ...c, name: `${c.name} D=${D}` })),
);
// RMSNorm at TinyLlama 1.1B's width (the suite's C = 256 is one 256-column pass per row; the
// 1.1B rows are eight, which the register-row forward and the chunked backward tile differently),
// and cross-entropy at its vocabulary.
const wide = crossCases({ ...SMALL, N: 48, C: 2048, V: 32000 })
  .filter((c) => c.name.startsWith("rmsnorm") || c.name.startsWith("cross-entropy"))
  .map((c) => ({ ...c, name: `${c.name} C=2048 V=32000` }));
// RMSNorm backward with several rows per block: its grid is one wave of blocks (924 on an
// H200), so the wide case's 48 rows give each block one row and leave the dW sums over a
// block's rows unchecked.
const tall = crossCases({ ...SMALL, N: 1000, C: 2048 })
  .filter((c) => c.name.startsWith("rmsnorm"))
  .map((c) => ({ ...c, name: `${c.name} N=1000 C=2048` }));
const cases = [
  ...crossCases(),
  ...attention.map((c) => ({ ...c, name: `${c.name} T=300` })),
  ...smallHeads,
  ...wide,
  ...tall,
];
console.log(
  `attention kernel: TINYLLAMA_ATTENTION=${process.env.TINYLLAMA_ATTENTION ?? "(unset: cuDNN forward and backward where built)"}`,
);
const dtypes: DType[] = quick || target === "cpu" ? ["bf16"] : ["f32", "bf16"];
for (const dtype of dtypes) {
  for (const c of quick
    ? cases.filter((c, i) => i % 2 === 0 || c.name.startsWith("attention"))
    : cases) {
    const before = cuda.stats().liveTensors;
    try {
      for (const ch of c.run(cuda, cpu, dtype, 1234))
        record(`cuda ${dtype}`, `${c.name}: ${ch.name}`, ch.err, ch.tol);
    } catch (e) {
      record(`cuda ${dtype}`, `${c.name}: threw ${(e as Error).message}`, 1, 0);
    }
    record(`cuda ${dtype}`, `${c.name}: no leaked tensors`, cuda.stats().liveTensors - before, 0);
  }
}

// Native-boundary fuzz on the CUDA addon (same addon object the loader holds).
const addon = createRequire(import.meta.url)(
  join(defaultBuildDir(), `tinyllama_${target}.node`),
) as NativeAddon;
{
  const keep = [
    cuda.zeros([4], "f32"),
    cuda.zeros([2, 4], "f32"),
    cuda.zeros([2, 4], "bf16"),
    cuda.zeros([2], "i32"),
    cuda.zeros([2], "u16"),
    cuda.zeros([1, 2, 2, 64], "bf16"),
    cuda.zeros([1, 2, 1, 64], "bf16"),
    cuda.zeros([1, 2, 2], "f32"),
    cuda.zeros([4, 4], "f32"),
  ];
  const gone = cuda.empty([4], "f32");
  gone.dispose();
  const res = fuzzNative(
    addon,
    fuzzPool([...keep.map((t) => t.native), gone.native]),
    quick ? 500 : 4000,
  );
  cuda.synchronize();
  record(
    "cuda",
    `fuzz: ${res.threw} errors, ${res.ran} valid calls, no crash`,
    res.badThrows.length,
    0,
  );
  for (const t of keep) t.dispose();
}

// Zero-sized dimensions (a zero-width row, no rows, K = 0): each op runs as a no-op or throws a
// named error. They run in a child process that reports each call as it starts, so a call that
// kills the process is named (and the rest still run in a new child).
{
  // What the CPU backend does with each (in process: it has no launch to fail): CUDA must agree,
  // running where it runs and throwing where it throws.
  const cpuOutcome = new Map(runZeroSizeCalls(cpu).map((r) => [r.name, r.outcome]));
  const kind = (o: string | undefined) => (o ?? "").split(":")[0];
  let from = 0;
  while (from >= 0) {
    const child = spawnSync(
      process.execPath,
      [
        process.argv[1] ?? "",
        "--zero-size-probe",
        String(from),
        ...(target === "cpu" ? ["--backend", "cpu"] : []),
      ],
      {
        env: process.env,
        encoding: "utf8",
        timeout: 120_000,
      },
    );
    let started = -1;
    let startedName = "";
    for (const line of child.stdout.split("\n")) {
      const m = /^zero-size (start|done) (\d+) ([^:]+)(?:: (.*))?$/.exec(line);
      if (!m) continue;
      if (m[1] === "start") {
        started = Number(m[2]);
        startedName = m[3] ?? "";
      } else {
        const outcome = m[4] ?? "";
        const name = m[3] ?? "";
        const want = cpuOutcome.get(name);
        const agrees = name === "no leaked tensors" || kind(outcome) === kind(want);
        record(
          "cuda",
          `zero size, ${name}: ${outcome.slice(0, 60)}${agrees ? "" : ` (cpu: ${want})`}`,
          outcome.startsWith("bad") || !agrees ? 1 : 0,
          0,
        );
        started = -1;
      }
    }
    if (child.status === 0) break;
    const why = child.signal ?? `exit ${child.status}`;
    if (started < 0) {
      record("cuda", `zero size: the probe process died outside a call (${why})`, 1, 0);
      break;
    }
    record("cuda", `zero size, ${startedName}: killed the process (${why})`, 1, 0);
    from = started + 1;
  }
}

// Data errors found on the device surface at synchronize() with a clear message.
{
  const table = cuda.zeros([10, 64], "bf16");
  const out = cuda.empty([2, 64], "bf16");
  const ids = cuda.fromHost(new Int32Array([3, 99]), [2], "i32");
  let msg = "";
  try {
    cuda.embeddingForward(out, table, ids); // the CPU throws here, CUDA at synchronize()
    cuda.synchronize();
  } catch (e) {
    msg = (e as Error).message;
  }
  record(
    "cuda",
    `bad token id reported: "${msg.slice(0, 60)}"`,
    /embedding id was outside|outside \[0, 10\)/.test(msg) ? 0 : 1,
    0,
  );
  cuda.synchronize(); // flag cleared
  for (const t of [table, out, ids]) t.dispose();
}

// A bad kernel-choice setting is a JavaScript error naming the setting, from the ops that read
// it, in a process that keeps running (each setting is read once per process: one child each).
if (target === "cuda" && !quick) {
  for (const [name, readBy] of [
    ["TINYLLAMA_ATTENTION", "attentionForward"],
    ["TINYLLAMA_ATTENTION_BWD", "attentionBackward"],
    ["TINYLLAMA_ROW_KERNELS", "rmsnormBackward"],
    ["TINYLLAMA_RMSNORM_FWD", "rmsnormForward"],
  ] as const) {
    const child = spawnSync(process.execPath, [process.argv[1] ?? "", "--env-probe"], {
      env: { ...process.env, [name]: "no-such-kernel" },
      encoding: "utf8",
    });
    const line = child.stdout.split("\n").find((l) => l.startsWith(`env-probe ${readBy}:`)) ?? "";
    const named = line.includes(`${name} must be`) && line.includes("no-such-kernel");
    record(
      "cuda",
      `${name}=no-such-kernel: ${readBy} throws naming it, exit ${child.status}: "${line.slice(0, 90)}"`,
      named && child.status === 0 ? 0 : 1,
      0,
    );
  }
}

const leaks = cuda.stats();
record("cuda", `live tensors at exit (${leaks.liveBytes} bytes)`, leaks.liveTensors, 0);
report(cuda);

function report(k: Backend) {
  const failed = rows.filter((r) => !r.ok);
  const w = Math.max(...rows.map((r) => r.check.length));
  for (const r of rows) {
    console.log(
      `${r.ok ? "PASS" : "FAIL"}  ${r.suite.padEnd(10)} ${r.check.padEnd(w)}  err=${r.err.toExponential(2)} tol=${r.tol.toExponential(0)}`,
    );
  }
  console.log(
    `kernels-check on ${k.device.name}: ${rows.length - failed.length}/${rows.length} checks passed`,
  );
  process.exitCode = failed.length ? 1 : 0;
}
