import { describe, expect, it } from "vitest";
import { type FlagSpec, formatHelp, parseFlags } from "./args.js";

const specs: FlagSpec[] = [
  { name: "stage", type: "string", choices: ["v1.0", "basic"], help: "stage" },
  { name: "micro-batch", type: "int", min: 1, help: "mb" },
  { name: "scale", type: "number", min: 0, help: "scale" },
  { name: "help", type: "boolean", help: "help" },
];

describe("flag parsing", () => {
  it("accepts --x v and --x=v, converting types", () => {
    expect(
      parseFlags(["--stage", "basic", "--micro-batch=4", "--scale", "1e-3", "--help"], specs),
    ).toEqual({
      stage: "basic",
      "micro-batch": 4,
      scale: 1e-3,
      help: true,
    });
  });

  it("explains every bad flag", () => {
    expect(() => parseFlags(["--stgae", "basic"], specs)).toThrow(
      /unknown flag --stgae; did you mean --stage\?/,
    );
    expect(() => parseFlags(["--stage"], specs)).toThrow(/--stage needs a value \(v1.0 \| basic\)/);
    expect(() => parseFlags(["--stage", "--help"], specs)).toThrow(/--stage needs a value/);
    expect(() => parseFlags(["--stage", "final"], specs)).toThrow(
      /--stage must be one of v1.0, basic; got "final"/,
    );
    expect(() => parseFlags(["--micro-batch", "two"], specs)).toThrow(
      /--micro-batch must be a number, got "two"/,
    );
    expect(() => parseFlags(["--micro-batch", "2.5"], specs)).toThrow(/must be a whole number/);
    expect(() => parseFlags(["--micro-batch", "0"], specs)).toThrow(/must be at least 1, got 0/);
    expect(() => parseFlags(["basic"], specs)).toThrow(/unexpected argument "basic"/);
    expect(() => parseFlags(["--scale", "1", "--scale", "2"], specs)).toThrow(
      /--scale given twice/,
    );
    expect(() => parseFlags(["--help=yes"], specs)).toThrow(/takes no value/);
  });

  it("formats help with every flag", () => {
    const text = formatHelp("usage: x", "intro", specs);
    for (const s of specs) expect(text).toContain(`--${s.name}`);
  });
});

describe("the -- separator", () => {
  it("skips a bare -- (pnpm hands `pnpm train -- --stage basic` on with it)", () => {
    expect(parseFlags(["--", "--stage", "basic", "--help"], specs)).toEqual({
      stage: "basic",
      help: true,
    });
    expect(parseFlags(["--stage=basic", "--"], specs)).toEqual({ stage: "basic" });
  });

  it("suggests no flag for an empty name", () => {
    const withOut: FlagSpec[] = [...specs, { name: "out", type: "string", help: "out" }];
    expect(() => parseFlags(["--=3"], withOut)).toThrow(/^unknown flag -- \(see --help\)$/);
  });
});
