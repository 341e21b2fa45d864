#!/usr/bin/env node
/**
 * `pnpm generate`: see command.ts. Usage errors print one line and exit 2; other failures
 * print the message and exit 1 (TINYLLAMA_DEBUG=1 adds the stack).
 */
import { UsageError } from "../cli/args.js";
import { GENERATE_USAGE, generateCommand } from "./command.js";

generateCommand(process.argv.slice(2), {
  out: (text) => process.stdout.write(text),
  err: (line) => process.stderr.write(`${line}\n`),
}).then(
  () => process.exit(0),
  (e: unknown) => {
    const err = e as Error;
    console.error(`generate: ${err.message ?? String(e)}`);
    if (e instanceof UsageError) {
      if (!/see --help/.test(err.message)) console.error(`${GENERATE_USAGE} (see --help)`);
      process.exit(2);
    }
    if (process.env.TINYLLAMA_DEBUG) console.error(err.stack);
    process.exit(1);
  },
);
