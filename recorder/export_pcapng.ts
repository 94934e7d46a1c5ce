// pcapng export of a trace, streamed in one pass. One interface per node (if_name = node
// name, if_tsresol = 9: nanosecond timestamps).
//
// Default: each frame once, on the receiver's interface at its delivery (direction
// inbound), which is what a capture on the receiving guest shows and what the guests'
// logs of received messages line up with. A frame that never arrived appears once on its
// sender's interface at the moment it was lost (outbound), with a comment "tapsim drop:
// <reason>, to <node>". A broadcast appears once per receiver (each interface got it).
// With both_ends, every frame also appears on its sender's interface when sent: the
// whole path, but Wireshark then sees each TCP segment twice and reports retransmissions
// that never happened; drops then sit on the receiver's interface.
//
// Packets are written in nondecreasing time order: the trace is written slice by slice,
// so records arrive out of time order by at most the longest slice (a slice ends at most
// slice_len_max after the earliest moment any node can still act, and no later record
// is earlier than that moment). A min-heap holds that window, keyed by (time, arrival).
//
// Timestamps are the run's RTC base (config.vm.rtc_base when it is a date) plus virtual
// time, so they read as the guests' clocks do; in-process runs, and VM runs with an RTC
// base of utc/localtime, get virtual time since the epoch (0 = start of the run).

import { isGroupMac } from "../engine/net/ethernet.js";
import { RecordKind, type TraceHeader, type TraceRecord } from "../engine/trace_records.js";
import { OutputFile } from "./output_file.js";
import { rtcBaseEpochS } from "../engine/units.js";
import { TraceReader } from "./reader.js";

const BLOCK_SHB = 0x0a0d0d0a;
const BLOCK_IDB = 0x00000001;
const BLOCK_EPB = 0x00000006;
const LINKTYPE_ETHERNET = 1;
const OPT_END = 0;
const OPT_COMMENT = 1;
const IF_NAME = 2;
const IF_TSRESOL = 9;
const EPB_FLAGS = 2;
const DIRECTION_INBOUND = 1;
const DIRECTION_OUTBOUND = 2;
/** Buffered output before a write: few syscalls, bounded memory. */
const FLUSH_BYTES = 1 << 20;
/** Traces whose header has no slice bound (none so far) get the engine's default. */
const REORDER_WINDOW_NS_DEFAULT = 1_000_000_000;

export interface PcapExportOptions {
  /** Each frame at send (sender's interface) and at delivery (receiver's): the old layout. */
  both_ends?: boolean;
}

export interface PcapExportStats {
  packets: number;
  emitted: number;
  delivered: number;
  dropped: number;
  /** Added to every virtual timestamp: the RTC base in epoch seconds (0: none). */
  time_base_s: number;
  /** Packets that arrived later than the reorder window allowed (written anyway; 0 unless the trace breaks the slice bound). */
  late: number;
  /** Management frames (host <-> guest, never on simulated links), on the "<node>-mgmt" interfaces of a VM run. */
  mgmt: number;
}

interface InFlight {
  bytes: Uint8Array;
  from: number;
  outcomes_left: number;
}

interface Packet {
  t_ns: number;
  seq: number;
  iface: number;
  bytes: Uint8Array;
  direction: number;
  comment: string | null;
}

export function exportPcapng(trace_path: string, out_path: string, opts: PcapExportOptions = {}): PcapExportStats {
  const reader = TraceReader.open(trace_path);
  const out = new BlockWriter(out_path);
  const rtc_base = reader.header.config.vm?.rtc_base;
  const time_base_s = (rtc_base === undefined ? null : rtcBaseEpochS(rtc_base)) ?? 0;
  const stats: PcapExportStats = { packets: 0, emitted: 0, delivered: 0, dropped: 0, time_base_s, late: 0, mgmt: 0 };
  try {
    writeHeaderBlocks(out, reader.header, time_base_s);
    const sorter = new TimeSorter(reader.header.config.slice_len_max_ns ?? REORDER_WINDOW_NS_DEFAULT, (p) => {
      packet(out, p, BigInt(time_base_s) * 1_000_000_000n);
      stats.packets++;
    });
    const state: ExportState = { in_flight: new Map(), node_names: reader.header.config.nodes.map((n) => n.name), both_ends: opts.both_ends === true, stats, sorter, mgmt_ifaces: hasMgmtIfaces(reader.header) };
    for (const r of reader.records()) exportRecord(state, r);
    sorter.drain();
    stats.late = sorter.late;
    out.commit();
    return stats;
  } finally {
    out.discard();
    reader.close();
  }
}

