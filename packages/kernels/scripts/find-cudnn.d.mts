/** Types of find-cudnn.mjs (plain JavaScript: it runs before tsc, from build-native.mjs). */
export function findCudnnWheel(opts?: {
  python?: string;
  timeoutMs?: number;
}): { home: string } | { reason: string };
