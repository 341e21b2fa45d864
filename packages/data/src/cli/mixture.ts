/**
 * `mixture`: prints a stage's mixture schedule, runs the sampler over the stage and writes an
 * SVG plot of scheduled against realised shares (plus a JSON report with the same numbers).
 *
 *   pnpm mixture v1.1-continual-math-code --out runs/mixture
 *   node packages/data/dist/cli/mixture.js my-schedule.json --mode random --scale 0.01
 *
 * A whole stage at 2048 tokens per block is 73M to 1.46G blocks (4-7M blocks/s on one core,
 * progress on stderr); `--scale` shrinks the stage (and its ramp) for a quick look.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import {
  checkSchedule,
  DEFAULT_BLOCK_TOKENS,
  describeSchedule,
  formatDeviation,
  formatTokens,
  isPresetName,
  MIXTURE_MODES,
  type MixtureMode,
  type MixtureSchedule,
  PAPER_SHARES,
  PRESET_NAMES,
  preset,
  renderReportSvg,
  scaleSchedule,
  simulateStage,
} from "../mixture/index.js";

export const USAGE = `usage: mixture <preset | schedule.json> [options]

Prints the stage's schedule, samples the whole stage and writes <out>/<name>-<mode>.svg (scheduled
vs realised shares) and <out>/<name>-<mode>.json (the numbers behind it).

presets: ${PRESET_NAMES.join(", ")}

options:
  --mode <m>           ${MIXTURE_MODES.join(" | ")} (default low-discrepancy)
  --seed <n|string>    sampler seed (default 0)
  --block-tokens <n>   training tokens per block (default ${DEFAULT_BLOCK_TOKENS})
  --scale <f>          multiply every token position and the budget by f, 0 < f <= 1 (default 1)
  --windows <n>        windows over the stage for the share curves (default 200)
  --out <dir>          output directory (default .)
  --print-only         print the schedule and exit without sampling
  -h, --help           this text`;

export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

class UsageError extends Error {}

function positiveNumber(
  flag: string,
  value: string | undefined,
  fallback: number,
  integer: boolean,
): number {
  if (value === undefined) return fallback;
  const v = Number(value);
  if (!Number.isFinite(v) || v <= 0 || (integer && !Number.isSafeInteger(v))) {
    throw new UsageError(
      `${flag} must be a positive ${integer ? "integer" : "number"}, got "${value}"`,
    );
  }
  return v;
}

function loadSchedule(spec: string): MixtureSchedule {
  if (isPresetName(spec)) return preset(spec);
  if (!spec.endsWith(".json")) {
    throw new UsageError(
      `"${spec}" is neither a preset (${PRESET_NAMES.join(", ")}) nor a .json schedule file`,
    );
  }
  let text: string;
  try {
    text = readFileSync(spec, "utf8");
  } catch (err) {
    throw new UsageError(`cannot read schedule file ${resolve(spec)}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${resolve(spec)} is not valid JSON: ${(err as Error).message}`);
  }
  let schedule: MixtureSchedule;
  try {
    schedule = checkSchedule(raw);
  } catch (err) {
    throw new Error(`${resolve(spec)}: ${(err as Error).message}`);
  }
  return {
    ...schedule,
    name: schedule.name ?? spec.replace(/^.*[\\/]/, "").replace(/\.json$/, ""),
  };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows
    .map((r) =>
      r
        .map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!)))
        .join("  "),
    )
    .join("\n");
}

/** Runs the command; returns the process exit code. */
export function runMixtureCli(argv: string[], io: CliIo): number {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    io.err(`mixture: ${parseArgsMessage(err as Error)}\n\n${USAGE}`);
    return 2;
  }
  if (parsed.values.help) {
    io.out(USAGE);
    return 0;
  }
  try {
    const [spec, ...extra] = parsed.positionals;
    if (!spec) throw new UsageError("missing the preset name or schedule file");
    if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(" ")}`);
    const mode = (parsed.values.mode ?? "low-discrepancy") as MixtureMode;
    if (!MIXTURE_MODES.includes(mode)) {
      throw new UsageError(`--mode must be one of ${MIXTURE_MODES.join(", ")}, got "${mode}"`);
    }
    const blockTokens = positiveNumber(
      "--block-tokens",
      parsed.values["block-tokens"],
      DEFAULT_BLOCK_TOKENS,
      true,
    );
    const scale = positiveNumber("--scale", parsed.values.scale, 1, false);
    if (scale > 1) throw new UsageError(`--scale must be at most 1, got ${scale}`);
    const windows = positiveNumber("--windows", parsed.values.windows, 200, true);
    const seedText = parsed.values.seed ?? "0";
    const seed =
      /^\d+$/.test(seedText) && Number.isSafeInteger(Number(seedText))
        ? Number(seedText)
        : seedText;
    let schedule = loadSchedule(spec);
    const name = schedule.name ?? "custom";
    if (scale !== 1) schedule = { ...scaleSchedule(schedule, scale), name };
    io.out(describeSchedule(schedule));
    if (parsed.values["print-only"]) return 0;
    // Before sampling: a stage can take minutes, an unusable --out should not wait for it.
    const outDir = resolve(parsed.values.out ?? ".");
    try {
      mkdirSync(outDir, { recursive: true });
    } catch (err) {
      throw new Error(`cannot create --out directory ${outDir}: ${(err as Error).message}`);
    }

    const blocks = Math.floor(schedule.totalTokens / blockTokens);
    io.out(
      `\nsampling ${blocks.toLocaleString("en-US")} blocks of ${blockTokens} tokens (${mode}, seed ${JSON.stringify(seed)})`,
    );
    const started = Date.now();
    const report = simulateStage({
      schedule,
      seed,
      blockTokens,
      mode,
      windows,
      onProgress: (done, total) => {
        const seconds = (Date.now() - started) / 1000;
        const rate = done / seconds;
        io.err(
          `  ${((100 * done) / total).toFixed(1)}%  ${done.toLocaleString("en-US")} blocks  ${(rate / 1e6).toFixed(2)}M blocks/s  ETA ${Math.ceil((total - done) / rate)} s`,
        );
      },
    });
    const paper = isPresetName(name) ? PAPER_SHARES[name] : undefined;
    const rows = [
      [
        "source",
        "scheduled (stage avg)",
        "realised",
        "realised - scheduled",
        "max |dev| blocks",
        ...(paper ? ["paper"] : []),
      ],
    ];
    report.sources.forEach((source, s) => {
      rows.push([
        source,
        `${(report.expectedShare[s]! * 100).toFixed(4)}%`,
        `${(report.realisedShare[s]! * 100).toFixed(4)}%`,
        `${((report.realisedShare[s]! - report.expectedShare[s]!) * 100).toFixed(4)} pp`,
        formatDeviation(report.maxAbsDeviation[s]!),
        ...(paper ? [`${((paper[source] ?? 0) * 100).toFixed(4)}%`] : []),
      ]);
    });
    io.out(`\n${table(rows)}`);
    io.out(
      `\n${formatTokens(report.tokens)} tokens in ${report.seconds.toFixed(1)} s (${(report.blocksPerSecond / 1e6).toFixed(2)}M blocks/s)`,
    );
    const base = join(outDir, `${name.replace(/[^\w.-]+/g, "_")}-${mode}`);
    writeFileSync(`${base}.svg`, renderReportSvg(report));
    writeFileSync(`${base}.json`, `${JSON.stringify(report, null, 1)}\n`);
    io.out(`wrote ${base}.svg and ${base}.json`);
    return 0;
  } catch (err) {
    const e = err as Error;
    io.err(`mixture: ${e.message}${err instanceof UsageError ? `\n\n${USAGE}` : ""}`);
    return err instanceof UsageError ? 2 : 1;
  }
}

/**
 * parseArgs' message without the advice it appends to an unknown option when positionals are
 * allowed ("... as in '-- "--bogus"", whose quotes never close): the usage printed below says
 * what the options are.
 */
function parseArgsMessage(err: Error & { code?: string }): string {
  if (err.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    const option = /^Unknown option '([^']*)'/.exec(err.message)?.[1];
    if (option !== undefined) return `Unknown option '${option}'`;
  }
  return err.message;
}

function parse(argv: string[]) {
  return parseArgs({
    // `pnpm mixture -- basic`: pnpm hands the `--` on
    args: argv[0] === "--" ? argv.slice(1) : argv,
    allowPositionals: true,
    options: {
      mode: { type: "string" },
      seed: { type: "string" },
      "block-tokens": { type: "string" },
      scale: { type: "string" },
      windows: { type: "string" },
      out: { type: "string" },
      "print-only": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.exitCode = runMixtureCli(process.argv.slice(2), {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
  });
}
