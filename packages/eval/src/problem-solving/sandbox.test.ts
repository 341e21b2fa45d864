import { describe, expect, it } from "vitest";
import { humanevalCompletion, humanevalProgram } from "./prompts.js";
import { networkIsolation, runPrograms, runPython } from "./sandbox.js";

const problem = {
  prompt: 'def add(a, b):\n    """Return a + b."""\n',
  test: "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
  entry_point: "add",
};
const program = (completion: string) => humanevalProgram(problem, completion);

describe("HumanEval sandbox", () => {
  it("tells passing, failing, hanging and crashing completions apart", async () => {
    const [pass, fail, syntax, hang, crash, early, memory] = await runPrograms(
      [
        program("    return a + b\n"),
        program("    return a - b\n"),
        program("    return a +\n"),
        program("    while True:\n        pass\n"),
        program("    import os, signal\n    os.kill(os.getpid(), signal.SIGSEGV)\n"),
        program("    import os\n    os._exit(0)\n") + "\nadd(1, 2)\n",
        program("    x = bytearray(8 * 1024 ** 3)\n    return a + b\n"),
      ],
      { timeoutSeconds: 1.5, workers: 4 },
    );
    expect(pass!.status).toBe("passed");
    expect(fail!.status).toBe("failed");
    expect(fail!.stderr).toMatch(/AssertionError/);
    expect(syntax!.status).toBe("failed");
    expect(syntax!.stderr).toMatch(/SyntaxError/);
    expect(hang!.status).toBe("timeout");
    expect(hang!.seconds).toBeLessThan(5);
    expect(crash!.status).toBe("crashed");
    expect(early!.status).not.toBe("passed");
    expect(memory!.status).toBe("failed");
    expect(memory!.stderr).toMatch(/MemoryError/);
  }, 20_000);

  it("runs without network where the machine can isolate it", async () => {
    const iso = networkIsolation();
    if (!iso) {
      console.log(
        "network isolation unavailable here (unshare -n / -rn failed): isolation test not run",
      );
      return;
    }
    const r = await runPython(
      "import socket\ns = socket.socket()\ns.settimeout(1)\ns.connect(('1.1.1.1', 80))\n",
      { timeoutSeconds: 3, network: "require" },
    );
    expect(r.status).toBe("failed");
    expect(r.stderr).toMatch(/Network is unreachable|OSError|timed out/);
  });

  it("applies InstructEval's indentation fix and first-function filter", () => {
    // SentencePiece drops one leading space of the decoded completion: 3 spaces come back as 4.
    expect(humanevalCompletion("   return a + b\n\n\ndef other():\n    pass")).toBe(
      "    return a + b",
    );
    expect(humanevalCompletion("\n\n  x = 1\n   return x\n")).toBe("  x = 1\n    return x\n");
  });
});
