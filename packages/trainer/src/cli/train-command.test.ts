import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { trainCommand } from "./train-command.js";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const REGISTER = fileURLToPath(new URL("../test-util/ts-register.mjs", import.meta.url));

describe("pnpm train's command line", () => {
  it("shows the help after a leading -- (pnpm train -- --help)", async () => {
    const lines: string[] = [];
    const r = await trainCommand(["--", "--help"], { log: (l) => lines.push(l) });
    expect(r).toBeNull();
    expect(lines.join("\n")).toMatch(/^usage: pnpm train/);
  });

  it("train:plot takes the directory after pnpm's -- (pnpm train:plot -- runs/x)", () => {
    const r = spawnSync(
      process.execPath,
      [
        "--conditions=@tinyllama/source",
        "--import",
        REGISTER,
        CLI,
        "plot",
        "--",
        "/nonexistent-run",
      ],
      { encoding: "utf8" },
    );
    // the directory reached the plotter (before: `unexpected argument "/nonexistent-run"`)
    expect(r.stderr).toMatch(/nonexistent-run/);
    expect(r.stderr).not.toMatch(/unexpected argument/);
  });
});
