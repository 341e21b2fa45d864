/**
 * The document stream of one task: its input files in order, records parsed by the source's
 * reader, turned into Documents. `docIndex` counts documents within the task and is the key
 * the dedup stages use, so every stage that re-reads the task must see the same stream.
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import type { BadRecordLog, Document } from "../document.js";
import { type DownloadOptions, downloadToCache, hubOptionsFromEnv } from "../hub/hub.js";
import { readRecords } from "../io/records.js";
import { getSource } from "../sources/index.js";
import { type Plan, type PlannedTask, plannedSource } from "./plan.js";

export interface TaskDocument {
  doc: Document;
  docIndex: number;
  /** Bytes of the record as stored (uncompressed). */
  bytes: number;
  /** Why the source definition drops it (e.g. RedPajamaGithub), if it does. */
  dropReason: string | undefined;
}

export interface ReadProgress {
  /** Compressed input bytes of files finished so far. */
  inputBytesDone: number;
  /** Files whose UTF-8 byte order mark was stripped (see ReadCounters). */
  utf8Boms?: number;
}

export async function* readTaskDocuments(
  plan: Plan,
  task: PlannedTask,
  bad: BadRecordLog,
  progress?: ReadProgress,
): AsyncGenerator<TaskDocument> {
  const input = plan.config.sources.find((s) => s.name === task.source);
  if (!input) throw new Error(`plan names unknown source ${task.source}`);
  const def = getSource(task.source);
  const pinned = plannedSource(plan, task.source).hub;
  let docIndex = 0;
  for (const file of task.files) {
    let local: string;
    // plannedSource() refuses a hub source without its pinned commit: no pin means local
    if (!pinned) {
      local = join(input.local as string, file.path);
      // the file the plan listed, as it was: one changed since (an interrupted run resumed
      // after an edit) would mix its old and new records in one output
      const st = await stat(local).catch(() => undefined);
      const changed = !st
        ? "gone"
        : st.size !== file.size
          ? `now ${st.size} bytes, planned ${file.size}`
          : file.mtimeMs !== undefined && st.mtimeMs !== file.mtimeMs
            ? "modified"
            : undefined;
      if (changed)
        throw new Error(
          `${task.source}/${file.path} changed since the run was planned (${changed}: ${local}); a run reads only the files it planned: restore it, or remove ${plan.workDir} and the run starts over`,
        );
    } else {
      // the commit the plan listed, never the branch: a resumed run reads the planned files
      const hub: DownloadOptions = {
        ...hubOptionsFromEnv(),
        revision: pinned.commit,
        formerRevision: pinned.revision,
        expectedSize: file.size,
      };
      if (plan.config.hub?.cacheDir) hub.cacheDir = plan.config.hub.cacheDir;
      local = await downloadToCache(pinned.repo, file.path, hub);
    }
    const display = `${task.source}/${file.path}`;
    const counters = { utf8Boms: 0 };
    for await (const rec of readRecords(local, def.format, bad, {
      displayName: display,
      columns: def.columns,
      counters,
    })) {
      const text = rec.value[def.textField];
      const where = rec.line !== undefined ? { line: rec.line } : { row: rec.row };
      if (typeof text !== "string") {
        bad.report({
          file: display,
          ...where,
          reason: `record has no string field "${def.textField}"`,
        });
        continue;
      }
      const meta = def.meta(rec.value, file.path);
      const id = `${display}#${rec.line ?? rec.row}`;
      yield {
        doc: { id, text, source: task.source, meta },
        docIndex: docIndex++,
        bytes: rec.bytes,
        dropReason: def.drop?.(rec.value, meta),
      };
    }
    if (progress) {
      progress.inputBytesDone += file.size;
      progress.utf8Boms = (progress.utf8Boms ?? 0) + counters.utf8Boms;
    }
  }
}
