// Chrome trace-event JSON (opens in ui.perfetto.dev and chrome://tracing), streamed: one
// thread per node (tid = node id, named after it), each slice a complete ("X") event, each
// delivered frame a flow from the sender's track at its send time to the receiver's track at
// its delivery time (ids "frame>to", so a broadcast gives one arrow per receiver), each
// emission, drop, mark and lifecycle event an instant ("i") event. Times are µs with ns
// decimals (the format's unit); displayTimeUnit "ns". A VM's console output is an instant on
// its node's track (first line as the name, the whole text in args); its management frames
// are instants on a track of their own per node ("<name> mgmt", tid = nodes + node), since
// they never travel a simulated link. A node fault is an instant on its node's track; a
// network change a global instant (a line across every track); a scenario command's start
// and exit are instants on its node's track (the command line or exit status in args).

import { RecordKind, type TraceRecord } from "../engine/trace_records.js";
import { frameSummary } from "./describe.js";
import { decodeFrame } from "./frame_decode.js";
import { OutputFile } from "./output_file.js";
import { TraceReader } from "./reader.js";

const PID = 1;
const FLUSH_CHARS = 1 << 20;

export interface PerfettoExportStats {
  events: number;
  slices: number;
  flows: number;
  console_outputs: number;
  mgmt_frames: number;
  faults: number;
  commands: number;
}

/** Console titles longer than this are cut (the args hold the whole text). */
const TITLE_CHARS_MAX = 80;

export function exportPerfetto(trace_path: string, out_path: string): PerfettoExportStats {
  const reader = TraceReader.open(trace_path);
  const out = new JsonEventWriter(out_path);
  const stats: PerfettoExportStats = { events: 0, slices: 0, flows: 0, console_outputs: 0, mgmt_frames: 0, faults: 0, commands: 0 };
  try {
    out.event({ name: "process_name", ph: "M", pid: PID, args: { name: `tapsim ${reader.header.config.topology.source}` } });
    for (const node of reader.header.config.nodes) out.event({ name: "thread_name", ph: "M", pid: PID, tid: node.id, args: { name: node.name } });
    const slice_start = new Map<number, number>();
    const mgmt = new MgmtTracks(out, reader.header.config.nodes.map((n) => n.name));
    for (const r of reader.records()) exportRecord(out, r, slice_start, stats, mgmt);
    stats.events = out.count;
    out.end();
    return stats;
  } finally {
    out.discard();
    reader.close();
  }
}

