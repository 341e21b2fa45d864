/**
 * Test helpers for packages that test code built on the kernels: seeded random inputs,
 * poisoned outputs, relative error, finite differences, the cross-backend suite and the
 * native-boundary fuzz. Exported as "@tinyllama/kernels/testing".
 */
export {
  type Check,
  type CrossCase,
  crossCases,
  SMALL,
  type SuiteShapes,
  tolFor,
} from "./cross-backend.js";
export { dot, fdGrad, pick, sampleCoords } from "./fd.js";
export { type FuzzResult, fuzzNative, fuzzPool, NATIVE_OPS, OVERFLOW_SHAPES } from "./fuzz.js";
export { poison, poisoned, randInts, randn, relErr, rng, Scope } from "./util.js";
