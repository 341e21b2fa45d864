/**
 * Public entry point of @tinyllama/tokenizer. See this package's README for what it owns.
 * Exports are added here as the package grows; nothing else in the workspace imports deeper paths.
 */
export {};