function exportRecord(out: JsonEventWriter, r: TraceRecord, slice_start: Map<number, number>, stats: PerfettoExportStats, mgmt: MgmtTracks): void {
  switch (r[0]) {
    case RecordKind.SliceGrant:
      slice_start.set(r[1], r[2]);
      return;
    case RecordKind.SliceEnd: {
      const start = slice_start.get(r[1]) ?? r[2];
      out.event({ name: "slice", cat: "slice", ph: "X", pid: PID, tid: r[1], ts: us(start), dur: us(r[2] - start) });
      stats.slices++;
      return;
    }
    case RecordKind.FrameEmit:
      out.event({ name: decodeFrame(r[4]).summary, cat: "frame", ph: "i", s: "t", pid: PID, tid: r[1], ts: us(r[2]), args: { frame: r[3], bytes: r[4].length } });
      return;
    case RecordKind.FrameDeliver: {
      const [, to, t_ns, frame_id, from, sent_ns] = r;
      const id = `${frame_id}>${to}`;
      out.event({ name: "frame", cat: "frame", ph: "s", id, pid: PID, tid: from, ts: us(sent_ns) });
      out.event({ name: "frame", cat: "frame", ph: "f", bp: "e", id, pid: PID, tid: to, ts: us(t_ns) });
      stats.flows++;
      return;
    }
    case RecordKind.FrameDrop:
      out.event({ name: `drop: ${r[5]}`, cat: "drop", ph: "i", s: "t", pid: PID, tid: r[1] >= 0 ? r[1] : r[4], ts: us(r[2]), args: { frame: r[3], from: r[4] } });
      return;
    case RecordKind.Mark:
      out.event({ name: r[3], cat: "mark", ph: "i", s: r[1] >= 0 ? "t" : "g", pid: PID, tid: Math.max(0, r[1]), ts: us(r[2]) });
      return;
    case RecordKind.Lifecycle:
      out.event({ name: `${r[3]}${r[4] ? `: ${r[4]}` : ""}`, cat: "lifecycle", ph: "i", s: "t", pid: PID, tid: r[1], ts: us(r[2]) });
      return;
    case RecordKind.RunEnd:
      out.event({ name: `run end: ${r[2]}`, cat: "lifecycle", ph: "i", s: "g", pid: PID, tid: 0, ts: us(r[1]) });
      return;
    case RecordKind.GuestOutput:
      out.event({ name: consoleTitle(r[3]), cat: "console", ph: "i", s: "t", pid: PID, tid: r[1], ts: us(r[2]), args: { text: r[3] } });
      stats.console_outputs++;
      return;
    case RecordKind.MgmtIn:
    case RecordKind.MgmtOut: {
      const direction = r[0] === RecordKind.MgmtIn ? "in" : "out";
      out.event({ name: `mgmt ${direction}: ${frameSummary(r[3])}`, cat: "mgmt", ph: "i", s: "t", pid: PID, tid: mgmt.tid(r[1]), ts: us(r[2]), args: { node: r[1], direction, bytes: r[3].length } });
      stats.mgmt_frames++;
      return;
    }
    case RecordKind.Fault:
      if (r[1] >= 0) out.event({ name: `fault: ${r[3]}`, cat: "fault", ph: "i", s: "t", pid: PID, tid: r[1], ts: us(r[2]) });
      else out.event({ name: `network: ${r[3]}${r[4] ? ` ${r[4]}` : ""}`, cat: "fault", ph: "i", s: "g", pid: PID, tid: 0, ts: us(r[2]), args: { label: r[4] } });
      stats.faults++;
      return;
    case RecordKind.Command:
      out.event({ name: `command ${r[3]}: ${r[4]}`, cat: "command", ph: "i", s: "t", pid: PID, tid: r[1], ts: us(r[2]), args: { id: r[4], [r[3] === "start" ? "run" : "status"]: r[5] } });
      stats.commands++;
      return;
  }
}

/** One line to name a console output by: its first line with text, control characters dropped, cut short. */
export function consoleTitle(text: string): string {
  const plain = text.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, "").replace(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g, "");
  const line = plain.split("\n").find((l) => l.trim() !== "")?.trim() ?? "";
  const title = line.length > TITLE_CHARS_MAX ? `${line.slice(0, TITLE_CHARS_MAX - 1)}…` : line;
  return `console: ${title}`;
}

/** A management track per node, named when its first frame appears (runs without any add none). */
class MgmtTracks {
  private readonly named = new Set<number>();

  constructor(
    private readonly out: JsonEventWriter,
    private readonly names: readonly string[],
  ) {}

  tid(node: number): number {
    const tid = this.names.length + node;
    if (!this.named.has(node)) {
      this.named.add(node);
      this.out.event({ name: "thread_name", ph: "M", pid: PID, tid, args: { name: `${this.names[node]} mgmt` } });
    }
    return tid;
  }
}

/** Trace-event timestamps are µs; three decimals keep every nanosecond. */
const us = (ns: number) => Number((ns / 1000).toFixed(3));

/** The file appears at end(); discard() after a failure leaves none. */
class JsonEventWriter {
  private readonly file: OutputFile;
  private text = '{"displayTimeUnit":"ns","traceEvents":[\n';
  count = 0;

  constructor(readonly path: string) {
    this.file = OutputFile.create(path);
  }

  event(e: Record<string, unknown>): void {
    this.text += (this.count++ === 0 ? "" : ",\n") + JSON.stringify(e);
    if (this.text.length >= FLUSH_CHARS) this.flush();
  }

  end(): void {
    this.text += "\n]}\n";
    this.flush();
    this.file.commit();
  }

  private flush(): void {
    this.file.write(this.text);
    this.text = "";
  }

  discard(): void {
    this.file.discard();
  }
}
