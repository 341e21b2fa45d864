/**
 * A source definition: everything the pipeline knows about one corpus. Adding a fifth corpus
 * is one small file like slimpajama.ts registered in index.ts.
 */
import type { InputFormat } from "../io/records.js";

export interface SourceDefinition {
  /** Name used in paths and manifests: data/<name>/. */
  name: string;
  /** Hugging Face dataset repo, e.g. "cerebras/SlimPajama-627B". */
  hubRepo: string;
  /** Whether the hub repo is gated (needs HF_TOKEN). */
  gated: boolean;
  format: InputFormat;
  /** Record field holding the document text. */
  textField: string;
  /** Columns to read from parquet (text + whatever meta() uses). */
  columns?: string[];
  /**
   * Named subsets -> path globs relative to the dataset root. `defaultSubsets` are used when a
   * config names none.
   */
  subsets: Record<string, string[]>;
  defaultSubsets: string[];
  /** Metadata to keep from a record (small: it goes into signatures' side files only). */
  meta(record: Record<string, unknown>, path: string): Record<string, unknown>;
  /** Returns the reason a record is dropped by the corpus definition, or undefined to keep. */
  drop?(record: Record<string, unknown>, meta: Record<string, unknown>): string | undefined;
}
