// `pnpm eval` checks its data and --output before it loads a model (the checkpoint here does not
// exist: reaching it would fail with another error).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "./cli.js";

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "eval-cli-data-"));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("pnpm eval before the model loads", () => {
  it("names task, doc, file and field of a doc with a missing field", async () => {
    const dataDir = join(root, "data");
    mkdirSync(dataDir, { recursive: true });
    const file = join(dataDir, "piqa.jsonl");
    writeFileSync(
      file,
      '{"goal":"g","sol1":"a","sol2":"b","label":1}\n{"goal":"g","sol1":"a","label":0}\n',
    );
    const args = ["--data-dir", dataDir, "--tasks", "piqa", "--checkpoint", join(root, "none")];
    await expect(main(args)).rejects.toThrow(
      `piqa doc 1 (of ${file}): piqa: field "sol2" must be a string, got nothing (missing)`,
    );
    // docs past --limit are not scored, so not checked
    await expect(main([...args, "--limit", "1"])).rejects.toThrow(/checkpoint directory/);
  });

  it("takes the flags after pnpm's `--` (`pnpm eval -- --tasks piqa`) as flags", async () => {
    await expect(
      main(["--", "--tasks", "piqa", "--checkpoint", join(root, "none")]),
    ).rejects.toThrow(/checkpoint directory/);
  });

  it("refuses an --output that is a file", async () => {
    const file = join(root, "results.json");
    writeFileSync(file, "{}");
    for (const output of [file, join(file, "sub")]) {
      await expect(
        main(["--tasks", "piqa", "--output", output, "--checkpoint", join(root, "none")]),
      ).rejects.toThrow(/--output .*results\.json is a file, not a directory/);
    }
  });
});
