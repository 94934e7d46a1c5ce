// msgpack for RECORDS payloads, specialised to record tuples because this is the hot path
// of every run and every read. The bytes are plain msgpack (any msgpack reader decodes them;
// the decoder accepts any msgpack encoding of a valid record, e.g. msgpackr's float64 for
// large integers). On these machines msgpackr spends ~370 ns packing a typical record and
// ~200 ns unpacking it, before any validation; the code below encodes in-place into the
// chunk buffer and validates while it decodes.

import { Unpackr } from "msgpackr";
import type { TraceRecord } from "../engine/trace_records.js";
import { CHUNK_HEADER_BYTES, CHUNK_PAYLOAD_BYTES_MAX, ChunkType, writeChunkHeader } from "./format.js";
import { COMMAND_EVENTS, DROP_REASONS, FAULT_ACTIONS, LIFECYCLE_EVENTS, RUN_END_REASONS } from "../engine/trace_records.js";
import { RECORD_SHAPES, describeKind, validateRecord } from "./validate.js";

/** Longest msgpack array header (array32): the payload's outer array header goes here. */
const ARRAY_HEADER_MAX = 5;
/** Room kept in front of the first record for the chunk header and the outer array header. */
const PREFIX = CHUNK_HEADER_BYTES + ARRAY_HEADER_MAX;
/** A single frame or text this large is a bug upstream; it also keeps any chunk far below the payload bound. */
export const RECORD_FIELD_BYTES_MAX = 16 * 1024 * 1024;
const TWO_32 = 4294967296;

/**
 * Collects records as msgpack in a growing buffer laid out so that the finished chunk
 * (header, outer array header, records) is one contiguous slice: no copy on flush.
 */
export class RecordChunkEncoder {
  private buf: Buffer;
  private view: DataView;
  private pos = PREFIX;
  count = 0;
  t_min_ns = Number.MAX_SAFE_INTEGER;
  t_max_ns = 0;

