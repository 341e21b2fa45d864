/** Central finite differences in float64 over a sample of coordinates. */
export function fdGrad(
  f: (x: Float64Array) => number,
  x: ArrayLike<number>,
  coords: readonly number[],
  h = 1e-5,
): Float64Array {
  const xs = Float64Array.from(x);
  const g = new Float64Array(coords.length);
  coords.forEach((i, j) => {
    const orig = xs[i]!;
    xs[i] = orig + h;
    const up = f(xs);
    xs[i] = orig - h;
    const down = f(xs);
    xs[i] = orig;
    g[j] = (up - down) / (2 * h);
  });
  return g;
}

/** `count` distinct coordinates in [0, n) (all of them when n <= count). */
export function sampleCoords(r: () => number, n: number, count: number): number[] {
  if (n <= count) return Array.from({ length: n }, (_, i) => i);
  const set = new Set<number>();
  while (set.size < count) set.add(Math.floor(r() * n));
  return [...set].sort((a, b) => a - b);
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

export function pick(a: ArrayLike<number>, coords: readonly number[]): Float64Array {
  return Float64Array.from(coords, (i) => a[i]!);
}
