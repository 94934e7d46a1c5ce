// Reads a trace in constant memory: one chunk at a time, each checked against its CRC and
// every record against its shape. A file that simply stops (a killed run) reads up to its
// last complete chunk; anything else wrong is a TraceError with a one-line message.

import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { recordTimeNs, type TraceHeader, type TraceRecord } from "../engine/trace_records.js";
import { TraceError } from "./errors.js";
import {
  CHUNK_HEADER_BYTES,
  CHUNK_PAYLOAD_BYTES_MAX,
  CHUNK_RECORDS_MAX,
  ChunkType,
  chunkCrc,
  decodeChunkHeader,
  FILE_MAGIC,
  FORMAT_VERSION,
  TRAILER_BYTES,
  TRAILER_MAGIC,
  unpackr,
} from "./format.js";
import { validateHeader, validateRecord } from "./validate.js";

export interface ChunkIndexEntry {
  offset: number;
  t_min_ns: number;
  t_max_ns: number;
  record_count: number;
  first_ordinal: number;
}

export interface RecordChunk extends ChunkIndexEntry {
  index: number;
  records: TraceRecord[];
}

export interface TraceStatus {
  /** Closed cleanly: index and trailer present. */
  complete: boolean;
  /** Where an incomplete last chunk starts (killed mid-write), or null. */
  truncated_at_byte: number | null;
  chunks: number;
  records: number;
}

interface RawChunk {
  type: number;
  offset: number;
  payload: Buffer;
  record_count: number;
  t_min_ns: number;
  t_max_ns: number;
}

export class TraceReader {
  readonly header: TraceHeader;
  private readonly records_start: number;
  /** Where RECORDS chunks end: the INDEX chunk of a complete file, else the file's end. */
  private readonly records_end: number;
  private readonly stored_index: ChunkIndexEntry[] | null;
  private scanned: { index: ChunkIndexEntry[]; truncated_at_byte: number | null } | null = null;

  private constructor(
    readonly path: string,
    private readonly fd: number,
    readonly file_size: number,
  ) {
    this.checkMagic();
    const header_chunk = this.readChunk(FILE_MAGIC.length, 0, file_size);
    if (header_chunk === null || header_chunk.type !== ChunkType.Header) {
      if (header_chunk === null) throw new TraceError(path, `no complete header chunk (file truncated at byte ${file_size})`);
      throw new TraceError(path, `first chunk has type ${header_chunk.type}, expected a header`);
    }
    this.header = this.decodeHeader(header_chunk.payload);
    this.records_start = header_chunk.offset + CHUNK_HEADER_BYTES + header_chunk.payload.length;
    const index_offset = this.trailerIndexOffset();
    this.stored_index = index_offset === null ? null : this.readStoredIndex(index_offset);
    this.records_end = index_offset ?? file_size;
  }

  static open(path: string): TraceReader {
    let fd: number;
    try {
      fd = openSync(path, "r");
    } catch (err) {
      throw new TraceError(path, openErrorText(err as NodeJS.ErrnoException));
    }
    try {
      const stat = fstatSync(fd);
      if (stat.isDirectory()) throw new TraceError(path, "is a directory, not a trace file");
      if (stat.size === 0) throw new TraceError(path, "empty file, not a tapsim trace");
      return new TraceReader(path, fd, stat.size);
    } catch (err) {
      closeSync(fd);
      if (err instanceof TraceError) throw err;
      if ((err as NodeJS.ErrnoException).code === "EISDIR") throw new TraceError(path, "is a directory, not a trace file");
      throw err;
    }
  }

  close(): void {
    closeSync(this.fd);
  }

  /** Every RECORDS chunk in file order, decoded and validated, one at a time. */
  *chunks(from_chunk = 0): Generator<RecordChunk> {
    const index = this.index();
    for (let i = from_chunk; i < index.length; i++) {
      const entry = index[i]!;
      const raw = this.readChunk(entry.offset, i + 1, this.records_end);
      if (raw === null || raw.type !== ChunkType.Records) throw new TraceError(this.path, `chunk ${i + 1} at byte ${entry.offset} is missing or not a records chunk`);
      yield { ...entry, index: i, records: this.decodeRecords(raw, i + 1, entry.first_ordinal) };
    }
  }

  *records(): Generator<TraceRecord> {
    for (const chunk of this.chunks()) yield* chunk.records;
  }

  /** Records with virtual time >= t_ns, in stream order; chunks entirely before t are skipped unread. */
  *recordsFrom(t_ns: number): Generator<TraceRecord> {
    const index = this.index();
    const first = index.findIndex((e) => e.t_max_ns >= t_ns);
    if (first < 0) return;
    for (const chunk of this.chunks(first)) {
      if (chunk.t_max_ns < t_ns) continue;
      for (const r of chunk.records) if (recordTimeNs(r) >= t_ns) yield r;
    }
  }

