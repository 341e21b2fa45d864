/**
 * Public entry point of @tinyllama/data. See this package's README for what it owns.
 */
export * from "./shards/index.js";