  constructor(initial_bytes = 512 * 1024) {
    this.buf = Buffer.allocUnsafeSlow(initial_bytes);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.length);
  }

  /** Bytes of the records so far (the payload less its few-byte array header). */
  get record_bytes(): number {
    return this.pos - PREFIX;
  }

  /** Appends one record whose time is t_ns; on a field it cannot encode, throws and leaves the batch as it was. */
  add(record: readonly unknown[], t_ns: number): void {
    const n = record.length;
    if (n > 15) throw new RangeError(`a trace record has at most 15 fields, got ${n}`);
    const start = this.pos;
    try {
      this.ensure(1);
      this.buf[this.pos++] = 0x90 | n;
      for (let i = 0; i < n; i++) this.value(record[i]);
    } catch (err) {
      this.pos = start;
      throw err;
    }
    this.counted(t_ns);
  }

  /** add() of the frame_emit record [3, node, t_ns, frame_id, src[offset, offset + length)], without a view of the bytes. */
  addFrameEmitIn(node: number, t_ns: number, frame_id: number, src: Uint8Array, offset: number, length: number): void {
    const start = this.pos;
    try {
      this.ensure(1);
      this.buf[this.pos++] = 0x95; // fixarray of 5
      this.number(3);
      this.number(node);
      this.number(t_ns);
      this.number(frame_id);
      this.lengthHeader(length, 0xc4);
      const b = this.buf;
      const p = this.pos;
      if (length <= 128) for (let k = 0; k < length; k++) b[p + k] = src[offset + k]!;
      else b.set(src.subarray(offset, offset + length), p);
      this.pos = p + length;
    } catch (err) {
      this.pos = start;
      throw err;
    }
    this.counted(t_ns);
  }

  /** One more record in the chunk, and the chunk's time span (for the index). */
  private counted(t_ns: number): void {
    this.count += 1;
    if (t_ns < this.t_min_ns) this.t_min_ns = t_ns;
    if (t_ns > this.t_max_ns) this.t_max_ns = t_ns;
  }

  /** The finished RECORDS chunk, header and checksum included. A view: valid until reset(). */
  finishChunk(): Uint8Array {
    const start = this.writeArrayHeader();
    const payload = this.buf.subarray(start, this.pos);
    const fields = { type: ChunkType.Records, record_count: this.count, t_min_ns: this.t_min_ns, t_max_ns: this.t_max_ns };
    writeChunkHeader(this.buf, start - CHUNK_HEADER_BYTES, fields, payload);
    return this.buf.subarray(start - CHUNK_HEADER_BYTES, this.pos);
  }

  reset(): void {
    this.pos = PREFIX;
    this.count = 0;
    this.t_min_ns = Number.MAX_SAFE_INTEGER;
    this.t_max_ns = 0;
  }

  /** Writes the shortest array header for `count` just before the first record; returns where it starts. */
  private writeArrayHeader(): number {
    const b = this.buf;
    const c = this.count;
    if (c < 16) {
      b[PREFIX - 1] = 0x90 | c;
      return PREFIX - 1;
    }
    if (c < 0x10000) {
      b[PREFIX - 3] = 0xdc;
      b[PREFIX - 2] = c >>> 8;
      b[PREFIX - 1] = c & 0xff;
      return PREFIX - 3;
    }
    b[PREFIX - 5] = 0xdd;
    this.view.setUint32(PREFIX - 4, c);
    return PREFIX - 5;
  }

  private value(v: unknown): void {
    if (typeof v === "number") this.number(v);
    else if (typeof v === "string") this.string(v);
    else if (v instanceof Uint8Array) this.bytes(v);
    else throw new RangeError(`a trace record field cannot be ${v === null ? "null" : typeof v}`);
  }

  private number(v: number): void {
    this.ensure(9);
    const b = this.buf;
    let p = this.pos;
    if (v >>> 0 === v) {
      // The common case: a non-negative integer below 2^32.
      if (v < 0x80) b[p++] = v;
      else if (v < 0x100) {
        b[p++] = 0xcc;
        b[p++] = v;
      } else if (v < 0x10000) {
        b[p++] = 0xcd;
        b[p++] = v >>> 8;
        b[p++] = v & 0xff;
      } else {
        b[p++] = 0xce;
        b[p++] = v >>> 24;
        b[p++] = (v >>> 16) & 0xff;
        b[p++] = (v >>> 8) & 0xff;
        b[p++] = v & 0xff;
      }
      this.pos = p;
    } else if (Number.isSafeInteger(v)) {
      this.pos = v >= 0 ? this.uint64(v) : this.negativeInt(v);
    } else {
      b[p] = 0xcb;
      this.view.setFloat64(p + 1, v);
      this.pos = p + 9;
    }
  }

  /** Integers from 2^32 up (virtual times past ~4.3 s) as msgpack uint64, so every reader sees an integer. */
  private uint64(v: number): number {
    const p = this.pos;
    this.buf[p] = 0xcf;
    this.view.setUint32(p + 1, Math.floor(v / TWO_32));
    this.view.setUint32(p + 5, v >>> 0);
    return p + 9;
  }

  private negativeInt(v: number): number {
    const b = this.buf;
    const p = this.pos;
    if (v >= -32) {
      b[p] = v & 0xff; // negative fixint
      return p + 1;
    }
    if (v >= -0x80000000) {
      b[p] = 0xd2;
      this.view.setInt32(p + 1, v);
      return p + 5;
    }
    b[p] = 0xd3;
    const hi = Math.floor(v / TWO_32);
    this.view.setInt32(p + 1, hi);
    this.view.setUint32(p + 5, v - hi * TWO_32);
    return p + 9;
  }

  private string(s: string): void {
    if (s.length < 32 && this.asciiFixstr(s)) return;
    const len = Buffer.byteLength(s, "utf8");
    this.lengthHeader(len, 0xd9);
    this.pos += this.buf.write(s, this.pos, len, "utf8");
  }

  /** Short ASCII strings (drop reasons, events, most marks) byte by byte; false if not ASCII. */
  private asciiFixstr(s: string): boolean {
    const n = s.length;
    this.ensure(1 + n);
    const b = this.buf;
    const p = this.pos;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) return false;
      b[p + 1 + i] = c;
    }
    b[p] = 0xa0 | n;
    this.pos = p + 1 + n;
    return true;
  }

  private bytes(u: Uint8Array): void {
    this.lengthHeader(u.length, 0xc4);
    this.buf.set(u, this.pos);
    this.pos += u.length;
  }

  /**
   * The header of a str (first_code 0xd9: str8/16/32, or fixstr when short) or bin
   * (0xc4: bin8/16/32) of `len` bytes, with room ensured for the bytes that follow.
   */
  private lengthHeader(len: number, first_code: number): void {
    if (len > RECORD_FIELD_BYTES_MAX) throw new RangeError(`a trace record field of ${len} bytes is over the ${RECORD_FIELD_BYTES_MAX}-byte bound`);
    this.ensure(5 + len);
    const b = this.buf;
    const p = this.pos;
    if (first_code === 0xd9 && len < 32) {
      b[p] = 0xa0 | len;
      this.pos = p + 1;
    } else if (len < 0x100) {
      b[p] = first_code;
      b[p + 1] = len;
      this.pos = p + 2;
    } else if (len < 0x10000) {
      b[p] = first_code + 1;
      this.view.setUint16(p + 1, len);
      this.pos = p + 3;
    } else {
      b[p] = first_code + 2;
      this.view.setUint32(p + 1, len);
      this.pos = p + 5;
    }
  }

  private ensure(more: number): void {
    if (this.pos + more <= this.buf.length) return;
    const needed = this.pos + more;
    if (needed - PREFIX > CHUNK_PAYLOAD_BYTES_MAX) throw new RangeError("records chunk would exceed the payload bound");
    const grown = Buffer.allocUnsafeSlow(Math.max(needed, this.buf.length * 2));
    grown.set(this.buf.subarray(0, this.pos));
    this.buf = grown;
    this.view = new DataView(grown.buffer, grown.byteOffset, grown.length);
  }
}