  /** One entry per RECORDS chunk: from the stored index, or by scanning chunk headers only. */
  index(): ChunkIndexEntry[] {
    if (this.stored_index !== null) return this.stored_index;
    return this.scan().index;
  }

  status(): TraceStatus {
    const index = this.index();
    const records = index.reduce((sum, e) => sum + e.record_count, 0);
    const complete = this.stored_index !== null;
    return { complete, truncated_at_byte: complete ? null : this.scan().truncated_at_byte, chunks: index.length, records };
  }

  private checkMagic(): void {
    const magic = Buffer.alloc(FILE_MAGIC.length);
    const got = readSync(this.fd, magic, 0, magic.length, 0);
    const prefix_ok = magic.subarray(0, got).equals(FILE_MAGIC.subarray(0, got));
    if (got < FILE_MAGIC.length && prefix_ok) throw new TraceError(this.path, `no complete header chunk (file truncated at byte ${got})`);
    if (!magic.equals(FILE_MAGIC)) throw new TraceError(this.path, "not a tapsim trace (bad magic)");
  }

  private decodeHeader(payload: Buffer): TraceHeader {
    let header: unknown;
    try {
      header = unpackr.unpack(payload);
    } catch {
      throw new TraceError(this.path, "header chunk does not decode");
    }
    const h = header as Partial<TraceHeader> | null;
    if (typeof h !== "object" || h === null || h.format !== "tapsim-trace") throw new TraceError(this.path, "not a tapsim trace (header has no tapsim-trace format tag)");
    if (h.format_version !== FORMAT_VERSION) {
      throw new TraceError(this.path, `trace format version ${String(h.format_version)} is not supported (this tapsim reads version ${FORMAT_VERSION})`);
    }
    const problem = validateHeader(h);
    if (problem !== null) throw new TraceError(this.path, `header is malformed: ${problem}`);
    return h as TraceHeader;
  }

  private trailerIndexOffset(): number | null {
    if (this.file_size < this.records_start + TRAILER_BYTES) return null;
    const trailer = Buffer.alloc(TRAILER_BYTES);
    readSync(this.fd, trailer, 0, TRAILER_BYTES, this.file_size - TRAILER_BYTES);
    if (!trailer.subarray(0, 8).equals(TRAILER_MAGIC)) return null;
    const offset = trailer.readDoubleLE(8);
    if (!(Number.isSafeInteger(offset) && offset >= this.records_start && offset <= this.file_size - TRAILER_BYTES - CHUNK_HEADER_BYTES)) {
      throw new TraceError(this.path, `trailer at byte ${this.file_size - TRAILER_BYTES} is corrupt (index offset ${offset} out of range)`);
    }
    return offset;
  }

  private readStoredIndex(offset: number): ChunkIndexEntry[] {
    const raw = this.readChunk(offset, -1, this.file_size - TRAILER_BYTES);
    if (raw === null || raw.type !== ChunkType.Index) throw new TraceError(this.path, `index chunk at byte ${offset} is corrupt`);
    let entries: unknown;
    try {
      entries = unpackr.unpack(raw.payload);
    } catch {
      throw new TraceError(this.path, `index chunk at byte ${offset} does not decode`);
    }
    if (!Array.isArray(entries)) throw new TraceError(this.path, `index chunk at byte ${offset} is malformed`);
    let expected_offset = this.records_start;
    let ordinal = 0;
    return entries.map((e: unknown, i) => {
      const ok = Array.isArray(e) && e.length === 5 && e.every((v) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0);
      if (!ok || e[0] !== expected_offset || e[4] !== ordinal || e[3] > CHUNK_RECORDS_MAX) {
        throw new TraceError(this.path, `index entry ${i} at byte ${offset} is malformed`);
      }
      const [entry_offset, t_min_ns, t_max_ns, record_count, first_ordinal] = e as number[];
      ordinal += record_count!;
      const entry = { offset: entry_offset!, t_min_ns: t_min_ns!, t_max_ns: t_max_ns!, record_count: record_count!, first_ordinal: first_ordinal! };
      expected_offset = this.chunkEnd(entry.offset);
      return entry;
    });
  }

  private chunkEnd(offset: number): number {
    const h = Buffer.alloc(CHUNK_HEADER_BYTES);
    if (readSync(this.fd, h, 0, CHUNK_HEADER_BYTES, offset) < CHUNK_HEADER_BYTES) return -1;
    const header = decodeChunkHeader(h);
    return header === null ? -1 : offset + CHUNK_HEADER_BYTES + header.payload_len;
  }

