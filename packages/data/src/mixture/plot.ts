/**
 * SVG plot of a stage report, as a string (no dependency, no I/O): top panel, each source's
 * scheduled share (line) and realised share per window (dots) over the stage; bottom panel,
 * realised minus expected block count (cumulative) at the end of each window.
 */
import { formatDeviation, formatTokens, type StageReport } from "./report.js";

const PALETTE = [
  "#1f77b4",
  "#d62728",
  "#2ca02c",
  "#9467bd",
  "#ff7f0e",
  "#8c564b",
  "#e377c2",
  "#17becf",
];
const WIDTH = 960;
const HEIGHT = 640;
const LEFT = 80;
const RIGHT = 210;
const TOP = 62;
const GAP = 60;
const SHARE_HEIGHT = 330;
const DEV_HEIGHT = HEIGHT - TOP - SHARE_HEIGHT - GAP - 50;

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** "Nice" tick values covering [lo, hi]. */
function ticks(lo: number, hi: number, count: number): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step)
    out.push(+v.toPrecision(12));
  return out;
}

function num(v: number): string {
  return (Math.round(v * 100) / 100).toString();
}

export function renderReportSvg(report: StageReport): string {
  const plotWidth = WIDTH - LEFT - RIGHT;
  const x = (tokens: number) => LEFT + (tokens / report.tokens) * plotWidth;
  // Loops, not Math.max(...spread): a report can hold more values than the call stack takes.
  let maxShare = 0.05;
  let maxDev = 1;
  for (const w of report.windows) {
    for (const v of w.scheduled) maxShare = Math.max(maxShare, v);
    for (const v of w.realised) maxShare = Math.max(maxShare, v);
    for (const v of w.deviation) maxDev = Math.max(maxDev, Math.abs(v));
  }
  const shareTop = Math.min(1, Math.ceil(maxShare * 10 + 0.5) / 10);
  const yShare = (v: number) => TOP + SHARE_HEIGHT - (v / shareTop) * SHARE_HEIGHT;
  const devTop = TOP + SHARE_HEIGHT + GAP;
  const devLimit = maxDev * 1.1;
  const yDev = (v: number) => devTop + DEV_HEIGHT / 2 - (v / devLimit) * (DEV_HEIGHT / 2);
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12" role="img">`,
    `<title>${escapeXml(`${report.name}: scheduled vs realised shares (${report.mode})`)}</title>`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${LEFT}" y="22" font-size="15" font-weight="bold">${escapeXml(
      `${report.name}: scheduled vs realised shares`,
    )}</text>`,
    `<text x="${LEFT}" y="42" fill="#444">${escapeXml(
      `${report.mode} mode, ${formatTokens(report.tokens)} tokens, ${report.blocks.toLocaleString("en-US")} blocks of ${report.blockTokens} tokens, seed ${JSON.stringify(report.seed)}`,
    )}</text>`,
  );
  // Axes and grid.
  const xTicks = ticks(0, report.tokens, 8);
  for (const [top, height] of [
    [TOP, SHARE_HEIGHT],
    [devTop, DEV_HEIGHT],
  ] as const) {
    parts.push(
      `<rect x="${LEFT}" y="${top}" width="${plotWidth}" height="${height}" fill="none" stroke="#444"/>`,
    );
    for (const t of xTicks) {
      parts.push(
        `<line x1="${num(x(t))}" y1="${top}" x2="${num(x(t))}" y2="${top + height}" stroke="#eee"/>`,
      );
    }
  }
  for (const t of xTicks) {
    parts.push(
      `<text x="${num(x(t))}" y="${devTop + DEV_HEIGHT + 16}" text-anchor="middle">${formatTokens(t)}</text>`,
    );
  }
  parts.push(
    `<text x="${LEFT + plotWidth / 2}" y="${HEIGHT - 8}" text-anchor="middle">tokens consumed in the stage</text>`,
  );
  for (const v of ticks(0, shareTop, 5)) {
    parts.push(
      `<line x1="${LEFT}" y1="${num(yShare(v))}" x2="${LEFT + plotWidth}" y2="${num(yShare(v))}" stroke="#eee"/>`,
      `<text x="${LEFT - 6}" y="${num(yShare(v) + 4)}" text-anchor="end">${+(v * 100).toFixed(1)}%</text>`,
    );
  }
  parts.push(
    `<text transform="translate(18 ${TOP + SHARE_HEIGHT / 2}) rotate(-90)" text-anchor="middle">share of blocks</text>`,
  );
  for (const v of ticks(-devLimit, devLimit, 4)) {
    parts.push(
      `<line x1="${LEFT}" y1="${num(yDev(v))}" x2="${LEFT + plotWidth}" y2="${num(yDev(v))}" stroke="${v === 0 ? "#999" : "#eee"}"/>`,
      `<text x="${LEFT - 6}" y="${num(yDev(v) + 4)}" text-anchor="end">${+v.toPrecision(3)}</text>`,
    );
  }
  parts.push(
    `<text transform="translate(18 ${devTop + DEV_HEIGHT / 2}) rotate(-90)" text-anchor="middle">realised − expected (blocks)</text>`,
  );
  if (report.mode === "low-discrepancy") {
    // The guarantee: |realised - expected| < 1 block at every prefix.
    for (const v of [-1, 1]) {
      parts.push(
        `<line x1="${LEFT}" y1="${num(yDev(v))}" x2="${LEFT + plotWidth}" y2="${num(yDev(v))}" stroke="#888" stroke-dasharray="6 4"/>`,
      );
    }
    parts.push(
      `<text x="${LEFT + plotWidth - 4}" y="${num(yDev(1) - 4)}" text-anchor="end" fill="#666">bound: 1 block</text>`,
    );
  }
  // Series.
  report.sources.forEach((source, s) => {
    const color = PALETTE[s % PALETTE.length]!;
    const scheduled = report.windows
      .map(
        (w, i) =>
          `${i === 0 ? "M" : "L"}${num(x((w.startTokens + w.endTokens) / 2))},${num(yShare(w.scheduled[s]!))}`,
      )
      .join(" ");
    parts.push(`<path d="${scheduled}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (const w of report.windows) {
      parts.push(
        `<circle cx="${num(x((w.startTokens + w.endTokens) / 2))}" cy="${num(yShare(w.realised[s]!))}" r="2" fill="${color}" fill-opacity="0.6"/>`,
      );
    }
    const dev = report.windows.map((w) => `L${num(x(w.endTokens))},${num(yDev(w.deviation[s]!))}`);
    parts.push(
      `<path d="M${num(x(0))},${num(yDev(0))} ${dev.join(" ")}" fill="none" stroke="${color}" stroke-width="1.5"/>`,
    );
    // Legend.
    const ly = TOP + 10 + s * 54;
    const lx = LEFT + plotWidth + 16;
    parts.push(
      `<line x1="${lx}" y1="${ly}" x2="${lx + 20}" y2="${ly}" stroke="${color}" stroke-width="2"/>`,
      `<circle cx="${lx + 10}" cy="${ly + 14}" r="2.5" fill="${color}"/>`,
      `<text x="${lx + 26}" y="${ly + 4}">${escapeXml(source)} scheduled</text>`,
      `<text x="${lx + 26}" y="${ly + 18}">realised ${(report.realisedShare[s]! * 100).toFixed(3)}%</text>`,
      `<text x="${lx + 26}" y="${ly + 32}" fill="#555">max |dev| ${formatDeviation(report.maxAbsDeviation[s]!)} blocks</text>`,
    );
  });
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}
