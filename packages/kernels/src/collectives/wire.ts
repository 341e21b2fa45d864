/**
 * One TCP connection to a peer rank, carrying framed messages: a 16-byte header (payload bytes,
 * group id, collective sequence number, op code) and the payload. Messages are queued per group,
 * so collectives of different groups sharing a pair of processes never mix, and a message of
 * the wrong collective is reported as a mismatch instead of being misread. When the socket
 * closes or errors, every waiting receive fails with a message naming the peer rank.
 */
import type { Socket } from "node:net";
import { CollectiveError } from "./types.js";

export const HEADER_BYTES = 16;
/** How long a broken connection waits for in-flight frames before it fails its receives. */
const FAILURE_GRACE_MS = 100;
/** Group id of control messages (status, abort), handled on arrival rather than queued. */
export const CONTROL_GROUP = 0xffffffff;

export interface Frame {
  group: number;
  seq: number;
  op: number;
  payload: Buffer;
}

interface Waiter {
  resolve(f: Frame): void;
  reject(e: Error): void;
}

export class PeerLink {
  readonly peer: number;
  private readonly socket: Socket;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private readonly queues = new Map<number, Frame[]>();
  private readonly waiters = new Map<number, Waiter[]>();
  private closedByUs = false;
  /** Why the link is unusable, once it is. */
  failure: CollectiveError | null = null;
  bytesSent = 0;

  private readonly onControl: (f: Frame) => void;

  constructor(
    peer: number,
    socket: Socket,
    onFailure: (e: CollectiveError) => void,
    leftover: Buffer,
    onControl: (f: Frame) => void,
  ) {
    this.peer = peer;
    this.onControl = onControl;
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on("data", (d: Buffer) => this.onData(d));
    const fail = (why: string) => {
      if (this.closedByUs || this.failure) return;
      this.failure = new CollectiveError(
        `rank ${peer} ${why} (its process exited, crashed or lost the network)`,
        [peer],
      );
      for (const ws of this.waiters.values()) for (const w of ws) w.reject(this.failure);
      this.waiters.clear();
      onFailure(this.failure);
    };
    // The failure is declared a moment later, not at the socket event: a peer that aborts sends
    // an ABORT naming the rank that really died and then exits, and writing to it can raise
    // EPIPE here before that frame has been read. The grace lets the frame (or another peer's
    // own death) arrive first, so errors name the root cause rather than a bystander.
    let declared = false;
    const failSoon = (why: string) => {
      if (declared) return;
      declared = true;
      setTimeout(() => fail(why), FAILURE_GRACE_MS);
    };
    // EPIPE / ECONNRESET are the peer's process going away, seen from a write: the same news as
    // a close, so the same words, whichever the kernel happened to report first.
    socket.on("error", (e: NodeJS.ErrnoException) =>
      failSoon(
        e.code === "EPIPE" || e.code === "ECONNRESET"
          ? "closed its connection"
          : `connection error: ${e.message}`,
      ),
    );
    socket.on("close", () => failSoon("closed its connection"));
    if (leftover.length > 0) this.onData(leftover);
  }

  private onData(d: Buffer): void {
    this.chunks.push(d);
    this.buffered += d.length;
    while (this.buffered >= HEADER_BYTES) {
      const head = this.peek(HEADER_BYTES);
      const len = head.readUInt32LE(0);
      if (this.buffered < HEADER_BYTES + len) break;
      const all = this.take(HEADER_BYTES + len);
      const frame: Frame = {
        group: all.readUInt32LE(4),
        seq: all.readUInt32LE(8),
        op: all.readUInt32LE(12),
        payload: all.subarray(HEADER_BYTES),
      };
      if (frame.group === CONTROL_GROUP) {
        this.onControl(frame);
        continue;
      }
      const ws = this.waiters.get(frame.group);
      const w = ws?.shift();
      if (w) w.resolve(frame);
      else {
        const q = this.queues.get(frame.group) ?? [];
        this.queues.set(frame.group, q);
        q.push(frame);
      }
    }
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!;
    this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!;
  }

  private take(n: number): Buffer {
    const first = this.peek(n);
    const out = Buffer.from(first.subarray(0, n));
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
    return out;
  }

  send(group: number, seq: number, op: number, payload: Uint8Array): void {
    if (this.failure) throw this.failure;
    const head = Buffer.alloc(HEADER_BYTES);
    head.writeUInt32LE(payload.byteLength, 0);
    head.writeUInt32LE(group, 4);
    head.writeUInt32LE(seq, 8);
    head.writeUInt32LE(op, 12);
    this.socket.write(head);
    // Copied: the caller may reuse its array before the socket has flushed it.
    this.socket.write(
      Buffer.from(
        payload.buffer.slice(payload.byteOffset, payload.byteOffset + payload.byteLength),
      ),
    );
    this.bytesSent += HEADER_BYTES + payload.byteLength;
  }

  recv(group: number): Promise<Frame> {
    const q = this.queues.get(group);
    const f = q?.shift();
    if (f) return Promise.resolve(f);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const ws = this.waiters.get(group) ?? [];
      this.waiters.set(group, ws);
      ws.push({ resolve, reject });
    });
  }

  /** Resolves once everything written so far has left this process (or the socket closed). */
  drained(): Promise<void> {
    const s = this.socket;
    if (s.destroyed || s.writableLength === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        s.off("drain", done);
        s.off("close", done);
        resolve();
      };
      s.on("drain", done);
      s.on("close", done);
    });
  }

  /** Fails pending receives (used when another peer failed: the collective cannot finish). */
  abort(e: Error): void {
    for (const ws of this.waiters.values()) for (const w of ws) w.reject(e);
    this.waiters.clear();
  }

  close(): void {
    this.closedByUs = true;
    this.socket.destroy();
  }
}
