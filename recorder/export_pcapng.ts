// pcapng export: one interface per node, every frame twice — outbound on the sender's
// interface at its send time, inbound on the receiver's interface at its delivery time —
// with nanosecond virtual timestamps. Wireshark/tshark then show what each node put on and
// took off the wire. Drops are not written (no frame reached anyone: counts stay emit +
// deliver); the Perfetto export and `tapsim dump` show them.
//
// Block layouts (little-endian), from the pcapng spec (draft-ietf-opsawg-pcapng):
//   SHB 0x0A0D0D0A, IDB 1 (linktype, snaplen, options), EPB 6 (if id, ts high/low, caplen,
//   origlen, data padded to 4, options). Options: code u16, length u16, value padded to 4.

import { RecordKind, type TraceHeader, type TraceRecord } from "../engine/trace_records.js";
import { InFlightFrames, type OutputFile } from "./export_common.js";

const BLOCK_SHB = 0x0a0d0d0a;
const BLOCK_IDB = 1;
const BLOCK_EPB = 6;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
const LINKTYPE_ETHERNET = 1;
const OPT_END = 0;
const OPT_COMMENT = 1;
const OPT_IF_NAME = 2;
const OPT_IF_TSRESOL = 9;
const OPT_EPB_FLAGS = 2;
/** if_tsresol 9: timestamps count 10^-9 s, the engine's own unit. */
const TSRESOL_NS = 9;
export const EPB_FLAGS_INBOUND = 1;
export const EPB_FLAGS_OUTBOUND = 2;
const U32 = 0x1_0000_0000;

export interface PcapngCounts {
  outbound: number;
  inbound: number;
}

const pad4 = (n: number) => (n + 3) & ~3;

function option(code: number, value: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + pad4(value.length));
  const v = new DataView(out.buffer);
  v.setUint16(0, code, true);
  v.setUint16(2, value.length, true);
  out.set(value, 4);
  return out;
}

function u32Bytes(value: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, value, true);
  return b;
}

/** type, total length, body, options (+ end-of-options), total length again. */
function block(type: number, body: Uint8Array, options: Uint8Array[]): Uint8Array {
  const opts_bytes = options.length === 0 ? 0 : options.reduce((s, o) => s + o.length, 0) + 4;
  const total = 12 + body.length + opts_bytes;
  const out = new Uint8Array(total);
  const v = new DataView(out.buffer);
  v.setUint32(0, type, true);
  v.setUint32(4, total, true);
  out.set(body, 8);
  let at = 8 + body.length;
  for (const o of options) {
    out.set(o, at);
    at += o.length;
  }
  if (options.length > 0) v.setUint32(at, OPT_END, true); // opt_endofopt: code 0, length 0
  v.setUint32(total - 4, total, true);
  return out;
}

function sectionHeader(): Uint8Array {
  const body = new Uint8Array(16);
  const v = new DataView(body.buffer);
  v.setUint32(0, BYTE_ORDER_MAGIC, true);
  v.setUint16(4, 1, true);
  v.setUint16(6, 0, true);
  v.setBigInt64(8, -1n, true); // section length unknown: we stream
  return block(BLOCK_SHB, body, []);
}

function interfaceDescription(name: string): Uint8Array {
  const body = new Uint8Array(8);
  const v = new DataView(body.buffer);
  v.setUint16(0, LINKTYPE_ETHERNET, true);
  v.setUint32(4, 0, true); // snaplen 0: no limit
  return block(BLOCK_IDB, body, [option(OPT_IF_NAME, Buffer.from(name, "utf8")), option(OPT_IF_TSRESOL, Uint8Array.of(TSRESOL_NS))]);
}

export function enhancedPacket(interface_id: number, t_ns: number, bytes: Uint8Array, flags: number, comment?: string): Uint8Array {
  if (!(Number.isSafeInteger(t_ns) && t_ns >= 0)) throw new RangeError(`timestamp must be a non-negative integer ns, got ${t_ns}`);
  const body = new Uint8Array(20 + pad4(bytes.length));
  const v = new DataView(body.buffer);
  v.setUint32(0, interface_id, true);
  v.setUint32(4, Math.floor(t_ns / U32), true);
  v.setUint32(8, t_ns % U32, true);
  v.setUint32(12, bytes.length, true);
  v.setUint32(16, bytes.length, true);
  body.set(bytes, 20);
  const options = [option(OPT_EPB_FLAGS, u32Bytes(flags))];
  if (comment !== undefined) options.push(option(OPT_COMMENT, Buffer.from(comment, "utf8")));
  return block(BLOCK_EPB, body, options);
}

/** Streams records into a pcapng file: call onRecord for each, in trace order. */
export class PcapngExporter {
  readonly counts: PcapngCounts = { outbound: 0, inbound: 0 };
  private readonly frames: InFlightFrames;

  constructor(
    private readonly out: OutputFile,
    header: TraceHeader,
  ) {
    const nodes = header.config.nodes;
    this.frames = new InFlightFrames(nodes.length);
    out.write(sectionHeader());
    // Interface id = node id: the IDBs go out in node order.
    nodes.forEach((node, id) => {
      if (node.id !== id) throw new RangeError(`config.nodes[${id}] has id ${node.id}`);
      out.write(interfaceDescription(node.name));
    });
  }

  onRecord(r: TraceRecord): void {
    if (r[0] === RecordKind.FrameEmit) {
      this.frames.emitted(r[3], r[4]);
      this.out.write(enhancedPacket(r[1], r[2], r[4], EPB_FLAGS_OUTBOUND));
      this.counts.outbound += 1;
    } else if (r[0] === RecordKind.FrameDeliver) {
      const bytes = this.frames.outcome(r[3]);
      if (bytes === undefined) return; // emitted before a truncated trace's first chunk: cannot happen in a full read
      this.out.write(enhancedPacket(r[1], r[2], bytes, EPB_FLAGS_INBOUND));
      this.counts.inbound += 1;
    } else if (r[0] === RecordKind.FrameDrop) {
      this.frames.outcome(r[3]);
    }
  }
}
