/**
 * Rendezvous over TCP on MASTER_ADDR:MASTER_PORT (what torchrun, Slurm scripts and llm.c do):
 * rank 0 serves the port, every other rank connects (retrying until rank 0 is up), sends one
 * JSON line `{rank, worldSize, info}`, and gets back everyone's info plus rank 0's payload (the
 * NCCL unique id, or a job token for the TCP mesh). Rank 0 records the address each rank
 * connected from, which is an address the others can reach it on. Everything is bounded by a
 * timeout with a message naming the ranks that never came, or rank 0 that never answered.
 */
import { connect, createServer, type Socket } from "node:net";

export interface RendezvousOptions {
  rank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
  /** What this rank tells the others (JSON-serialisable). */
  info: Record<string, unknown>;
  /** Rank 0 only: a string handed to every rank. */
  rootPayload?: string;
  timeoutMs: number;
  /**
   * Called every `reportEveryMs` while this rank waits, with a line saying for whom (rank 0:
   * which ranks have not joined; the others: whether rank 0 answers yet). Default: a quarter of
   * the timeout, between 1 and 30 s.
   */
  onWaiting?: (line: string) => void;
  reportEveryMs?: number;
}

/** "3, 5, 7" or, past `max` ranks, the first `max` and how many more. */
function rankList(ranks: number[], max = 16): string {
  const shown = ranks.slice(0, max).join(", ");
  return ranks.length > max ? `${shown} and ${ranks.length - max} more` : shown;
}

/** Calls `report(elapsed seconds)` every o.reportEveryMs while waiting; returns the stop. */
function waitingReporter(o: RendezvousOptions, report: (seconds: number) => string): () => void {
  const onWaiting = o.onWaiting;
  if (!onWaiting) return () => {};
  const t0 = Date.now();
  const timer = setInterval(
    () => onWaiting(report(Math.round((Date.now() - t0) / 1000))),
    o.reportEveryMs ?? Math.min(30_000, Math.max(1000, o.timeoutMs / 4)),
  );
  timer.unref();
  return () => clearInterval(timer);
}

export interface RendezvousEntry {
  rank: number;
  /** The address rank 0 saw this rank connect from (rank 0: masterAddr). */
  addr: string;
  info: Record<string, unknown>;
}

export interface RendezvousResult {
  entries: RendezvousEntry[];
  rootPayload: string;
}

export class RendezvousError extends Error {
  override name = "RendezvousError";
}

function readLine(socket: Socket, onLine: (line: string) => void): void {
  let buf = "";
  socket.setEncoding("utf8");
  socket.on("data", (d: string) => {
    buf += d;
    let i = buf.indexOf("\n");
    while (i !== -1) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      onLine(line);
      i = buf.indexOf("\n");
    }
  });
}

export function rendezvous(o: RendezvousOptions): Promise<RendezvousResult> {
  if (!Number.isInteger(o.worldSize) || o.worldSize < 1) {
    return Promise.reject(
      new RendezvousError(`world size must be a positive integer, got ${o.worldSize}`),
    );
  }
  if (!Number.isInteger(o.rank) || o.rank < 0 || o.rank >= o.worldSize) {
    return Promise.reject(
      new RendezvousError(
        `rank ${o.rank} is outside [0, ${o.worldSize}) (world size ${o.worldSize})`,
      ),
    );
  }
  if (!Number.isInteger(o.masterPort) || o.masterPort < 1 || o.masterPort > 65535) {
    return Promise.reject(
      new RendezvousError(`MASTER_PORT must be a port number in 1..65535, got ${o.masterPort}`),
    );
  }
  return o.rank === 0 ? serve(o) : join(o);
}