function writeHeaderBlocks(out: BlockWriter, header: TraceHeader, time_base_s: number): void {
  const shb = new DataView(new ArrayBuffer(16));
  shb.setUint32(0, 0x1a2b3c4d, true);
  shb.setUint16(4, 1, true);
  shb.setUint16(6, 0, true);
  shb.setBigInt64(8, -1n, true); // section length unknown
  const base = time_base_s === 0 ? "virtual time" : `${new Date(time_base_s * 1000).toISOString().replace(".000Z", "Z")} (RTC base) + virtual time`;
  const comment = `tapsim ${header.tapsim_version} trace, seed ${header.config.seed}, topology ${header.config.topology.source}; timestamps: ${base}`;
  out.block(BLOCK_SHB, new Uint8Array(shb.buffer), [[OPT_COMMENT, utf8(comment)]]);
  for (const node of header.config.nodes) {
    const idb = new DataView(new ArrayBuffer(8));
    idb.setUint16(0, LINKTYPE_ETHERNET, true);
    idb.setUint32(4, 0, true); // snaplen: no limit
    out.block(BLOCK_IDB, new Uint8Array(idb.buffer), [[IF_NAME, utf8(node.name)], [IF_TSRESOL, new Uint8Array([9])]]);
  }
  if (!hasMgmtIfaces(header)) return;
  // A VM's management NIC: interface N + node, so the simulated interfaces keep their numbers.
  for (const node of header.config.nodes) {
    const idb = new DataView(new ArrayBuffer(8));
    idb.setUint16(0, LINKTYPE_ETHERNET, true);
    out.block(BLOCK_IDB, new Uint8Array(idb.buffer), [[IF_NAME, utf8(`${node.name}-mgmt`)], [IF_TSRESOL, new Uint8Array([9])]]);
  }
}

/** VM runs have a management NIC per node (trace format 2: management frames are recorded). */
function hasMgmtIfaces(header: TraceHeader): boolean {
  return header.config.vm !== undefined && header.format_version >= 2;
}

interface ExportState {
  readonly in_flight: Map<number, InFlight>;
  readonly node_names: readonly string[];
  readonly both_ends: boolean;
  readonly stats: PcapExportStats;
  readonly sorter: TimeSorter;
  readonly mgmt_ifaces: boolean;
}

function exportRecord(s: ExportState, r: TraceRecord): void {
  if (r[0] === RecordKind.FrameEmit) {
    const [, node, t_ns, frame_id, bytes] = r;
    const outcomes = bytes.length >= 6 && isGroupMac(bytes) ? s.node_names.length - 1 : 1;
    if (outcomes > 0) s.in_flight.set(frame_id, { bytes, from: node, outcomes_left: outcomes });
    if (s.both_ends) s.sorter.push(t_ns, node, bytes, DIRECTION_OUTBOUND, null);
    s.stats.emitted++;
  } else if (r[0] === RecordKind.FrameDeliver) {
    const [, to, t_ns, frame_id] = r;
    const f = settle(s.in_flight, frame_id);
    if (f) s.sorter.push(t_ns, to, f.bytes, DIRECTION_INBOUND, null);
    s.stats.delivered++;
  } else if (r[0] === RecordKind.FrameDrop) {
    const [, to, t_ns, frame_id, from, reason] = r;
    const f = settle(s.in_flight, frame_id);
    if (f && s.both_ends) s.sorter.push(t_ns, to >= 0 ? to : from, f.bytes, DIRECTION_INBOUND, `tapsim drop: ${reason}`);
    else if (f) s.sorter.push(t_ns, from, f.bytes, DIRECTION_OUTBOUND, `tapsim drop: ${reason}, to ${to >= 0 ? s.node_names[to] : "no one"}`);
    s.stats.dropped++;
  } else if ((r[0] === RecordKind.MgmtIn || r[0] === RecordKind.MgmtOut) && s.mgmt_ifaces) {
    const [kind, node, t_ns, bytes] = r;
    s.sorter.push(t_ns, s.node_names.length + node, bytes, kind === RecordKind.MgmtIn ? DIRECTION_INBOUND : DIRECTION_OUTBOUND, null);
    s.stats.mgmt++;
  }
}

/** The frame for one more delivery or drop; forgets its bytes after the last one. */
function settle(in_flight: Map<number, InFlight>, frame_id: number): InFlight | null {
  const f = in_flight.get(frame_id);
  if (!f) return null;
  f.outcomes_left -= 1;
  if (f.outcomes_left <= 0) in_flight.delete(frame_id);
  return f;
}

/**
 * Emits packets in nondecreasing time order from a stream that is out of order by at
 * most window_ns: whatever lies window_ns or more behind the latest time seen is final.
 */
class TimeSorter {
  private readonly heap: Packet[] = [];
  private seq = 0;
  private latest_ns = -Infinity;
  private written_ns = -Infinity;
  late = 0;

  constructor(
    private readonly window_ns: number,
    private readonly emit: (p: Packet) => void,
  ) {}

