import { describe, expect, it } from "vitest";
import { renderReportSvg } from "./plot.js";
import { describeSchedule, formatDeviation, formatTokens, simulateStage } from "./report.js";

describe("simulateStage", () => {
  const schedule = {
    name: "ramp <&> test",
    totalTokens: 10_000 * 64,
    points: [
      { tokens: 0, weights: { a: 1, b: 0 } },
      { tokens: 1_000 * 64, weights: { a: 0.5, b: 0.5 } },
    ],
  };

  it("cuts the run into contiguous windows, with extra ones over the ramp, that add up", () => {
    const r = simulateStage({ schedule, blockTokens: 64, windows: 10 });
    expect(r.blocks).toBe(10_000);
    expect(r.windows[0]!.startTokens).toBe(0);
    expect(r.windows.at(-1)!.endTokens).toBe(r.tokens);
    for (let i = 1; i < r.windows.length; i++) {
      expect(r.windows[i]!.startTokens).toBe(r.windows[i - 1]!.endTokens);
    }
    // 10 equal windows plus 40 over the ramp (one of which coincides with the first boundary).
    expect(r.windows.filter((w) => w.endTokens <= 1_000 * 64).length).toBe(40);
    // Realised counts per window add up to the totals.
    const fromWindows = r.sources.map((_, s) =>
      r.windows.reduce((acc, w) => acc + (w.realised[s]! * (w.endTokens - w.startTokens)) / 64, 0),
    );
    fromWindows.forEach((v, s) => {
      expect(v).toBeCloseTo(r.realisedBlocks[s]!, 6);
    });
    expect(r.maxAbsDeviation.every((d) => d < 1)).toBe(true);
    expect(r.expectedShare[1]).toBeCloseTo((0.25 * 1000 + 0.5 * 9000) / 10_000, 12);
  });

  it("reports random mode's drift and refuses a stage smaller than one block", () => {
    const r = simulateStage({ schedule, blockTokens: 64, mode: "random", seed: 3 });
    expect(Math.max(...r.maxAbsDeviation)).toBeGreaterThan(1);
    expect(() => simulateStage({ schedule, blockTokens: 10_000 * 64 + 1 })).toThrow(
      /need at least 1/,
    );
    expect(() => simulateStage({ schedule, blockTokens: 64, windows: 0 })).toThrow(/windows/);
  });

  it("renders an SVG with escaped text, one line per source and the bound", () => {
    const svg = renderReportSvg(simulateStage({ schedule, blockTokens: 64, windows: 20 }));
    expect(svg).toMatch(/^<svg [^>]*role="img">\n<title>ramp &#60;&#38;&#62; test/);
    expect(svg).not.toContain("<&>");
    expect(svg).toContain("bound: 1 block");
    expect(svg.match(/<path /g)?.length).toBe(4); // scheduled + deviation per source
  });
});

describe("formatting", () => {
  it("writes token counts as the paper does and never rounds a deviation up to the bound", () => {
    expect(formatTokens(3e12)).toBe("3T");
    expect(formatTokens(350e9)).toBe("350B");
    expect(formatTokens(6e9)).toBe("6B");
    expect(formatTokens(512)).toBe("512");
    expect(formatDeviation(0.99999953)).toBe("0.9999");
    expect(formatDeviation(22935.954)).toBe("22,936");
    const table = describeSchedule({
      totalTokens: 350e9,
      points: [
        { tokens: 0, weights: { a: 1, b: 0 } },
        { tokens: 6e9, weights: { a: 1, b: 1 } },
      ],
    });
    expect(table).toMatch(/6B\s+50\.000%\s+50\.000%/);
    expect(table).toMatch(/stage average\s+50\.429%\s+49\.571%/);
  });
});
