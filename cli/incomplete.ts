// The warning that dump, export, view and debug print on a trace without a clean end: they
// still do their work on what is readable (exit 0), but nobody should take the output for
// the whole run.

import type { TraceStatus } from "../recorder/reader.js";
import { TraceReader } from "../recorder/reader.js";

/** "incomplete: ends after chunk 3 / record 9000, no index — …", or null for a complete trace. */
export function incompleteText(status: TraceStatus): string | null {
  if (status.complete) return null;
  const where = status.chunks === 0 ? "ends after its header (no complete chunk of records)" : `ends after chunk ${status.chunks} / record ${status.records}`;
  return `incomplete: ${where}, no index — the run was killed or is still running`;
}

/** Prints the warning on stderr when the trace at `path` is incomplete; a broken trace throws its TraceError. */
export function warnIfIncomplete(path: string): void {
  const reader = TraceReader.open(path);
  let text: string | null;
  try {
    text = incompleteText(reader.status());
  } finally {
    reader.close();
  }
  if (text !== null) process.stderr.write(`tapsim: warning: ${path}: ${text}\n`);
}
