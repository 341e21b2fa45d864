// The repository's own promises to a newcomer: the README opens with the two commands, CI runs
// exactly the second, the pinned pnpm matches, and every package has the shape others rely on.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..");
const read = (p: string) => readFileSync(join(root, p), "utf8");

function readmeCommands(): string[] {
  const blocks = [...read("README.md").matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!.trim());
  return blocks.slice(0, 2);
}

describe("README and CI", () => {
  it("opens with exactly two commands, each a single line", () => {
    const readme = read("README.md");
    const beforeProse = readme.split("\n## ")[0]!;
    const blocks = [...beforeProse.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!.trim());
    expect(blocks).toHaveLength(2);
    for (const b of blocks) expect(b.split("\n")).toHaveLength(1);
  });

  it("runs in CI exactly the README's test command", () => {
    const [, testCommand] = readmeCommands();
    const ciLines = read(".ci/run")
      .split("\n")
      .filter((l) => l.trim() && !l.startsWith("#") && !/^(set|cd|export) /.test(l));
    expect(ciLines).toEqual([testCommand]);
  });

  it("pins the same pnpm in package.json and in both commands", () => {
    const pinned = JSON.parse(read("package.json")).packageManager as string;
    expect(pinned).toMatch(/^pnpm@\d+\.\d+\.\d+$/);
    for (const cmd of readmeCommands()) {
      for (const m of cmd.matchAll(/pnpm@[\d.]+/g)) expect(m[0]).toBe(pinned);
    }
  });
});

describe("workspace packages", () => {
  const dirs = readdirSync(join(root, "packages"));

  it("holds the five packages named by the design", () => {
    expect(dirs.sort()).toEqual(["data", "eval", "kernels", "tokenizer", "trainer"]);
  });

  it.each(dirs)("%s has its name, explicit exports, scripts and a README", (dir) => {
    const pkg = JSON.parse(read(`packages/${dir}/package.json`));
    expect(pkg.name).toBe(`@tinyllama/${dir}`);
    expect(pkg.type).toBe("module");
    expect(pkg.exports["."]).toMatchObject({
      "@tinyllama/source": "./src/index.ts",
      default: "./dist/index.js",
    });
    for (const s of ["build", "typecheck", "test"]) expect(pkg.scripts[s]).toBeTypeOf("string");
    expect(read(`packages/${dir}/README.md`)).toMatch(new RegExp(`^# @tinyllama/${dir}\\n\\n\\S`));
  });

  it.each(dirs)("@tinyllama/%s resolves and loads through its exports", async (dir) => {
    await expect(import(`@tinyllama/${dir}`)).resolves.toBeTypeOf("object");
  });
});
