/** Flag parsing shared by `pnpm eval` and `pnpm eval:problem-solving`: one wording of each error. */
import { resolve } from "node:path";
import { type HubOptions, hubOptionsFromEnv } from "@tinyllama/data";

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

/** The flags both commands take (for `parseArgs`; each command adds its own). */
export const COMMON_FLAGS = {
  checkpoint: { type: "string" },
  tasks: { type: "string" },
  "data-dir": { type: "string" },
  hub: { type: "boolean" },
  "hub-revision": { type: "string" },
  limit: { type: "string" },
  device: { type: "string" },
  dtype: { type: "string" },
  "batch-size": { type: "string" },
  tokenizer: { type: "string" },
  output: { type: "string" },
  "log-samples": { type: "boolean" },
  help: { type: "boolean" },
} as const;

/** A numeric flag: absent is undefined, otherwise a finite number >= min (an integer if asked). */
export function numberFlag(
  name: string,
  v: string | undefined,
  min: number,
  integer: boolean,
): number | undefined {
  if (v === undefined) return undefined;
  // plain decimal only: Number() would also take "0x10", "1e1" and " 3 "
  const x = (integer ? /^\d+$/ : /^\d+(\.\d+)?$|^\.\d+$/).test(v) ? Number(v) : Number.NaN;
  if (!Number.isFinite(x) || x < min) {
    const what =
      integer && min === 1
        ? "a positive integer"
        : integer
          ? `an integer >= ${min}`
          : `a number >= ${min}`;
    // say which spellings are taken: "1e9" or "+3" is refused for its form, not its value
    const form = integer ? "decimal digits only" : "plain decimal like 3 or 0.5";
    throw new Error(`--${name} must be ${what} (${form}), got "${v}"`);
  }
  return x;
}

/**
 * Where the task data comes from: `--data-dir` (a local mirror) or `--hub`, which reads the hub
 * itself (HF_TOKEN and HF_ENDPOINT from the environment, `--hub-revision`); neither: the
 * fixtures. Both, or `--hub-revision` without `--hub`, is an error rather than one ignored.
 */
export function dataSource(values: {
  "data-dir"?: string | undefined;
  hub?: boolean | undefined;
  "hub-revision"?: string | undefined;
}): { dataDir: string | undefined; hub: HubOptions | undefined } {
  if (values.hub && values["data-dir"] !== undefined) {
    throw new Error("--hub and --data-dir together: pick one source for the task data");
  }
  if (values["hub-revision"] !== undefined && !values.hub) {
    throw new Error("--hub-revision needs --hub");
  }
  const dataDir = values["data-dir"] ? resolve(values["data-dir"]) : undefined;
  const hub =
    values.hub && !dataDir
      ? {
          ...hubOptionsFromEnv(),
          ...(values["hub-revision"] ? { revision: values["hub-revision"] } : {}),
        }
      : undefined;
  return { dataDir, hub };
}