  push(t_ns: number, iface: number, bytes: Uint8Array, direction: number, comment: string | null): void {
    if (t_ns < this.written_ns) this.late++;
    heapPush(this.heap, { t_ns, seq: this.seq++, iface, bytes, direction, comment });
    if (t_ns > this.latest_ns) this.latest_ns = t_ns;
    const final_ns = this.latest_ns - this.window_ns;
    while (this.heap.length > 0 && this.heap[0]!.t_ns <= final_ns) this.write(heapPop(this.heap));
  }

  drain(): void {
    while (this.heap.length > 0) this.write(heapPop(this.heap));
  }

  private write(p: Packet): void {
    if (p.t_ns > this.written_ns) this.written_ns = p.t_ns;
    this.emit(p);
  }
}

const before = (a: Packet, b: Packet) => a.t_ns < b.t_ns || (a.t_ns === b.t_ns && a.seq < b.seq);

function heapPush(h: Packet[], p: Packet): void {
  h.push(p);
  for (let i = h.length - 1; i > 0; ) {
    const parent = (i - 1) >> 1;
    if (!before(h[i]!, h[parent]!)) break;
    [h[i], h[parent]] = [h[parent]!, h[i]!];
    i = parent;
  }
}

function heapPop(h: Packet[]): Packet {
  const top = h[0]!;
  const last = h.pop()!;
  if (h.length === 0) return top;
  h[0] = last;
  for (let i = 0; ; ) {
    const l = 2 * i + 1;
    const r = l + 1;
    let m = i;
    if (l < h.length && before(h[l]!, h[m]!)) m = l;
    if (r < h.length && before(h[r]!, h[m]!)) m = r;
    if (m === i) break;
    [h[i], h[m]] = [h[m]!, h[i]!];
    i = m;
  }
  return top;
}

function packet(out: BlockWriter, p: Packet, base_ns: bigint): void {
  const { bytes } = p;
  const fixed = new DataView(new ArrayBuffer(20 + padded(bytes.length)));
  fixed.setUint32(0, p.iface, true);
  const t = base_ns + BigInt(p.t_ns);
  fixed.setUint32(4, Number(t >> 32n), true);
  fixed.setUint32(8, Number(t & 0xffffffffn), true);
  fixed.setUint32(12, bytes.length, true);
  fixed.setUint32(16, bytes.length, true);
  const body = new Uint8Array(fixed.buffer);
  body.set(bytes, 20);
  const flags = new DataView(new ArrayBuffer(4));
  flags.setUint32(0, p.direction, true);
  const options: Array<[number, Uint8Array]> = [[EPB_FLAGS, new Uint8Array(flags.buffer)]];
  if (p.comment !== null) options.push([OPT_COMMENT, utf8(p.comment)]);
  out.block(BLOCK_EPB, body, options);
}

const padded = (n: number) => (n + 3) & ~3;
const utf8 = (s: string) => new TextEncoder().encode(s);

/** Writes pcapng blocks (little endian) through a bounded buffer; the file appears at commit(). */
class BlockWriter {
  private readonly file: OutputFile;
  private readonly buf = Buffer.alloc(FLUSH_BYTES * 2);
  private used = 0;

  constructor(readonly path: string) {
    this.file = OutputFile.create(path);
  }

  block(type: number, body: Uint8Array, options: Array<[number, Uint8Array]>): void {
    let options_bytes = 0;
    for (const [, v] of options) options_bytes += 4 + padded(v.length);
    if (options.length > 0) options_bytes += 4;
    const total = 12 + padded(body.length) + options_bytes;
    if (total > this.buf.length) throw new RangeError(`pcapng block of ${total} bytes`);
    if (this.used + total > this.buf.length) this.flush();
    const b = this.buf;
    let o = this.used;
    b.writeUInt32LE(type, o);
    b.writeUInt32LE(total, o + 4);
    o += 8;
    b.set(body, o);
    b.fill(0, o + body.length, o + padded(body.length));
    o += padded(body.length);
    for (const [code, v] of options) {
      b.writeUInt16LE(code, o);
      b.writeUInt16LE(v.length, o + 2);
      b.set(v, o + 4);
      b.fill(0, o + 4 + v.length, o + 4 + padded(v.length));
      o += 4 + padded(v.length);
    }
    if (options.length > 0) {
      b.writeUInt32LE(OPT_END, o);
      o += 4;
    }
    b.writeUInt32LE(total, o);
    this.used = o + 4;
    if (this.used >= FLUSH_BYTES) this.flush();
  }

  flush(): void {
    if (this.used > 0) this.file.write(this.buf, this.used);
    this.used = 0;
  }

  commit(): void {
    this.flush();
    this.file.commit();
  }

  /** After a failure: no file appears. */
  discard(): void {
    this.file.discard();
  }
}
