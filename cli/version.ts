import { readFileSync } from "node:fs";
import type { RunConfig, TraceHeader } from "../engine/trace_records.js";
import { FORMAT_VERSION } from "../recorder/format.js";

/** From package.json, so traces record the version that wrote them. */
export const TAPSIM_VERSION: string = (
  JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }
).version;

/** The header of a trace this tapsim writes now: current format version, this version, the run's config. */
export function traceHeader(config: RunConfig): TraceHeader {
  return { format: "tapsim-trace", format_version: FORMAT_VERSION, tapsim_version: TAPSIM_VERSION, created_at: new Date().toISOString(), config };
}
