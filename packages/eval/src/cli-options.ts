/** Flag parsing shared by `pnpm eval` and `pnpm eval:problem-solving`: one wording of each error. */

export type DeviceFlag = "cpu" | "cuda" | "auto";
export type DtypeFlag = "f32" | "bf16";

/** `--device`, default auto. */
export function parseDevice(v: string | undefined): DeviceFlag {
  const device = v ?? "auto";
  if (device !== "cpu" && device !== "cuda" && device !== "auto") {
    throw new Error(`--device must be cpu, cuda or auto, got "${device}"`);
  }
  return device;
}

/** `--dtype`, absent means the model's default. */
export function parseDtype(v: string | undefined): DtypeFlag | undefined {
  if (v !== undefined && v !== "f32" && v !== "bf16") {
    throw new Error(`--dtype must be f32 or bf16, got "${v}"`);
  }
  return v;
}
