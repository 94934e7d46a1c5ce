// One lifecycle for every kind of run (in-process, VMs, namespaces, scenarios): start what
// the nodes need, open the trace, run the engine with Ctrl+C and SIGTERM ending it cleanly,
// record an error end if anything throws, and on every exit path stop what was started and
// finalise the trace. The kinds differ only in what they start and what they print.

import type { NodeBackend } from "../engine/backend.js";
import type { Engine, RunControl, RunSummary } from "../engine/engine.js";
import { createEngine } from "../engine/run.js";
import type { RecordSink, RunConfig } from "../engine/trace_records.js";
import { formatVirtualNs } from "../engine/units.js";
import { TraceWriter } from "../recorder/writer.js";
import { traceHeader } from "./version.js";

export interface LifecycleContext {
  readonly control: RunControl;
  /** Aborted when the run is ending (signal, failure, normal end): stop waiting on things. */
  readonly signal: AbortSignal;
  /** A node failed (a VM died): end the run with an error recorded, exit 1. */
  fail(detail: string): void;
  /** Lines for the person watching (suppressed with --json; written over the progress line). */
  log(line: string): void;
}

export interface Started {
  readonly backends: readonly NodeBackend[];
  /** The engine exists and is about to run (announce READY, watch boots). */
  running?(engine: Engine): void;
  /** Undoes start(); called on every exit path once start() has returned. */
  stop(): Promise<void>;
}

export interface RunOptions {
  readonly config: RunConfig;
  readonly trace_path: string;
  readonly json: boolean;
  readonly progress: boolean;
  readonly pace?: number;
  /** The progress line's text (shown only on a terminal). */
  readonly progressText?: (engine: Engine) => string;
  /** Builds the engine for the backends (default: createEngine); a replay-like run wraps it. */
  readonly makeEngine?: (config: RunConfig, backends: readonly NodeBackend[], sink: RecordSink) => Engine;
  start(ctx: LifecycleContext): Promise<Started>;
}

export interface RunOutcome {
  readonly summary: RunSummary;
  readonly pace_wait_ns: number;
  /** Pipelined schedule: slices begun before the set ahead of theirs was all collected. */
  readonly slices_begun_early: number;
  /** What failed, one line each (a node that died). */
  readonly failures: readonly string[];
}

export async function executeRun(o: RunOptions): Promise<RunOutcome> {
  TraceWriter.checkPath(o.trace_path);
  const control: RunControl = { stop_requested: false, ...(o.pace === undefined ? {} : { pace: o.pace }) };
  const aborter = new AbortController();
  const failures: string[] = [];
  const progress_line = o.progress && process.stderr.isTTY === true && !o.json && o.progressText !== undefined;
  const ctx: LifecycleContext = {
    control,
    signal: aborter.signal,
    fail: (detail) => {
      failures.push(detail);
      control.stop_requested = true;
      control.stop_reason = "error";
      control.stop_detail ??= detail;
      aborter.abort();
    },
    log: (line) => {
      if (o.json) return;
      if (progress_line) process.stderr.write("\r\x1b[K"); // over the progress line, not after it
      console.error(line);
    },
  };
  const onSignal = () => {
    control.stop_requested = true;
    aborter.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  let started: Started | null = null;
  let writer: TraceWriter | null = null;
  try {
    started = await o.start(ctx);
    writer = TraceWriter.create(o.trace_path, traceHeader(o.config));
    const engine = (o.makeEngine ?? createEngine)(o.config, started.backends, writer);
    if (progress_line) control.onProgress = (e) => process.stderr.write(`\r\x1b[K${o.progressText!(e)}`);
    started.running?.(engine);
    const summary = await engine.run(control).catch((err: unknown) => {
      engine.finish("error", (err as Error).message);
      throw err;
    });
    return { summary, pace_wait_ns: engine.pace_wait_ns, slices_begun_early: engine.slices_begun_early, failures };
  } finally {
    aborter.abort();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await started?.stop();
    writer?.close();
    if (progress_line) process.stderr.write("\r\x1b[K");
  }
}

/** 1 when a node failed, 130 when interrupted, else 0. */
export function runExitCode(outcome: RunOutcome): number {
  if (outcome.failures.length > 0) return 1;
  return outcome.summary.end_reason === "interrupted" ? 130 : 0;
}

/** The line every kind prints about how far the run got. */
export function ranLine(s: RunSummary): string {
  return `ran to t=${formatVirtualNs(s.end_ns)} virtual (${s.end_reason}) in ${(s.wall_ns / 1e9).toFixed(2)} s wall`;
}
