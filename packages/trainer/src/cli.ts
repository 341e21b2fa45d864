#!/usr/bin/env node
/**
 * The trainer's command line: `train` flags (the default) or `plot <run dir>`. Usage errors
 * print one line and exit 2; other failures print the message and exit 1; an interrupted run
 * (SIGINT/SIGTERM) has written its checkpoint and exits 0; a checkpoint that did not fit on the
 * disk (ENOSPC/EDQUOT) exits 3 (EXIT_DISK_FULL), and a run stopped by --max-bad-steps exits 4
 * (EXIT_NOT_FINITE); the --nproc-per-node launcher reports both.
 */
import { EXIT_DISK_FULL, isNoSpaceError } from "./checkpoint/store.js";
import { formatHelp, parseFlags, UsageError } from "./cli/args.js";
import { TRAIN_FLAGS, TRAIN_USAGE, trainCommand } from "./cli/train-command.js";
import { plotRun } from "./metrics/plot.js";
import { EXIT_NOT_FINITE, NonFiniteLossError } from "./train/trainer.js";

async function main(argv: string[]): Promise<number> {
  const log = (line: string) => console.log(line);
  if (argv[0] === "plot") {
    // `pnpm train:plot -- runs/x`: pnpm hands the `--` on
    const rest = argv.slice(argv[1] === "--" ? 2 : 1);
    const dir = rest[0];
    if (!dir || dir === "--help") {
      console.log(
        "usage: plot <run or stage directory> [--out file.svg]\nWrites loss, learning-rate and throughput panels as SVG.",
      );
      return dir ? 0 : 2;
    }
    const f = parseFlags(rest.slice(1), [{ name: "out", type: "string", help: "output SVG path" }]);
    console.log(`plot written to ${plotRun(dir, f.out as string | undefined)}`);
    return 0;
  }
  if (argv[0] === "train") argv = argv.slice(1);
  await trainCommand(argv, { log });
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof UsageError) {
      console.error(`train: ${e.message}`);
      if (/see --help/.test(e.message) === false)
        console.error(formatHelp(TRAIN_USAGE, "", TRAIN_FLAGS).split("\n")[0]);
      process.exit(2);
    }
    const err = e as Error;
    console.error(`train: ${err.message ?? String(e)}`);
    if (process.env.TINYLLAMA_DEBUG) console.error(err.stack);
    process.exit(
      isNoSpaceError(e) ? EXIT_DISK_FULL : e instanceof NonFiniteLossError ? EXIT_NOT_FINITE : 1,
    );
  },
);
