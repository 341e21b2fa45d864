/**
 * build-native.mjs's lookup of PyTorch's cuDNN wheel, with a stand-in python: the directory it
 * prints counts only when it holds include/cudnn.h, and every failure is a reason, never a throw.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { findCudnnWheel } from "../scripts/find-cudnn.mjs";

const dir = mkdtempSync(join(tmpdir(), "find-cudnn-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A python3 stand-in that runs `body` (sh) whatever its arguments. */
function fakePython(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

describe("findCudnnWheel", () => {
  it("returns the wheel's directory when it holds include/cudnn.h", () => {
    const home = join(dir, "site-packages", "nvidia", "cudnn");
    mkdirSync(join(home, "include"), { recursive: true });
    writeFileSync(join(home, "include", "cudnn.h"), "/* header */\n");
    expect(findCudnnWheel({ python: fakePython("py-ok", `echo "${home}"`) })).toEqual({ home });
  });

  it("says why when the module is missing, the headers are absent or python is not there", () => {
    expect(findCudnnWheel({ python: fakePython("py-nomod", "exit 1") })).toEqual({
      reason: expect.stringMatching(/has no nvidia\.cudnn module/),
    });
    const empty = join(dir, "no-headers");
    mkdirSync(empty, { recursive: true });
    expect(findCudnnWheel({ python: fakePython("py-empty", `echo "${empty}"`) })).toEqual({
      reason: `no include/cudnn.h under ${empty}`,
    });
    expect(findCudnnWheel({ python: join(dir, "no-such-python") })).toEqual({
      reason: expect.stringMatching(/no-such-python: .*ENOENT/),
    });
  });

  it("gives up on a python that hangs", () => {
    const r = findCudnnWheel({ python: fakePython("py-hang", "sleep 5"), timeoutMs: 200 });
    expect(r).toEqual({ reason: expect.stringMatching(/ETIMEDOUT/) });
  });
});
