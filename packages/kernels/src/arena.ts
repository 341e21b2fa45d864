/**
 * Planned arenas: one native allocation per group (parameters, gradients, optimizer state,
 * activations), every entry a named 256-byte aligned view. The trainer plans its arenas once
 * from the model config and (B, T) and allocates nothing per step.
 */
import { dtypeBytes, numelOf, type Tensor } from "./tensor.js";
import type { DType } from "./types.js";

export interface ArenaEntry {
  name: string;
  shape: readonly number[];
  dtype: DType;
}

export const ARENA_ALIGNMENT = 256;

export interface ArenaLayout {
  bytes: number;
  offsets: Map<string, number>;
}

/** The native limits of one tensor (native/napi/tensor_handle.h: kMaxDims, kMaxElements). */
const MAX_DIMS = 6;
const MAX_ELEMENTS = 2 ** 40;

/** The bytes of a well-formed entry; throws a TypeError naming the entry otherwise. */
function entryBytes(e: ArenaEntry, index: number): number {
  if (typeof e !== "object" || e === null) {
    throw new TypeError(`arena: entry ${index} must be an object`);
  }
  if (typeof e.name !== "string") throw new TypeError(`arena: entry ${index} has no string name`);
  const what = `arena: entry "${e.name}"`;
  const size: unknown = dtypeBytes(e.dtype);
  if (typeof size !== "number") {
    throw new TypeError(`${what}: dtype must be one of f32, bf16, i32, u16`);
  }
  if (!Array.isArray(e.shape)) throw new TypeError(`${what}: shape must be an array`);
  for (const d of e.shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new TypeError(`${what}: shape must be an array of non-negative integers`);
    }
  }
  return numelOf(e.shape) * size;
}

/**
 * Byte offsets of each entry; throws on duplicate names and on malformed entries (a shape that
 * is not an array of non-negative integers, an unknown dtype), so nothing is allocated for a
 * plan that could not be laid out.
 */
export function planArena(entries: readonly ArenaEntry[]): ArenaLayout {
  if (!Array.isArray(entries)) throw new TypeError("arena: entries must be an array");
  const offsets = new Map<string, number>();
  let bytes = 0;
  for (const [i, e] of entries.entries()) {
    const size = entryBytes(e, i);
    if (offsets.has(e.name)) throw new Error(`arena: duplicate entry name "${e.name}"`);
    offsets.set(e.name, bytes);
    bytes += Math.ceil(size / ARENA_ALIGNMENT) * ARENA_ALIGNMENT;
  }
  return { bytes, offsets };
}

/**
 * Throws for an entry the addon would refuse as a view (more than 6 dimensions, more than 2^40
 * elements in its non-zero dimensions): Backend.arena() checks every entry before allocating.
 */
export function checkArenaEntryLimits(entries: readonly ArenaEntry[]): void {
  for (const e of entries) {
    if (e.shape.length > MAX_DIMS) {
      throw new RangeError(`arena: entry "${e.name}" has more than ${MAX_DIMS} dimensions`);
    }
    let nonzero = 1;
    for (const d of e.shape) if (d > 0) nonzero *= d;
    if (nonzero > MAX_ELEMENTS) {
      throw new RangeError(`arena: entry "${e.name}" has more than 2^40 elements`);
    }
  }
}

export class Arena {
  readonly bytes: number;
  private readonly base: Tensor;
  private readonly views = new Map<string, Tensor>();

  /**
   * Use Backend.arena(); `base` is a u16 allocation of at least `bytes`. If a view cannot be
   * made, the views made so far are disposed before the error propagates (`base` stays the
   * caller's to dispose).
   */
  constructor(base: Tensor, entries: readonly ArenaEntry[], layout: ArenaLayout) {
    this.base = base;
    this.bytes = layout.bytes;
    try {
      for (const e of entries) {
        const offset = layout.offsets.get(e.name) ?? 0;
        this.views.set(e.name, base.viewBytes(offset, e.shape, e.dtype));
      }
    } catch (err) {
      for (const t of this.views.values()) t.dispose();
      this.views.clear();
      throw err;
    }
  }

  get(name: string): Tensor {
    const t = this.views.get(name);
    if (!t) throw new Error(`arena: no entry named "${name}"`);
    return t;
  }

  has(name: string): boolean {
    return this.views.has(name);
  }

  names(): string[] {
    return [...this.views.keys()];
  }

  /** All entries in order (e.g. every gradient for the global norm). */
  tensors(): Tensor[] {
    return [...this.views.values()];
  }

  /** The whole allocation as one flat u16 tensor (for fill/zero of everything at once). */
  get whole(): Tensor {
    return this.base;
  }

  dispose(): void {
    for (const t of this.views.values()) t.dispose();
    this.base.dispose();
  }
}