/** msgpack bytes of a records payload (an array of records): for tests and tools building chunks by hand. */
export function encodeRecordsPayload(records: readonly (readonly unknown[])[]): Uint8Array {
  const enc = new RecordChunkEncoder(1024);
  for (const r of records) enc.add(r, 0);
  return enc.finishChunk().slice(CHUNK_HEADER_BYTES);
}

// ---------------------------------------------------------------------------------------
// Decoding.

/** A payload that is not a well-formed list of records; record_index null: the list itself. */
export class PayloadError extends Error {
  constructor(
    readonly problem: string,
    readonly record_index: number | null,
  ) {
    super(problem);
    this.name = "PayloadError";
  }
}

interface EnumValue {
  text: string;
  bytes: Uint8Array;
}

const enumValues = (names: readonly string[]): EnumValue[] => names.map((text) => ({ text, bytes: Buffer.from(text, "utf8") }));
const DROP_REASON_VALUES = enumValues(DROP_REASONS);
const LIFECYCLE_EVENT_VALUES = enumValues(LIFECYCLE_EVENTS);
const RUN_END_REASON_VALUES = enumValues(RUN_END_REASONS);
const FAULT_ACTION_VALUES = enumValues(FAULT_ACTIONS);
const COMMAND_EVENT_VALUES = enumValues(COMMAND_EVENTS);

// For messages only (cold path): the failing record decoded generically.
const genericUnpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: "number" });

/**
 * Decodes a RECORDS payload and checks every record against its tuple shape as it goes.
 * Frame bytes come back as views into `src` (copying each costs ~650 ns here, three times
 * the rest of a record's decode), so a caller that reuses `src` must check views_made.
 */
export class RecordDecoder {
  /** Smallest and largest record time seen by the last decode(). */
  t_min_ns = 0;
  t_max_ns = 0;
  /** Whether the last decode() returned views into its source. */
  views_made = false;
  private src: Buffer = Buffer.alloc(0);
  private view: DataView = new DataView(new ArrayBuffer(0));
  private pos = 0;
  private end = 0;

