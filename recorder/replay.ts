// Deterministic replay: rebuild the engine from the trace header, feed every node's recorded
// inputs (frames emitted, marks, lifecycle, slice ends) back through replay backends, and
// check every record the engine produces against the trace, in order. The first record that
// differs is the divergence.

import type { NodeBackend, NodeControl, SliceOutput, SliceRequest, SliceResult } from "../engine/backend.js";
import type { Engine } from "../engine/engine.js";
import { InputError, SliceResultError } from "../engine/errors.js";
import { createEngine } from "../engine/run.js";
import { RecordKind, type RecordSink, type TraceHeader, type TraceRecord } from "../engine/trace_records.js";
import { VIRTUAL_NS_NEVER } from "../engine/units.js";
import { recordsEqual } from "./describe.js";
import { TraceError } from "./errors.js";
import { TraceReader } from "./reader.js";

export const CONTEXT_RECORDS = 5;
/** Bound on records one slice's inputs may span (lookahead buffer of the replay cursor). */
const SLICE_INPUT_RECORDS_MAX = 2_000_000;

export interface Divergence {
  /** 0-based ordinal of the first differing record. */
  index: number;
  expected: TraceRecord | null;
  actual: TraceRecord | null;
  /** Records just before it (identical in both). */
  context: TraceRecord[];
  why: string;
}

export interface ReplayOutcome {
  identical: boolean;
  records_checked: number;
  /** Slices whose records were all re-derived (slice_end checked). */
  slices_checked: number;
  divergence: Divergence | null;
  /** The trace stops without a clean end (killed run): replay checked everything up to there. */
  trace_incomplete: boolean;
  header: TraceHeader;
}

/** The trace stops (killed run) where the engine wants more records. */
export class EndOfTrace extends Error {}
/** The engine produced a record other than the trace's next one. */
export class Diverged extends Error {
  constructor(readonly divergence: Omit<Divergence, "context" | "index">) {
    super(divergence.why);
  }
}

/** Sequential reader with lookahead (for slice inputs) and a short history (for context). */
export class RecordCursor {
  private readonly ahead: TraceRecord[] = [];
  private ahead_head = 0;
  readonly history: TraceRecord[] = [];
  consumed = 0;

  constructor(private readonly source: Iterator<TraceRecord>) {}

  peek(offset = 0): TraceRecord | undefined {
    while (this.ahead.length - this.ahead_head <= offset) {
      if (this.ahead.length - this.ahead_head > SLICE_INPUT_RECORDS_MAX) throw new Error("slice inputs exceed the lookahead bound");
      const next = this.source.next();
      if (next.done) return undefined;
      this.ahead.push(next.value);
    }
    return this.ahead[this.ahead_head + offset];
  }

  next(): TraceRecord | undefined {
    const r = this.peek();
    if (r === undefined) return undefined;
    this.ahead_head += 1;
    if (this.ahead_head === this.ahead.length) {
      this.ahead.length = 0;
      this.ahead_head = 0;
    }
    this.consumed += 1;
    this.history.push(r);
    if (this.history.length > CONTEXT_RECORDS) this.history.shift();
    return r;
  }
}

/** Hands a node the inputs recorded for its slice: the records after the grant's deliveries. */
export class ReplayBackend implements NodeBackend {
  readonly kind = "replay" as const;

  constructor(private readonly cursor: RecordCursor) {}

  /** A fault is a decision of the engine (the header's plan), recorded and checked like the others: nothing to feed back. */
  control(_c: NodeControl): void {}

