// Frame filters for `break frame ...`: "src=N dst=N proto=udp|tcp|icmp|arp port=P ip=A
// mac=M bytes=HEX", every term must hold. src/dst are node ids (a frame_emit's dst is the
// node its destination MAC names, or every node for broadcast); port, ip and mac match
// either end; bytes matches a hex substring of the frame.

import { InputError } from "../../engine/errors.js";
import { RecordKind, type TraceHeader, type TraceRecord } from "../../engine/trace_records.js";
import { decodeFrame } from "../frame_decode.js";

export interface FrameFilter {
  src?: number;
  dst?: number;
  proto?: string;
  port?: number;
  ip?: string;
  mac?: string;
  bytes_hex?: string;
}

const PROTOS = ["udp", "tcp", "icmp", "arp"];
export const FILTER_KEYS = ["src=", "dst=", "proto=", "port=", "ip=", "mac=", "bytes="];

export function parseFrameFilter(terms: string[]): FrameFilter {
  if (terms.length === 0) throw new InputError(`break frame: give at least one of ${FILTER_KEYS.map((k) => k + "…").join(" ")}`);
  const f: FrameFilter = {};
  for (const term of terms) {
    const m = /^([a-z]+)=(.+)$/.exec(term);
    if (!m) throw new InputError(`break frame: ${JSON.stringify(term)} is not key=value`);
    const [, key, value] = m as unknown as [string, string, string];
    if (key === "src" || key === "dst" || key === "port") f[key] = nonNegativeInt(key, value);
    else if (key === "proto") {
      if (!PROTOS.includes(value)) throw new InputError(`break frame: proto must be one of ${PROTOS.join(", ")}`);
      f.proto = value;
    } else if (key === "ip") {
      if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(value)) throw new InputError(`break frame: ip ${JSON.stringify(value)} is not a dotted IPv4 address`);
      f.ip = value;
    } else if (key === "mac") {
      if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(value)) throw new InputError(`break frame: mac ${JSON.stringify(value)} is not aa:bb:cc:dd:ee:ff`);
      f.mac = value.toLowerCase();
    } else if (key === "bytes") {
      const hex = value.replace(/[\s:]/g, "").toLowerCase();
      if (!/^([0-9a-f]{2})+$/.test(hex)) throw new InputError(`break frame: bytes ${JSON.stringify(value)} is not whole hex bytes`);
      f.bytes_hex = hex;
    } else throw new InputError(`break frame: unknown key ${JSON.stringify(key)} (${FILTER_KEYS.join(" ")})`);
  }
  return f;
}

function nonNegativeInt(key: string, value: string): number {
  if (!/^\d+$/.test(value)) throw new InputError(`break frame: ${key} must be a non-negative integer, got ${JSON.stringify(value)}`);
  return Number(value);
}

/** Does a frame record (emit, deliver, drop) of `bytes` match? */
export function frameMatches(f: FrameFilter, r: TraceRecord, bytes: Uint8Array, header: TraceHeader): boolean {
  const sender = r[0] === RecordKind.FrameEmit ? r[1] : r[0] === RecordKind.FrameDeliver || r[0] === RecordKind.FrameDrop ? r[4] : -1;
  if (f.src !== undefined && sender !== f.src) return false;
  if (f.dst !== undefined && !receiverIs(f.dst, r, bytes, header)) return false;
  if (f.bytes_hex !== undefined && !Buffer.from(bytes).toString("hex").includes(f.bytes_hex)) return false;
  if (f.proto === undefined && f.port === undefined && f.ip === undefined && f.mac === undefined) return true;
  const d = decodeFrame(bytes);
  if (f.proto !== undefined && d.protocol !== f.proto) return false;
  if (f.port !== undefined && d.src_port !== f.port && d.dst_port !== f.port) return false;
  if (f.ip !== undefined && d.src_ip !== f.ip && d.dst_ip !== f.ip) return false;
  if (f.mac !== undefined && d.src_mac !== f.mac && d.dst_mac !== f.mac) return false;
  return true;
}

function receiverIs(node: number, r: TraceRecord, bytes: Uint8Array, header: TraceHeader): boolean {
  if (r[0] !== RecordKind.FrameEmit) return r[1] === node;
  if (bytes.length >= 6 && (bytes[0]! & 1) === 1) return true; // broadcast reaches every node
  const mac = Array.from(bytes.subarray(0, 6), (b) => b.toString(16).padStart(2, "0")).join(":");
  return header.config.nodes[node]?.mac.toLowerCase() === mac;
}