  constructor(readonly node_count: number) {}

  /** The records of payload src[start..end); throws PayloadError unless they are exactly `count` valid records. */
  decode(src: Buffer, start: number, end: number, count: number): TraceRecord[] {
    this.begin(src, start, end);
    const n = this.arrayLength();
    if (n < 0) throw new PayloadError("payload is not a list of records", null);
    if (n !== count) throw new PayloadError(`payload holds ${n} records, the chunk header says ${count}`, null);
    const records: TraceRecord[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const at = this.pos;
      const r = this.record();
      if (r === null) throw new PayloadError(this.describeBadRecord(at), i);
      records[i] = r;
    }
    const stray = end - this.pos;
    if (stray !== 0) throw new PayloadError(`${stray} stray ${stray === 1 ? "byte" : "bytes"} after the last record`, null);
    return records;
  }

  private begin(src: Buffer, start: number, end: number): void {
    if (src !== this.src) {
      this.src = src;
      this.view = new DataView(src.buffer, src.byteOffset, src.length);
    }
    this.pos = start;
    this.end = end;
    this.t_min_ns = Number.MAX_SAFE_INTEGER;
    this.t_max_ns = 0;
    this.views_made = false;
  }

  /** One record, or null when it is not a valid one (the caller then works out why). */
  private record(): TraceRecord | null {
    const len = this.arrayLength();
    if (len < 1) return null;
    const kind = this.int();
    switch (kind) {
      case 1:
        return len === 4 ? this.sliceGrant() : null;
      case 2:
        return len === 4 ? this.sliceEnd() : null;
      case 3:
        return len === 5 ? this.frameEmit() : null;
      case 4:
        return len === 6 ? this.frameDeliver() : null;
      case 5:
        return len === 6 ? this.frameDrop() : null;
      case 6:
        return len === 5 ? this.lifecycle() : null;
      case 7:
        return len === 4 ? this.mark() : null;
      case 8:
        return len === 3 || len === 4 ? this.runEnd(len === 4) : null;
      case 9:
        return len === 4 ? this.guestOutput() : null;
      case 10:
      case 11:
        return len === 4 ? this.mgmtFrame(kind) : null;
      case 12:
        return len === 5 ? this.fault() : null;
      case 13:
        return len === 6 ? this.command() : null;
      default:
        return null;
    }
  }

  // One method per kind. Fields are read in order; int() returns NaN for anything that is
  // not a safe integer, so every range test below also rejects wrong types.

  private sliceGrant(): TraceRecord | null {
    const node = this.int();
    const start = this.int();
    const end = this.int();
    if (!(this.isNode(node) && start >= 0 && end > start)) return null;
    this.saw(start);
    return [1, node, start, end];
  }

  private sliceEnd(): TraceRecord | null {
    const node = this.int();
    const end = this.int();
    const wake = this.int();
    if (!(this.isNode(node) && end >= 0 && wake >= -1)) return null;
    this.saw(end);
    return [2, node, end, wake];
  }

  private frameEmit(): TraceRecord | null {
    const node = this.int();
    const t = this.int();
    const frame_id = this.int();
    const bytes = this.bin();
    if (!(this.isNode(node) && t >= 0 && frame_id >= 0 && bytes !== null)) return null;
    this.saw(t);
    return [3, node, t, frame_id, bytes];
  }

  private frameDeliver(): TraceRecord | null {
    const to = this.int();
    const t = this.int();
    const frame_id = this.int();
    const from = this.int();
    const sent = this.int();
    if (!(this.isNode(to) && t >= 0 && frame_id >= 0 && this.isNode(from) && sent >= 0)) return null;
    this.saw(t);
    return [4, to, t, frame_id, from, sent];
  }

