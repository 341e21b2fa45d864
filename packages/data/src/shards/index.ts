export * from "./litpkds.js";
export * from "./manifest.js";
export * from "./shard-set.js";
export * from "./shard-writer.js";
