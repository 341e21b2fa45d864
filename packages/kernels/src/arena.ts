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

/** Byte offsets of each entry; throws on duplicate names. */
export function planArena(entries: readonly ArenaEntry[]): ArenaLayout {
  const offsets = new Map<string, number>();
  let bytes = 0;
  for (const e of entries) {
    if (offsets.has(e.name)) throw new Error(`arena: duplicate entry name "${e.name}"`);
    offsets.set(e.name, bytes);
    const size = numelOf(e.shape) * dtypeBytes(e.dtype);
    bytes += Math.ceil(size / ARENA_ALIGNMENT) * ARENA_ALIGNMENT;
  }
  return { bytes, offsets };
}

export class Arena {
  readonly bytes: number;
  private readonly base: Tensor;
  private readonly views = new Map<string, Tensor>();

  /** Use Backend.arena(); `base` is a u16 allocation of at least `bytes`. */
  constructor(base: Tensor, entries: readonly ArenaEntry[], layout: ArenaLayout) {
    this.base = base;
    this.bytes = layout.bytes;
    for (const e of entries) {
      const offset = layout.offsets.get(e.name) ?? 0;
      this.views.set(e.name, base.viewBytes(offset, e.shape, e.dtype));
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