  private frameDrop(): TraceRecord | null {
    const to = this.int();
    const t = this.int();
    const frame_id = this.int();
    const from = this.int();
    const reason = this.oneOf(DROP_REASON_VALUES);
    if (!((to === -1 || this.isNode(to)) && t >= 0 && frame_id >= 0 && this.isNode(from) && reason !== null)) return null;
    this.saw(t);
    return [5, to, t, frame_id, from, reason as TraceRecord[5] & string] as TraceRecord;
  }

  private lifecycle(): TraceRecord | null {
    const node = this.int();
    const t = this.int();
    const event = this.oneOf(LIFECYCLE_EVENT_VALUES);
    const detail = this.str();
    if (!(this.isNode(node) && t >= 0 && event !== null && detail !== null)) return null;
    this.saw(t);
    return [6, node, t, event, detail] as TraceRecord;
  }

  private mark(): TraceRecord | null {
    const node = this.int();
    const t = this.int();
    const text = this.str();
    if (!((node === -1 || this.isNode(node)) && t >= 0 && text !== null)) return null;
    this.saw(t);
    return [7, node, t, text];
  }

  private runEnd(with_detail: boolean): TraceRecord | null {
    const t = this.int();
    const reason = this.oneOf(RUN_END_REASON_VALUES);
    const detail = with_detail ? this.str() : "";
    if (!(t >= 0 && reason !== null && detail !== null)) return null;
    this.saw(t);
    return (with_detail ? [8, t, reason, detail] : [8, t, reason]) as TraceRecord;
  }

  private guestOutput(): TraceRecord | null {
    const node = this.int();
    const t = this.int();
    const text = this.str();
    if (!(this.isNode(node) && t >= 0 && text !== null)) return null;
    this.saw(t);
    return [9, node, t, text];
  }

  private mgmtFrame(kind: 10 | 11): TraceRecord | null {
    const node = this.int();
    const t = this.int();
    const bytes = this.bin();
    if (!(this.isNode(node) && t >= 0 && bytes !== null)) return null;
    this.saw(t);
    return [kind, node, t, bytes];
  }

  private fault(): TraceRecord | null {
    const node = this.int();
    const t = this.int();
    const action = this.oneOf(FAULT_ACTION_VALUES);
    const detail = this.str();
    if (!((node === -1 || this.isNode(node)) && t >= 0 && action !== null && detail !== null)) return null;
    this.saw(t);
    return [12, node, t, action, detail] as TraceRecord;
  }

  private command(): TraceRecord | null {
    const node = this.int();
    const t = this.int();
    const event = this.oneOf(COMMAND_EVENT_VALUES);
    const id = this.str();
    const detail = this.str();
    if (!(this.isNode(node) && t >= 0 && event !== null && id !== null && detail !== null)) return null;
    this.saw(t);
    return [13, node, t, event, id, detail] as TraceRecord;
  }

  private isNode(v: number): boolean {
    return v >= 0 && v < this.node_count;
  }

  private saw(t: number): void {
    if (t < this.t_min_ns) this.t_min_ns = t;
    if (t > this.t_max_ns) this.t_max_ns = t;
  }

  /** Length of the array that starts here, or -1 if none does. */
  private arrayLength(): number {
    if (this.pos >= this.end) return -1;
    const b = this.src[this.pos++]!;
    if ((b & 0xf0) === 0x90) return b & 0x0f;
    if (b === 0xdc) return this.uintBytes(2);
    if (b === 0xdd) return this.uintBytes(4);
    return -1;
  }

  /** A big-endian unsigned integer of `size` bytes here, or -1 past the end. */
  private uintBytes(size: 1 | 2 | 4): number {
    const p = this.pos;
    if (p + size > this.end) return -1;
    this.pos = p + size;
    if (size === 1) return this.src[p]!;
    if (size === 2) return this.view.getUint16(p);
    return this.view.getUint32(p);
  }

