// pcapng export of a trace, streamed in constant memory (one record at a time; frame bytes
// are kept only while the frame is in flight). One interface per node (if_name = node name,
// if_tsresol = 9: nanosecond virtual timestamps). Each frame appears on its sender's
// interface when it is emitted (epb_flags direction outbound) and on each receiver's
// interface when it is delivered (inbound); a dropped frame appears on the receiver's
// interface (the sender's for no_route) with a comment "tapsim drop: <reason>".

import { isGroupMac } from "../engine/net/ethernet.js";
import { RecordKind, type TraceHeader, type TraceRecord } from "../engine/trace_records.js";
import { OutputFile } from "./output_file.js";
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

export interface PcapExportStats {
  packets: number;
  emitted: number;
  delivered: number;
  dropped: number;
}

interface InFlight {
  bytes: Uint8Array;
  outcomes_left: number;
}

export function exportPcapng(trace_path: string, out_path: string): PcapExportStats {
  const reader = TraceReader.open(trace_path);
  const out = new BlockWriter(out_path);
  const stats: PcapExportStats = { packets: 0, emitted: 0, delivered: 0, dropped: 0 };
  try {
    writeHeaderBlocks(out, reader.header);
    const in_flight = new Map<number, InFlight>();
    const node_count = reader.header.config.nodes.length;
    for (const r of reader.records()) exportRecord(out, r, in_flight, node_count, stats);
    out.commit();
    return stats;
  } finally {
    out.discard();
    reader.close();
  }
}

function writeHeaderBlocks(out: BlockWriter, header: TraceHeader): void {
  const shb = new DataView(new ArrayBuffer(16));
  shb.setUint32(0, 0x1a2b3c4d, true);
  shb.setUint16(4, 1, true);
  shb.setUint16(6, 0, true);
  shb.setBigInt64(8, -1n, true); // section length unknown
  out.block(BLOCK_SHB, new Uint8Array(shb.buffer), [[OPT_COMMENT, utf8(`tapsim ${header.tapsim_version} trace, seed ${header.config.seed}, topology ${header.config.topology.source}`)]]);
  for (const node of header.config.nodes) {
    const idb = new DataView(new ArrayBuffer(8));
    idb.setUint16(0, LINKTYPE_ETHERNET, true);
    idb.setUint32(4, 0, true); // snaplen: no limit
    out.block(BLOCK_IDB, new Uint8Array(idb.buffer), [[IF_NAME, utf8(node.name)], [IF_TSRESOL, new Uint8Array([9])]]);
  }
}

function exportRecord(out: BlockWriter, r: TraceRecord, in_flight: Map<number, InFlight>, node_count: number, stats: PcapExportStats): void {
  if (r[0] === RecordKind.FrameEmit) {
    const [, node, t_ns, frame_id, bytes] = r;
    const outcomes = bytes.length >= 6 && isGroupMac(bytes) ? node_count - 1 : 1;
    if (outcomes > 0) in_flight.set(frame_id, { bytes, outcomes_left: outcomes });
    packet(out, node, t_ns, bytes, DIRECTION_OUTBOUND, null);
    stats.emitted++;
  } else if (r[0] === RecordKind.FrameDeliver) {
    const [, to, t_ns, frame_id] = r;
    const f = settle(in_flight, frame_id);
    if (f) packet(out, to, t_ns, f, DIRECTION_INBOUND, null);
    stats.delivered++;
  } else if (r[0] === RecordKind.FrameDrop) {
    const [, to, t_ns, frame_id, from, reason] = r;
    const f = settle(in_flight, frame_id);
    if (f) packet(out, to >= 0 ? to : from, t_ns, f, DIRECTION_INBOUND, `tapsim drop: ${reason}`);
    stats.dropped++;
  } else {
    return;
  }
  stats.packets++;
}

/** The frame's bytes for one more delivery or drop; forgets them after the last one. */
function settle(in_flight: Map<number, InFlight>, frame_id: number): Uint8Array | null {
  const f = in_flight.get(frame_id);
  if (!f) return null;
  f.outcomes_left -= 1;
  if (f.outcomes_left <= 0) in_flight.delete(frame_id);
  return f.bytes;
}

function packet(out: BlockWriter, iface: number, t_ns: number, bytes: Uint8Array, direction: number, comment: string | null): void {
  const fixed = new DataView(new ArrayBuffer(20 + padded(bytes.length)));
  fixed.setUint32(0, iface, true);
  const t = BigInt(t_ns);
  fixed.setUint32(4, Number(t >> 32n), true);
  fixed.setUint32(8, Number(t & 0xffffffffn), true);
  fixed.setUint32(12, bytes.length, true);
  fixed.setUint32(16, bytes.length, true);
  const body = new Uint8Array(fixed.buffer);
  body.set(bytes, 20);
  const flags = new DataView(new ArrayBuffer(4));
  flags.setUint32(0, direction, true);
  const options: Array<[number, Uint8Array]> = [[EPB_FLAGS, new Uint8Array(flags.buffer)]];
  if (comment !== null) options.push([OPT_COMMENT, utf8(comment)]);
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