  /** Walks chunk headers after the header chunk (payloads unread) to index a file without one. */
  private scan(): { index: ChunkIndexEntry[]; truncated_at_byte: number | null } {
    if (this.scanned !== null) return this.scanned;
    const index: ChunkIndexEntry[] = [];
    const h = Buffer.alloc(CHUNK_HEADER_BYTES);
    let offset = this.records_start;
    let ordinal = 0;
    let truncated_at_byte: number | null = null;
    while (offset < this.records_end) {
      const got = readSync(this.fd, h, 0, CHUNK_HEADER_BYTES, offset);
      const header = got === CHUNK_HEADER_BYTES ? decodeChunkHeader(h) : null;
      if (got === CHUNK_HEADER_BYTES && header === null) throw this.corrupt(index.length + 1, offset, "bad chunk magic");
      if (header === null || offset + CHUNK_HEADER_BYTES + header.payload_len > this.records_end) {
        if (header !== null) this.checkBounds(header, index.length + 1, offset);
        truncated_at_byte = offset;
        break;
      }
      this.checkBounds(header, index.length + 1, offset);
      if (header.type === ChunkType.Index) break; // closed, but the trailer never made it
      if (header.type !== ChunkType.Records) throw this.corrupt(index.length + 1, offset, `unknown chunk type ${header.type}`);
      index.push({ offset, t_min_ns: header.t_min_ns, t_max_ns: header.t_max_ns, record_count: header.record_count, first_ordinal: ordinal });
      ordinal += header.record_count;
      offset += CHUNK_HEADER_BYTES + header.payload_len;
    }
    this.scanned = { index, truncated_at_byte };
    return this.scanned;
  }

  /** The chunk at `offset`, CRC-checked; null when the file ends inside it (before `limit`). */
  private readChunk(offset: number, number: number, limit: number): RawChunk | null {
    const h = Buffer.alloc(CHUNK_HEADER_BYTES);
    if (offset + CHUNK_HEADER_BYTES > limit) return null;
    readSync(this.fd, h, 0, CHUNK_HEADER_BYTES, offset);
    const header = decodeChunkHeader(h);
    if (header === null) throw this.corrupt(number, offset, "bad chunk magic");
    this.checkBounds(header, number, offset);
    if (offset + CHUNK_HEADER_BYTES + header.payload_len > limit) return null;
    // A fresh buffer per chunk: decoded frame bytes are views into it.
    const payload = Buffer.allocUnsafe(header.payload_len);
    const got = readSync(this.fd, payload, 0, header.payload_len, offset + CHUNK_HEADER_BYTES);
    if (got !== header.payload_len) return null;
    if (chunkCrc(h, payload) !== header.crc) throw this.corrupt(number, offset, "checksum mismatch");
    return { type: header.type, offset, payload, record_count: header.record_count, t_min_ns: header.t_min_ns, t_max_ns: header.t_max_ns };
  }

  private checkBounds(header: { payload_len: number; record_count: number; type: number }, number: number, offset: number): void {
    if (header.payload_len > CHUNK_PAYLOAD_BYTES_MAX || header.record_count > CHUNK_RECORDS_MAX) {
      throw this.corrupt(number, offset, "length out of range");
    }
  }

  private decodeRecords(raw: RawChunk, number: number, first_ordinal: number): TraceRecord[] {
    let records: unknown;
    try {
      records = unpackr.unpack(raw.payload);
    } catch {
      throw this.corrupt(number, raw.offset, "payload does not decode");
    }
    if (!Array.isArray(records) || records.length !== raw.record_count) {
      throw this.corrupt(number, raw.offset, `payload is not ${raw.record_count} records`);
    }
    for (let i = 0; i < records.length; i++) {
      const problem = validateRecord(records[i]);
      if (problem !== null) {
        throw new TraceError(this.path, `record ${first_ordinal + i} (chunk ${number}, byte ${raw.offset}) is malformed: ${problem}`);
      }
    }
    return records as TraceRecord[];
  }

  private corrupt(number: number, offset: number, why: string): TraceError {
    return new TraceError(this.path, `${number < 0 ? "index chunk" : `chunk ${number}`} at byte ${offset} is corrupt (${why})`);
  }
}

function openErrorText(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case "ENOENT":
      return "no such file";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EISDIR":
      return "is a directory, not a trace file";
    default:
      return `cannot open: ${err.code ?? err.message}`;
  }
}

export function readTraceHeader(path: string): TraceHeader {
  const reader = TraceReader.open(path);
  try {
    return reader.header;
  } finally {
    reader.close();
  }
}
