// Chrome trace-event JSON (opens in ui.perfetto.dev and chrome://tracing): one thread per
// node (tid = node id), each slice an "X" event, each delivered frame a flow arrow from the
// sender's slice at send time ("s") to the receiver's slice at delivery ("f", "bp":"e":
// bound to the slice enclosing the delivery), drops and marks as instant "i" events.
// Timestamps are microseconds with the nanoseconds as three exact decimals.
//
// A group frame reaches several receivers, and a flow pairs one "s" with one "f", so the
// flow id is frame_id * node_count + receiver; both ends are written at the delivery
// record (the viewer sorts by ts, the file need not be in time order).

import { RecordKind, type TraceHeader, type TraceRecord } from "../engine/trace_records.js";
import { decodeFrame } from "./frame_decode.js";
import { InFlightFrames, type OutputFile } from "./export_common.js";

const PID = 1;

export interface PerfettoCounts {
  slices: number;
  flows: number;
  drops: number;
  marks: number;
}

/** ns → µs text with exactly the nanoseconds as decimals (no float rounding). */
export function usText(ns: number): string {
  if (!(Number.isSafeInteger(ns) && ns >= 0)) throw new RangeError(`expected integer ns >= 0, got ${ns}`);
  const us = Math.floor(ns / 1000);
  const rest = ns - us * 1000;
  return rest === 0 ? String(us) : `${us}.${String(rest).padStart(3, "0")}`;
}

export class PerfettoExporter {
  readonly counts: PerfettoCounts = { slices: 0, flows: 0, drops: 0, marks: 0 };
  private readonly node_count: number;
  private readonly frames: InFlightFrames;
  /** Start of each node's open slice (-1: none open). */
  private readonly slice_start_ns: number[];
  private first = true;

  constructor(
    private readonly out: OutputFile,
    header: TraceHeader,
  ) {
    const nodes = header.config.nodes;
    this.node_count = nodes.length;
    this.frames = new InFlightFrames(nodes.length);
    this.slice_start_ns = new Array<number>(nodes.length).fill(-1);
    out.write('{"displayTimeUnit":"ns","traceEvents":[\n');
    this.event({ name: "process_name", ph: "M", pid: PID, args: { name: `tapsim ${header.config.workload?.kind ?? "run"} seed ${header.config.seed}` } });
    nodes.forEach((node, id) => {
      this.event({ name: "thread_name", ph: "M", pid: PID, tid: id, args: { name: node.name } });
      this.event({ name: "thread_sort_index", ph: "M", pid: PID, tid: id, args: { sort_index: id } });
    });
  }

  onRecord(r: TraceRecord): void {
    switch (r[0]) {
      case RecordKind.SliceGrant:
        this.slice_start_ns[r[1]] = r[2];
        return;
      case RecordKind.SliceEnd:
        return this.sliceEnd(r[1], r[2], r[3]);
      case RecordKind.FrameEmit:
        return this.frames.emitted(r[3], r[4]);
      case RecordKind.FrameDeliver:
        return this.flow(r[1], r[2], r[3], r[4], r[5]);
      case RecordKind.FrameDrop:
        return this.drop(r[1], r[2], r[3], r[4], r[5]);
      case RecordKind.Mark:
        this.counts.marks += 1;
        return this.instant(r[1] < 0 ? 0 : r[1], r[2], r[3], "mark", {}, r[1] < 0 ? "p" : "t");
      case RecordKind.Lifecycle:
        return this.instant(r[1], r[2], `${r[3]}${r[4] ? ` (${r[4]})` : ""}`, "lifecycle", {}, "t");
      case RecordKind.RunEnd:
        return this.instant(0, r[1], `run end: ${r[2]}`, "run", {}, "g");
    }
  }

  close(): void {
    this.out.write("\n]}\n");
  }

  private sliceEnd(node: number, end_ns: number, wake_ns: number): void {
    const start = this.slice_start_ns[node]!;
    if (start < 0) return; // a slice whose grant was not read (cannot happen in a full read)
    this.slice_start_ns[node] = -1;
    this.counts.slices += 1;
    this.raw(`{"name":"slice","cat":"slice","ph":"X","pid":${PID},"tid":${node},"ts":${usText(start)},"dur":${usText(end_ns - start)},"args":{"wake_ns":${wake_ns}}}`);
  }

  private flow(to: number, t_ns: number, frame_id: number, from: number, sent_ns: number): void {
    const bytes = this.frames.outcome(frame_id);
    const summary = bytes === undefined ? "" : decodeFrame(bytes).summary;
    const id = frame_id * this.node_count + to;
    const args = JSON.stringify({ frame: frame_id, from, to, latency_ns: t_ns - sent_ns, summary });
    const name = JSON.stringify(`frame ${frame_id}`);
    this.counts.flows += 1;
    this.raw(`{"name":${name},"cat":"frame","ph":"s","id":${id},"pid":${PID},"tid":${from},"ts":${usText(sent_ns)},"args":${args}}`);
    this.raw(`{"name":${name},"cat":"frame","ph":"f","bp":"e","id":${id},"pid":${PID},"tid":${to},"ts":${usText(t_ns)},"args":${args}}`);
  }

  private drop(to: number, t_ns: number, frame_id: number, from: number, reason: string): void {
    this.frames.outcome(frame_id);
    this.counts.drops += 1;
    // A drop with no receiver (no route) shows on the sender's thread.
    this.instant(to < 0 ? from : to, t_ns, `drop frame ${frame_id}: ${reason}`, "drop", { frame: frame_id, from, to, reason }, "t");
  }

  private instant(tid: number, t_ns: number, name: string, cat: string, args: object, scope: "t" | "p" | "g"): void {
    this.raw(`{"name":${JSON.stringify(name)},"cat":"${cat}","ph":"i","s":"${scope}","pid":${PID},"tid":${tid},"ts":${usText(t_ns)},"args":${JSON.stringify(args)}}`);
  }

  private event(e: object): void {
    this.raw(JSON.stringify(e));
  }

  private raw(json: string): void {
    this.out.write(this.first ? json : `,\n${json}`);
    this.first = false;
  }
}
