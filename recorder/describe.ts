// One-line human descriptions of records, shared by replay, diff, info and the debugger.

import { RECORD_KIND_NAMES, RecordKind, type TraceRecord } from "../engine/trace_records.js";
import { formatVirtualNs } from "../engine/units.js";
import { decodeFrame } from "./frame_decode.js";

export function describeRecord(r: TraceRecord): string {
  const kind = RECORD_KIND_NAMES[r[0]] ?? `kind_${r[0]}`;
  switch (r[0]) {
    case RecordKind.SliceGrant:
      return `${formatVirtualNs(r[2])} ${kind} node=${r[1]} [${formatVirtualNs(r[2])}, ${formatVirtualNs(r[3])})`;
    case RecordKind.SliceEnd:
      return `${formatVirtualNs(r[2])} ${kind} node=${r[1]} wake=${r[3] < 0 ? "never" : formatVirtualNs(r[3])}`;
    case RecordKind.FrameEmit:
      return `${formatVirtualNs(r[2])} ${kind} node=${r[1]} frame=${r[3]} ${r[4].length}B`;
    case RecordKind.FrameDeliver:
      return `${formatVirtualNs(r[2])} ${kind} to=${r[1]} from=${r[4]} frame=${r[3]} sent=${formatVirtualNs(r[5])} latency=${formatMs(r[2] - r[5])}`;
    case RecordKind.FrameDrop:
      return `${formatVirtualNs(r[2])} ${kind} to=${r[1] < 0 ? "none" : r[1]} from=${r[4]} frame=${r[3]} reason=${r[5]}`;
    case RecordKind.Lifecycle:
      return `${formatVirtualNs(r[2])} ${kind} node=${r[1]} ${r[3]}${r[4] ? ` (${r[4]})` : ""}`;
    case RecordKind.Mark:
      return `${formatVirtualNs(r[2])} ${kind} node=${r[1] < 0 ? "run" : r[1]} ${quoteText(r[3])}`;
    case RecordKind.RunEnd:
      return `${formatVirtualNs(r[1])} ${kind} ${r[2]}${r.length === 4 ? ` (${r[3]})` : ""}`;
    case RecordKind.GuestOutput:
      return `${formatVirtualNs(r[2])} ${kind} node=${r[1]} ${quoteText(r[3])}`;
    case RecordKind.MgmtIn:
    case RecordKind.MgmtOut:
      // Decoded here: a management frame has no frame id to look it up by later.
      return `${formatVirtualNs(r[2])} ${kind} node=${r[1]} ${r[3].length}B ${frameSummary(r[3])}`;
    case RecordKind.Fault:
      return `${formatVirtualNs(r[2])} ${kind} ${r[1] < 0 ? "network" : `node=${r[1]}`} ${r[3]}${r[4] ? ` ${quoteText(r[4])}` : ""}`;
    case RecordKind.Command:
      return `${formatVirtualNs(r[2])} ${kind} node=${r[1]} ${r[3]} ${r[4]} ${quoteText(r[5])}`;
  }
}

/**
 * Text in double quotes on one line, whatever a guest printed: JSON escapes (\n, \r, \t,
 * \u001b for ANSI escapes, every other C0 control), plus DEL, the C1 controls and the
 * Unicode line separators, which JSON leaves raw and terminals act on.
 */
export function quoteText(text: string): string {
  return JSON.stringify(text).replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** decodeFrame's one-liner; never throws (a frame it cannot read is described as such). */
export function frameSummary(bytes: Uint8Array): string {
  try {
    return decodeFrame(bytes).summary;
  } catch (err) {
    return `undecodable frame (${err instanceof Error ? err.message : String(err)})`;
  }
}

export function formatMs(ns: number): string {
  return `${(ns / 1e6).toFixed(6).replace(/\.?0+$/, "")}ms`;
}

/**
 * Exact equality of two records (bytes compared by value). Unrolled: every record has 3 to 6
 * fields, and a generic loop over tuples of mixed element kinds was the top item of replay's
 * profile.
 */
export function recordsEqual(a: TraceRecord, b: TraceRecord): boolean {
  const n = a.length;
  if (n !== b.length || a[0] !== b[0] || a[1] !== b[1] || a[2] !== b[2]) return false;
  if (n === 3) return true;
  if (a[0] === RecordKind.FrameEmit) return a[3] === b[3] && (a[4] === b[4] || bytesEqual(a[4], b[4] as Uint8Array));
  if (a[0] === RecordKind.MgmtIn || a[0] === RecordKind.MgmtOut) return a[3] === b[3] || bytesEqual(a[3], b[3] as Uint8Array);
  if (a[3] !== b[3]) return false;
  if (n === 4) return true;
  if (a[4] !== b[4]) return false;
  return n === 5 || (a as unknown[])[5] === (b as unknown[])[5];
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