  runSlice(request: SliceRequest): SliceResult {
    const outputs: SliceOutput[] = [];
    let taken = 0;
    let k = 0;
    for (; k < request.deliveries.length; k++) {
      const r = this.cursor.peek(k);
      if (r === undefined) throw new EndOfTrace();
      if (r[0] === RecordKind.FrameDeliver && r[1] === request.node) taken += 1;
      else if (!(r[0] === RecordKind.FrameDrop && r[1] === request.node)) break;
    }
    for (; ; k++) {
      const r = this.cursor.peek(k);
      if (r === undefined) throw new EndOfTrace();
      if (r[0] === RecordKind.SliceEnd) {
        if (r[1] !== request.node) break; // the engine's SliceEnd check reports it
        return { end_ns: r[2], wake_ns: r[3] < 0 ? VIRTUAL_NS_NEVER : r[3], outputs, deliveries_taken: taken };
      }
      if (r[0] === RecordKind.FrameEmit && r[1] === request.node) outputs.push({ kind: "emit", t_ns: r[2], bytes: r[4] });
      else if (r[0] === RecordKind.Mark && r[1] === request.node) outputs.push({ kind: "mark", t_ns: r[2], text: r[3] });
      else if (r[0] === RecordKind.Lifecycle && r[1] === request.node) outputs.push({ kind: "lifecycle", t_ns: r[2], event: r[3], detail: r[4] });
      else if (r[0] === RecordKind.GuestOutput && r[1] === request.node) outputs.push({ kind: "guest_output", t_ns: r[2], text: r[3] });
      else if (r[0] === RecordKind.MgmtIn && r[1] === request.node) outputs.push({ kind: "mgmt_in", t_ns: r[2], bytes: r[3] });
      else if (r[0] === RecordKind.MgmtOut && r[1] === request.node) outputs.push({ kind: "mgmt_out", t_ns: r[2], bytes: r[3] });
      else if (r[0] === RecordKind.Command && r[1] === request.node) outputs.push({ kind: "command", t_ns: r[2], event: r[3], id: r[4], detail: r[5] });
      else break;
    }
    // The trace does not hold inputs for this slice where the engine expects them.
    return { end_ns: request.end_ns, wake_ns: VIRTUAL_NS_NEVER, outputs, deliveries_taken: taken };
  }
}

export class CheckingSink implements RecordSink {
  /** Records are compared as they come (observe gets the trace's own record): byte fields may be views. */
  readonly transient_bytes = true;
  /** Nor does it keep the records (observe gets the trace's own record): the engine may reuse record arrays. */
  readonly transient_records = true;
  /** Called with each record once checked, while the engine is still inside the write (the debugger snapshots state there). */
  observe: ((record: TraceRecord) => void) | null = null;
  slice_ends_checked = 0;

  constructor(
    private readonly cursor: RecordCursor,
    private readonly trace_complete: () => boolean,
    private readonly equal: (actual: TraceRecord, expected: TraceRecord) => boolean = recordsEqual,
  ) {}

  write(actual: TraceRecord): void {
    const expected = this.cursor.peek();
    if (expected === undefined) {
      if (!this.trace_complete()) throw new EndOfTrace();
      throw new Diverged({ expected: null, actual: [...actual] as TraceRecord, why: "replay produced a record after the end of the trace" });
    }
    // A copy: the engine refills its record arrays (transient_records).
    if (!this.equal(actual, expected)) throw new Diverged({ expected, actual: [...actual] as TraceRecord, why: "records differ" });
    this.cursor.next();
    if (expected[0] === RecordKind.SliceEnd) this.slice_ends_checked += 1;
    this.observe?.(expected);
  }
}

/**
 * The engine rebuilt from a trace's header, fed the recorded inputs, checking every record
 * it writes. `step()` runs one engine step (one slice, or the run's end); replay loops it,
 * the debugger observes each record as the engine writes it.
 */
export class ReplayDriver {
  readonly header: TraceHeader;
  readonly engine: Engine;
  readonly cursor: RecordCursor;
  private readonly sink: CheckingSink;

  /**
   * `rerun` passes real backends (VMs re-executed from the recorded inputs) and a comparison
   * that leaves host facts (QEMU pids) out; replay and the debugger use the defaults.
   */
  constructor(
    private readonly reader: TraceReader,
    opts: { backends?: (cursor: RecordCursor) => NodeBackend[]; equal?: (actual: TraceRecord, expected: TraceRecord) => boolean } = {},
  ) {
    this.header = reader.header;
    this.cursor = new RecordCursor(reader.records()[Symbol.iterator]());
    this.sink = new CheckingSink(this.cursor, () => reader.status().complete, opts.equal);
    const backends = opts.backends?.(this.cursor) ?? this.header.config.nodes.map(() => new ReplayBackend(this.cursor));
    this.engine = engineFromHeader(reader, backends, this.sink);
  }