  /** An integer in any msgpack encoding (integral floats too); NaN if it is none or not a safe integer. */
  private int(): number {
    const p = this.pos;
    if (p >= this.end) return NaN;
    const b = this.src[p]!;
    this.pos = p + 1;
    if (b < 0x80) return b;
    if (b >= 0xe0) return b - 0x100;
    if (b < 0xca || b > 0xd3) return NaN;
    const size = INT_SIZES[b - 0xca]!; // 0xca..0xd3: float32, float64, uint8..64, int8..64
    if (p + 1 + size > this.end) return NaN;
    this.pos = p + 1 + size;
    const v = this.view;
    const q = p + 1;
    let value: number;
    switch (b) {
      case 0xcc:
        return this.src[q]!;
      case 0xcd:
        return v.getUint16(q);
      case 0xce:
        return v.getUint32(q);
      case 0xcf:
        value = v.getUint32(q) * TWO_32 + v.getUint32(q + 4);
        break;
      case 0xd0:
        return v.getInt8(q);
      case 0xd1:
        return v.getInt16(q);
      case 0xd2:
        return v.getInt32(q);
      case 0xd3:
        value = v.getInt32(q) * TWO_32 + v.getUint32(q + 4);
        break;
      case 0xca:
        value = v.getFloat32(q);
        break;
      default:
        value = v.getFloat64(q);
    }
    // Above 2^53 the sums above round, so only safe results are exact (and accepted).
    return Number.isSafeInteger(value) ? value : NaN;
  }

  /** The byte length of the str (or bin, with codes 0xc4..) that starts here; -1 if none or it runs past the end. */
  private span(first_code: number): number {
    if (this.pos >= this.end) return -1;
    const b = this.src[this.pos++]!;
    let len: number;
    if (first_code === 0xd9 && (b & 0xe0) === 0xa0) len = b & 0x1f;
    else if (b === first_code) len = this.uintBytes(1);
    else if (b === first_code + 1) len = this.uintBytes(2);
    else if (b === first_code + 2) len = this.uintBytes(4);
    else return -1;
    if (len < 0 || this.pos + len > this.end) return -1;
    return len;
  }

  private str(): string | null {
    const len = this.span(0xd9);
    if (len < 0) return null;
    const p = this.pos;
    this.pos = p + len;
    return len === 0 ? "" : this.src.toString("utf8", p, p + len);
  }

  /** One of a few known strings, matched on the bytes (no string is built). */
  private oneOf(values: EnumValue[]): string | null {
    const len = this.span(0xd9);
    if (len < 0) return null;
    const p = this.pos;
    this.pos = p + len;
    for (const { text, bytes } of values) {
      if (bytes.length === len && this.bytesAt(p, bytes)) return text;
    }
    return null;
  }

  private bytesAt(p: number, bytes: Uint8Array): boolean {
    for (let i = 0; i < bytes.length; i++) if (this.src[p + i] !== bytes[i]) return false;
    return true;
  }

  private bin(): Uint8Array | null {
    const len = this.span(0xc4);
    if (len < 0) return null;
    const p = this.pos;
    this.pos = p + len;
    this.views_made = true;
    return new Uint8Array(this.src.buffer, this.src.byteOffset + p, len);
  }

  /** Why the record at `at` was rejected, in validateRecord's words (cold path: decodes it generically). */
  private describeBadRecord(at: number): string {
    let value: unknown;
    try {
      genericUnpackr.unpackMultiple(this.src.subarray(at, this.end), (v: unknown) => {
        value = v;
        return false; // the first value is the record; stop there
      });
    } catch {
      return "does not decode as msgpack";
    }
    const problem = validateRecord(value, this.node_count);
    if (problem !== null) return problem;
    // validateRecord and the decoder disagree: report the shape rather than nothing.
    const kind = Array.isArray(value) ? value[0] : undefined;
    const shape = typeof kind === "number" ? RECORD_SHAPES[kind] : undefined;
    return shape === undefined ? `unknown record kind ${describeKind(kind)}` : `expected ${shape}`;
  }
}

/** Bytes after the type byte for 0xca..0xd3: float32, float64, uint8, 16, 32, 64, int8, 16, 32, 64. */
const INT_SIZES = [4, 8, 1, 2, 4, 8, 1, 2, 4, 8];
