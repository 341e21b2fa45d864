/**
 * A small, strict flag parser: `--name value` or `--name=value` (a bare `--` is skipped), every
 * flag declared with its type and help text, and a clear error for anything unknown, missing or
 * malformed (with the closest known flag suggested). Returns plain values; defaults that depend
 * on the device are resolved by the caller.
 */

export type FlagType = "string" | "int" | "number" | "boolean";

export interface FlagSpec {
  name: string;
  type: FlagType;
  help: string;
  /** Shown in --help; the caller applies it. */
  defaultText?: string;
  /** Allowed values for string flags. */
  choices?: readonly string[];
  /** Smallest allowed value for numeric flags. */
  min?: number;
  metavar?: string;
}

export class UsageError extends Error {
  override name = "UsageError";
}

export type ParsedFlags = Record<string, string | number | boolean | undefined>;

function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(
        d[i - 1]![j]! + 1,
        d[i]![j - 1]! + 1,
        d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
  }
  return d[a.length]![b.length]!;
}

export function parseFlags(argv: string[], specs: FlagSpec[]): ParsedFlags {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const out: ParsedFlags = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    // `pnpm train -- --stage basic` (npm's habit) hands the `--` on to the command; every
    // argument here is a flag, so the separator carries no meaning and is skipped.
    if (arg === "--") continue;
    if (!arg.startsWith("--")) {
      throw new UsageError(`unexpected argument "${arg}" (flags start with --; see --help)`);
    }
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const spec = byName.get(name);
    if (!spec) {
      const near = specs
        .map((s) => ({ s, d: distance(name, s.name) }))
        .sort((a, b) => a.d - b.d)[0];
      const hint = name !== "" && near && near.d <= 3 ? `; did you mean --${near.s.name}?` : "";
      throw new UsageError(`unknown flag --${name}${hint} (see --help)`);
    }
    if (name in out) throw new UsageError(`--${name} given twice`);
    let raw: string | undefined;
    if (spec.type === "boolean") {
      if (eq !== -1) {
        const v = arg.slice(eq + 1);
        if (v !== "true" && v !== "false") {
          throw new UsageError(`--${name} takes no value (or =true / =false), got "${v}"`);
        }
        out[name] = v === "true";
      } else out[name] = true;
      continue;
    }
    if (eq !== -1) raw = arg.slice(eq + 1);
    else {
      raw = argv[i + 1];
      if (raw === undefined || raw.startsWith("--")) {
        throw new UsageError(
          `--${name} needs a value${spec.choices ? ` (${spec.choices.join(" | ")})` : ""}`,
        );
      }
      i++;
    }
    out[name] = convert(spec, raw);
  }
  return out;
}

function convert(spec: FlagSpec, raw: string): string | number {
  const flag = `--${spec.name}`;
  if (spec.type === "string") {
    if (raw === "") throw new UsageError(`${flag} needs a non-empty value`);
    if (spec.choices && !spec.choices.includes(raw)) {
      throw new UsageError(`${flag} must be one of ${spec.choices.join(", ")}; got "${raw}"`);
    }
    return raw;
  }
  const v = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(v)) {
    throw new UsageError(`${flag} must be a number, got "${raw}"`);
  }
  if (spec.type === "int" && !Number.isSafeInteger(v)) {
    throw new UsageError(`${flag} must be a whole number, got "${raw}"`);
  }
  if (spec.min !== undefined && v < spec.min) {
    throw new UsageError(`${flag} must be at least ${spec.min}, got ${raw}`);
  }
  return v;
}

export function formatHelp(usage: string, intro: string, specs: FlagSpec[]): string {
  const rows = specs.map((s) => {
    const meta =
      s.type === "boolean"
        ? ""
        : ` <${s.metavar ?? (s.choices ? s.choices.join("|") : s.type === "string" ? "value" : "n")}>`;
    return { left: `  --${s.name}${meta}`, s };
  });
  const width = Math.min(40, Math.max(...rows.map((r) => r.left.length)) + 2);
  const lines = [usage, "", intro, "", "Options:"];
  for (const { left, s } of rows) {
    const help = s.defaultText ? `${s.help} (default: ${s.defaultText})` : s.help;
    if (left.length + 2 > width) lines.push(left, `${" ".repeat(width)}${help}`);
    else lines.push(`${left.padEnd(width)}${help}`);
  }
  return lines.join("\n");
}