  get slices_checked(): number {
    return this.sink.slice_ends_checked;
  }

  set observe(fn: ((record: TraceRecord) => void) | null) {
    this.sink.observe = fn;
  }

  traceComplete(): boolean {
    return this.reader.status().complete;
  }

  /** One engine step; false once the run has ended. Throws EndOfTrace or Diverged. A recorded failure (e.g. the in-flight bound) that recurs at the same record ends the run the same way. */
  async step(): Promise<boolean> {
    try {
      return await stepUnlessRunEndsHere(this.engine, this.cursor);
    } catch (err) {
      if (err instanceof SliceResultError) throw inconsistentInputs(err, this.cursor);
      const next = this.cursor.peek();
      const failed_here = next !== undefined && next[0] === RecordKind.RunEnd && next[2] === "error";
      if (!(err instanceof InputError && failed_here)) throw err;
      this.engine.finish("error", err.message);
      return false;
    }
  }
}

/** The engine of a trace's configuration; a configuration the engine refuses is a malformed header. */
function engineFromHeader(reader: TraceReader, backends: NodeBackend[], sink: RecordSink): Engine {
  try {
    // Recorded inputs are fed in trace order: a parallel run's slices are replayed one at a time (the same records).
    return createEngine(reader.header.config, backends, sink, { concurrent: false });
  } catch (err) {
    if (!(err instanceof InputError || err instanceof RangeError || err instanceof TypeError)) throw err;
    throw new TraceError(reader.path, `header is malformed: ${err.message}`);
  }
}

/** The recorded inputs of the slice at the cursor break the engine's contract: the trace does not re-execute from there. */
function inconsistentInputs(err: SliceResultError, cursor: RecordCursor): Diverged {
  return new Diverged({ expected: cursor.peek() ?? null, actual: null, why: `the trace's inputs for this slice are inconsistent: ${err.message}` });
}

export async function replayTrace(path: string): Promise<ReplayOutcome> {
  const reader = TraceReader.open(path);
  let driver: ReplayDriver;
  try {
    driver = new ReplayDriver(reader);
  } catch (err) {
    reader.close();
    throw err;
  }
  try {
    return await checkAll(driver);
  } finally {
    reader.close();
  }
}

/** Steps a driver to the end of its trace; the outcome says whether every record matched. */
export async function checkAll(driver: ReplayDriver): Promise<ReplayOutcome> {
  const cursor = driver.cursor;
  const outcome = (divergence: Divergence | null, trace_incomplete: boolean): ReplayOutcome => ({
    identical: divergence === null,
    records_checked: cursor.consumed,
    slices_checked: driver.slices_checked,
    divergence,
    trace_incomplete,
    header: driver.header,
  });
  return await replayLoop(driver, outcome);
}

async function replayLoop(driver: ReplayDriver, outcome: (divergence: Divergence | null, trace_incomplete: boolean) => ReplayOutcome): Promise<ReplayOutcome> {
  const cursor = driver.cursor;
  try {
    while (await driver.step());
    const extra = cursor.peek();
    if (extra !== undefined) {
      return outcome({ index: cursor.consumed, expected: extra, actual: null, context: [...cursor.history], why: "the trace has records after the replayed run ended" }, false);
    }
    return outcome(null, !driver.traceComplete());
  } catch (err) {
    if (err instanceof EndOfTrace) return outcome(null, true);
    if (err instanceof Diverged) return outcome({ ...err.divergence, index: cursor.consumed, context: [...cursor.history] }, false);
    throw err;
  }
}

/** A run stopped from outside (Ctrl+C, a failure, a scenario's until condition) ends where its trace says it ended. */
async function stepUnlessRunEndsHere(engine: Engine, cursor: RecordCursor): Promise<boolean> {
  const next = cursor.peek();
  if (next !== undefined && next[0] === RecordKind.RunEnd && (next[2] === "interrupted" || next[2] === "error" || next[2] === "condition")) {
    engine.finish(next[2], next[3]); // why it stopped is an input like the stop itself
    return false;
  }
  return engine.step();
}