function serve(o: RendezvousOptions): Promise<RendezvousResult> {
  const where = `${o.masterAddr}:${o.masterPort}`;
  return new Promise((resolve, reject) => {
    const entries: (RendezvousEntry | undefined)[] = new Array(o.worldSize).fill(undefined);
    let joined = 1;
    const sockets = new Map<number, Socket>();
    const pending = new Set<Socket>();
    entries[0] = { rank: 0, addr: o.masterAddr, info: o.info };
    let done = false;
    const server = createServer((socket) => {
      pending.add(socket);
      socket.on("error", () => {});
      readLine(socket, (line) => {
        let msg: { rank?: unknown; worldSize?: unknown; info?: unknown };
        try {
          msg = JSON.parse(line);
        } catch {
          socket.destroy();
          return;
        }
        const r = msg.rank;
        const problem =
          msg.worldSize !== o.worldSize
            ? `rank ${String(r)} was started with world size ${String(msg.worldSize)}, rank 0 with ${o.worldSize}`
            : typeof r !== "number" || !Number.isInteger(r) || r <= 0 || r >= o.worldSize
              ? `a process connected with rank ${String(r)}, outside 1..${o.worldSize - 1}`
              : entries[r]
                ? `two processes claim rank ${r} (check RANK / SLURM_PROCID of each process)`
                : null;
        if (problem) {
          finish(new RendezvousError(`rendezvous on ${where}: ${problem}`));
          return;
        }
        const rank = r as number;
        const addr = (socket.remoteAddress ?? "127.0.0.1").replace(/^::ffff:/, "");
        entries[rank] = { rank, addr, info: (msg.info ?? {}) as Record<string, unknown> };
        sockets.set(rank, socket);
        if (++joined === o.worldSize) finish(null);
      });
    });
    const missing = () => [...entries.keys()].filter((r) => !entries[r]);
    const timer = setTimeout(() => {
      finish(
        new RendezvousError(
          `rendezvous timed out after ${o.timeoutMs / 1000}s on ${where}: rank(s) ${rankList(missing())} of ${o.worldSize} never connected ` +
            "(not started, crashed at start-up, or pointed at another MASTER_ADDR/MASTER_PORT; TINYLLAMA_RENDEZVOUS_TIMEOUT sets the wait)",
        ),
      );
    }, o.timeoutMs);
    const stopReporting = waitingReporter(
      o,
      (s) =>
        `rendezvous on ${where}: ${joined} of ${o.worldSize} ranks joined after ${s}s, waiting for rank(s) ${rankList(missing())} (gives up at ${o.timeoutMs / 1000}s)`,
    );
    const finish = (err: Error | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      stopReporting();
      const all = entries as RendezvousEntry[];
      const reply = err
        ? `${JSON.stringify({ error: err.message })}\n`
        : `${JSON.stringify({ entries: all, rootPayload: o.rootPayload ?? "" })}\n`;
      for (const s of pending) s.end(reply);
      if (server.listening) server.close();
      if (err) reject(err);
      else resolve({ entries: all, rootPayload: o.rootPayload ?? "" });
    };
    server.on("error", (e: NodeJS.ErrnoException) => {
      const why =
        e.code === "EADDRINUSE"
          ? `port ${o.masterPort} is in use (another job, or a previous run still exiting): pick another MASTER_PORT / --master-port`
          : e.message;
      finish(new RendezvousError(`rank 0 cannot serve the rendezvous on ${where}: ${why}`));
    });
    if (o.worldSize === 1) {
      finish(null);
      return;
    }
    server.listen(o.masterPort);
  });
}

function join(o: RendezvousOptions): Promise<RendezvousResult> {
  const where = `${o.masterAddr}:${o.masterPort}`;
  const deadline = Date.now() + o.timeoutMs;
  return new Promise((resolve, reject) => {
    let settled = false;
    let lastError = "no answer";
    let connected = false;
    const stopReporting = waitingReporter(o, (s) =>
      connected
        ? `rank ${o.rank}: joined the rendezvous on ${where} and waits for the other ranks (${s}s; gives up at ${o.timeoutMs / 1000}s)`
        : `rank ${o.rank}: rank 0 at ${where} does not answer yet after ${s}s (${lastError}; gives up at ${o.timeoutMs / 1000}s)`,
    );
    const settle = (err: Error | null, r?: RendezvousResult) => {
      if (settled) return;
      settled = true;
      stopReporting();
      if (err) reject(err);
      else resolve(r!);
    };
    const attempt = () => {
      if (settled) return;
      if (Date.now() > deadline) {
        settle(
          new RendezvousError(
            `rendezvous timed out after ${o.timeoutMs / 1000}s: rank 0 at ${where} did not answer rank ${o.rank} (${lastError}). ` +
              "Check MASTER_ADDR/MASTER_PORT and that rank 0 is running (TINYLLAMA_RENDEZVOUS_TIMEOUT sets the wait)",
          ),
        );
        return;
      }
      const socket = connect({ host: o.masterAddr, port: o.masterPort });
      connected = false;
      socket.on("connect", () => {
        connected = true;
        socket.write(`${JSON.stringify({ rank: o.rank, worldSize: o.worldSize, info: o.info })}\n`);
      });
      readLine(socket, (line) => {
        socket.destroy();
        let msg: { error?: string; entries?: RendezvousEntry[]; rootPayload?: string };
        try {
          msg = JSON.parse(line);
        } catch {
          settle(new RendezvousError(`rendezvous on ${where}: unreadable reply from rank 0`));
          return;
        }
        if (msg.error) settle(new RendezvousError(msg.error));
        else settle(null, { entries: msg.entries ?? [], rootPayload: msg.rootPayload ?? "" });
      });
      socket.on("error", (e) => {
        lastError = e.message;
      });
      socket.on("close", () => {
        if (settled) return;
        if (connected) {
          settle(
            new RendezvousError(
              `rank 0 at ${where} closed the rendezvous before answering rank ${o.rank} (did it fail?)`,
            ),
          );
          return;
        }
        setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}
