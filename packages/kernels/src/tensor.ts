/**
 * Tensor: a handle to native memory (host memory on CPU, device memory on CUDA). Ownership is
 * explicit: call dispose() when done. A finalizer in the addon frees forgotten handles when
 * they are garbage collected, but only as a safety net: leak tests use Backend.stats().
 * Views share the allocation, which stays alive until every handle over it is gone.
 */
import type { NativeTensor } from "./native.js";
import type { DType, HostArray } from "./types.js";

const BYTES: Record<DType, number> = { f32: 4, bf16: 2, i32: 4, u16: 2 };

export function dtypeBytes(dtype: DType): number {
  return BYTES[dtype];
}

export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function hostArrayFor(dtype: DType, n: number): HostArray {
  if (dtype === "i32") return new Int32Array(n);
  if (dtype === "u16") return new Uint16Array(n);
  return new Float32Array(n);
}

export class Tensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly numel: number;
  /** The addon handle; pass Tensors to Backend methods, not this. */
  readonly native: NativeTensor;

  constructor(native: NativeTensor, shape: readonly number[], dtype: DType) {
    this.native = native;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.numel = numelOf(shape);
  }

  get disposed(): boolean {
    return this.native.disposed;
  }

  get bytes(): number {
    return this.numel * BYTES[this.dtype];
  }

  /**
   * Copies to the host: Float32Array for f32 and bf16, Int32Array for i32, Uint16Array for
   * u16. Pass `into` to reuse an array (a Uint16Array reads bf16 as raw bits).
   */
  toHost(into?: HostArray): HostArray {
    return this.native.toHost(into ?? hostArrayFor(this.dtype, this.numel));
  }

  /** toHost() for float tensors, typed as Float32Array. */
  toFloat32(): Float32Array {
    if (this.dtype !== "f32" && this.dtype !== "bf16") {
      throw new TypeError(`toFloat32: tensor is ${this.dtype}, not f32 or bf16`);
    }
    return this.native.toHost(new Float32Array(this.numel));
  }

  /** Overwrites the tensor from host data (same conversions as Backend.fromHost). */
  copyFromHost(data: HostArray): this {
    this.native.fromHost(data);
    return this;
  }

  /** A view of `shape` starting `offsetElements` elements in; no copy, same dtype. */
  view(offsetElements: number, shape: readonly number[]): Tensor {
    return this.viewBytes(offsetElements * BYTES[this.dtype], shape, this.dtype);
  }

  /** A view reinterpreting bytes (used by arenas); byteOffset must suit the dtype. */
  viewBytes(byteOffset: number, shape: readonly number[], dtype: DType): Tensor {
    return new Tensor(this.native.view(byteOffset, shape, dtype), shape, dtype);
  }

  /** Same memory, new shape with the same numel. */
  reshape(shape: readonly number[]): Tensor {
    if (numelOf(shape) !== this.numel) {
      throw new RangeError(
        `reshape: [${shape.join(",")}] has ${numelOf(shape)} elements, tensor has ${this.numel}`,
      );
    }
    return this.view(0, shape);
  }

  /** Frees this handle; the memory goes when no view shares it. Idempotent. */
  dispose(): void {
    this.native.dispose();
  }

  toString(): string {
    return `Tensor(${this.dtype}[${this.shape.join(",")}]${this.disposed ? ", disposed" : ""})`;
  }
}
