// Reads a trace in constant memory: one chunk at a time, each checked against its CRC and
// every record against its tuple shape. A file that simply stops (a killed or still running
// run) reads up to its last complete chunk; anything else wrong is a TraceError whose
// message is one line. Corrupt length fields are bounded, so nothing allocates more than a
// chunk's bound or loops longer than the file is long.

import { closeSync, constants as fsConstants, fstatSync, openSync, readSync } from "node:fs";
import { recordTimeNs, type TraceHeader, type TraceRecord } from "../engine/trace_records.js";
import { TraceError, fsErrorText } from "./errors.js";
import {
  CHUNK_HEADER_BYTES,
  CHUNK_PAYLOAD_BYTES_MAX,
  CHUNK_RECORDS_MAX,
  ChunkType,
  FILE_MAGIC,
  FORMAT_VERSION,
  FORMAT_VERSION_MIN,
  TRAILER_BYTES,
  chunkCrc,
  readChunkHeader,
  readTrailer,
  startsWith,
  unpackValue,
  type ChunkHeader,
} from "./format.js";
import { PayloadError, RecordDecoder } from "./record_codec.js";
import { validateHeader } from "./validate.js";

export interface ChunkIndexEntry {
  /** Byte offset of the chunk in the file. */
  offset: number;
  /** Smallest and largest record time in the chunk (records are not time-ordered). */
  t_min_ns: number;
  t_max_ns: number;
  record_count: number;
  /** 0-based position of the chunk's first record in the whole trace. */
  first_ordinal: number;
}

export interface RecordChunk extends ChunkIndexEntry {
  /** 0-based position among RECORDS chunks (error messages number chunks in the file: index + 1). */
  index: number;
  records: TraceRecord[];
}

export interface TraceStatus {
  /** Closed cleanly: INDEX chunk and trailer present and valid. */
  complete: boolean;
  /** Incomplete files: where an unfinished chunk (or trailer) starts; null when the file ends on a chunk boundary or is complete. */
  truncated_at_byte: number | null;
  /** RECORDS chunks and records that can be read. */
  chunks: number;
  records: number;
}

/** Where the reader's first buffer starts; it grows to the largest chunk met (at most the bound). */
const READ_BUFFER_INITIAL_BYTES = 512 * 1024;

export class TraceReader {
  readonly header: TraceHeader;
  /** Where the first RECORDS chunk starts (right after the header chunk). */
  private readonly records_start: number;
  /** The INDEX chunk's offset from a valid trailer; null when the file has none (killed run). */
  private readonly index_offset: number | null;
  private readonly stored_index: ChunkIndexEntry[] | null;
  private scanned: { index: ChunkIndexEntry[]; truncated_at_byte: number | null } | null = null;
  private buf: Buffer = Buffer.allocUnsafeSlow(READ_BUFFER_INITIAL_BYTES);
  private readonly chunk_header_bytes = new Uint8Array(CHUNK_HEADER_BYTES);
  private readonly decoder: RecordDecoder;
  private fd: number | null;

  private constructor(
    readonly path: string,
    fd: number,
    readonly file_size: number,
  ) {
    this.fd = fd;
    this.checkFileMagic();
    const { header, end } = this.readHeaderChunk();
    this.header = header;
    this.records_start = end;
    this.decoder = new RecordDecoder(header.config.nodes.length);
    this.index_offset = this.trailerIndexOffset();
    this.stored_index = this.index_offset === null ? null : this.readStoredIndex(this.index_offset);
  }

  /** Opens and checks magic and header chunk; every problem is a TraceError. */
  static open(path: string): TraceReader {
    const fd = openForReading(path);
    try {
      const stat = fstatSync(fd);
      if (stat.isDirectory()) throw new TraceError(path, "is a directory");
      if (!stat.isFile()) throw new TraceError(path, "not a regular file, not a tapsim trace");
      if (stat.size === 0) throw new TraceError(path, "empty file, not a tapsim trace");
      return new TraceReader(path, fd, stat.size);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  /** Releases the file descriptor; safe to call again. */
  close(): void {
    if (this.fd === null) return;
    closeSync(this.fd);
    this.fd = null;
  }

  /** Every RECORDS chunk in file order (from the `from_chunk`-th), decoded and validated, one at a time. */
  *chunks(from_chunk = 0): Generator<RecordChunk> {
    const index = this.stored_index ?? this.scanned?.index;
    if (index === undefined) {
      yield* this.walkChunks(from_chunk);
      return;
    }
    for (let i = from_chunk; i < index.length; i++) yield this.readRecordsChunk(index, i);
  }

  /** Every record in stream order. */
  records(): IterableIterator<TraceRecord> {
    return new ChunkRecords(this.chunks(), null);
  }

  /** Records with time >= t_ns, in stream order; chunks whose records all lie before t_ns are skipped unread. */
  recordsFrom(t_ns: number): IterableIterator<TraceRecord> {
    return new ChunkRecords(this.chunksReaching(t_ns), t_ns);
  }

  /** The RECORDS chunks holding a record at t_ns or later (by the index's t_max). */
  private *chunksReaching(t_ns: number): Generator<RecordChunk> {
    const index = this.index();
    for (let i = 0; i < index.length; i++) {
      if (index[i]!.t_max_ns >= t_ns) yield this.readRecordsChunk(index, i);
    }
  }

  /** One entry per RECORDS chunk: the stored index, or (no trailer) a walk over chunk headers, payloads unread. */
  index(): ChunkIndexEntry[] {
    return this.stored_index ?? this.scan().index;
  }

  status(): TraceStatus {
    const index = this.index();
    const last = index[index.length - 1];
    const records = last === undefined ? 0 : last.first_ordinal + last.record_count;
    const complete = this.stored_index !== null;
    return { complete, truncated_at_byte: complete ? null : this.scan().truncated_at_byte, chunks: index.length, records };
  }

  // ---- opening ----------------------------------------------------------------------

  private checkFileMagic(): void {
    const magic = new Uint8Array(FILE_MAGIC.length);
    const got = this.readAt(magic, 0, FILE_MAGIC.length, 0);
    const head = magic.subarray(0, got);
    if (got < FILE_MAGIC.length && startsWith(FILE_MAGIC, head)) throw this.noHeader(got);
    if (!startsWith(head, FILE_MAGIC)) throw new TraceError(this.path, "not a tapsim trace (bad magic)");
  }

  private readHeaderChunk(): { header: TraceHeader; end: number } {
    const offset = FILE_MAGIC.length;
    const h = this.readChunkHeaderAt(offset, 0);
    if (h === null) throw this.noHeader(this.file_size);
    if (h.type !== ChunkType.Header) throw this.corrupt(0, offset, `expected the header chunk, found chunk type ${h.type}`);
    const payload = this.readPayload(offset, h, 0);
    if (payload === null) throw this.noHeader(this.file_size);
    return { header: this.decodeHeader(payload), end: offset + CHUNK_HEADER_BYTES + h.payload_len };
  }

  private decodeHeader(payload: Uint8Array): TraceHeader {
    let decoded: unknown;
    try {
      decoded = unpackValue(payload);
    } catch {
      throw new TraceError(this.path, "header chunk does not decode as msgpack");
    }
    const h = decoded as Partial<TraceHeader> | null;
    if (typeof h !== "object" || h === null || h.format !== "tapsim-trace") {
      throw new TraceError(this.path, "not a tapsim trace (header has no tapsim-trace format tag)");
    }
    if (!(typeof h.format_version === "number" && h.format_version >= FORMAT_VERSION_MIN && h.format_version <= FORMAT_VERSION && Number.isInteger(h.format_version))) {
      const version = typeof h.format_version === "number" ? String(h.format_version) : (JSON.stringify(h.format_version) ?? "(missing)").slice(0, 40);
      throw new TraceError(this.path, `trace format version ${version} is not supported (this tapsim reads versions ${FORMAT_VERSION_MIN} to ${FORMAT_VERSION})`);
    }
    const problem = validateHeader(h);
    if (problem !== null) throw new TraceError(this.path, `header is malformed: ${problem}`);
    return h as TraceHeader;
  }

  /** The trailer's INDEX offset, checked for range; null when the file does not end in a trailer. */
  private trailerIndexOffset(): number | null {
    if (this.file_size < this.records_start + CHUNK_HEADER_BYTES + TRAILER_BYTES) return null;
    const trailer = new Uint8Array(TRAILER_BYTES);
    const trailer_at = this.file_size - TRAILER_BYTES;
    if (this.readAt(trailer, 0, TRAILER_BYTES, trailer_at) < TRAILER_BYTES) return null;
    const offset = readTrailer(trailer);
    if (offset === null) return null;
    const last_possible = trailer_at - CHUNK_HEADER_BYTES;
    if (!(Number.isSafeInteger(offset) && offset >= this.records_start && offset <= last_possible)) {
      throw new TraceError(this.path, `trailer at byte ${trailer_at} is corrupt (index offset ${offset} is out of range)`);
    }
    return offset;
  }

  /** The INDEX chunk, which must end right where the trailer starts, checked entry by entry. */
  private readStoredIndex(offset: number): ChunkIndexEntry[] {
    const bad = (why: string) => new TraceError(this.path, `index chunk at byte ${offset} is corrupt (${why})`);
    const h = this.readChunkHeaderAt(offset, -1);
    if (h === null || h.type !== ChunkType.Index) throw bad(h === null ? "cut short" : `chunk type ${h.type}, expected the index`);
    if (offset + CHUNK_HEADER_BYTES + h.payload_len !== this.file_size - TRAILER_BYTES) throw bad("it does not end where the trailer starts");
    const payload = this.readPayload(offset, h, -1);
    if (payload === null) throw bad("cut short");
    let entries: unknown;
    try {
      entries = unpackValue(payload);
    } catch {
      throw bad("payload does not decode as msgpack");
    }
    if (!Array.isArray(entries) || entries.length !== h.record_count) throw bad("payload is not the list of entries its header announces");
    return this.checkIndexEntries(entries, offset, bad);
  }

  private checkIndexEntries(entries: unknown[], index_offset: number, bad: (why: string) => TraceError): ChunkIndexEntry[] {
    const index: ChunkIndexEntry[] = [];
    let min_offset = this.records_start;
    let ordinal = 0;
    for (const [i, e] of entries.entries()) {
      const entry = indexEntryFrom(e);
      if (entry === null || entry.offset < min_offset || entry.offset > index_offset - CHUNK_HEADER_BYTES || entry.first_ordinal !== ordinal) {
        throw bad(`entry ${i} is malformed`);
      }
      index.push(entry);
      ordinal += entry.record_count;
      min_offset = entry.offset + CHUNK_HEADER_BYTES;
    }
    return index;
  }

  // ---- the index of a file without trailer ------------------------------------------

  /** Walks chunk headers from the first RECORDS chunk to the end of the file (or its first unfinished chunk). */
  private scan(): { index: ChunkIndexEntry[]; truncated_at_byte: number | null } {
    if (this.scanned === null) for (const _ of this.walk(false, 0)) continue;
    return this.scanned!;
  }

  /**
   * chunks() for a file without trailer: reads each chunk right after its header, so the
   * records before a damaged chunk come out before its error (as they do with an index).
   */
  private *walkChunks(from_chunk: number): Generator<RecordChunk> {
    for (const chunk of this.walk(true, from_chunk)) if (chunk !== null) yield chunk;
  }

  /**
   * Steps through the chunks after the header chunk, from their headers alone; yields each
   * RECORDS chunk decoded when `decode` (from the `from_chunk`-th on), else null per chunk.
   * A complete walk leaves the index and where the file stops in this.scanned.
   */
  private *walk(decode: boolean, from_chunk: number): Generator<RecordChunk | null> {
    const index: ChunkIndexEntry[] = [];
    let offset = this.records_start;
    let ordinal = 0;
    // Each step moves at least one chunk header forward, so this ends within file_size / 36 steps.
    for (;;) {
      const step = this.stepAt(offset, index.length + 1);
      if (step.end) {
        this.scanned = { index, truncated_at_byte: step.truncated_at_byte };
        return;
      }
      const h = step.header;
      const entry = { offset, t_min_ns: h.t_min_ns, t_max_ns: h.t_max_ns, record_count: h.record_count, first_ordinal: ordinal };
      index.push(entry);
      yield decode && index.length > from_chunk ? this.loadRecordsChunk(entry, h, index.length - 1) : null;
      ordinal += h.record_count;
      offset += CHUNK_HEADER_BYTES + h.payload_len;
    }
  }

  /** The RECORDS chunk header at `offset`, or where and whether the readable part of the file ends there. */
  private stepAt(offset: number, number: number): { end: false; header: ChunkHeader } | { end: true; truncated_at_byte: number | null } {
    if (offset >= this.file_size) return { end: true, truncated_at_byte: null };
    const h = this.readChunkHeaderAt(offset, number);
    if (h === null || offset + CHUNK_HEADER_BYTES + h.payload_len > this.file_size) return { end: true, truncated_at_byte: offset };
    if (h.type === ChunkType.Index) {
      // Closed, but the trailer never made it (or was cut short).
      const end = offset + CHUNK_HEADER_BYTES + h.payload_len;
      return { end: true, truncated_at_byte: end < this.file_size ? end : null };
    }
    this.checkRecordsChunkHeader(h, number, offset);
    return { end: false, header: h };
  }

  private checkRecordsChunkHeader(h: ChunkHeader, number: number, offset: number): void {
    if (h.type === ChunkType.Header) throw this.corrupt(number, offset, "a second header chunk");
    if (h.type !== ChunkType.Records) throw this.corrupt(number, offset, `unknown chunk type ${h.type}`);
    if (h.record_count === 0) throw this.corrupt(number, offset, "a records chunk without records");
    const times_ok = Number.isSafeInteger(h.t_min_ns) && Number.isSafeInteger(h.t_max_ns) && 0 <= h.t_min_ns && h.t_min_ns <= h.t_max_ns;
    if (!times_ok) throw this.corrupt(number, offset, "bad time range");
  }

  // ---- reading chunks ---------------------------------------------------------------

  /** The i-th RECORDS chunk of `index`, checked against its entry, its checksum and its record shapes. */
  private readRecordsChunk(index: ChunkIndexEntry[], i: number): RecordChunk {
    const entry = index[i]!;
    const number = i + 1;
    const h = this.readChunkHeaderAt(entry.offset, number);
    if (h === null) throw this.corrupt(number, entry.offset, "cut short");
    this.checkRecordsChunkHeader(h, number, entry.offset);
    const matches_entry = h.record_count === entry.record_count && h.t_min_ns === entry.t_min_ns && h.t_max_ns === entry.t_max_ns;
    const end = entry.offset + CHUNK_HEADER_BYTES + h.payload_len;
    const next_offset = index[i + 1]?.offset ?? this.index_offset ?? end;
    if (!matches_entry || end !== next_offset) throw this.corrupt(number, entry.offset, "it does not match the index");
    return this.loadRecordsChunk(entry, h, i);
  }

  /** Payload and records of the i-th RECORDS chunk, whose header `h` was the last one read. */
  private loadRecordsChunk(entry: ChunkIndexEntry, h: ChunkHeader, i: number): RecordChunk {
    const number = i + 1;
    if (this.readPayload(entry.offset, h, number) === null) throw this.corrupt(number, entry.offset, "cut short");
    return { ...entry, index: i, records: this.decodeRecords(h, number, entry) };
  }

  /** Decodes the payload sitting at the start of this.buf; hands the buffer over if records point into it. */
  private decodeRecords(h: ChunkHeader, number: number, entry: ChunkIndexEntry): TraceRecord[] {
    const d = this.decoder;
    let records: TraceRecord[];
    try {
      records = d.decode(this.buf, 0, h.payload_len, h.record_count);
    } catch (err) {
      if (!(err instanceof PayloadError)) throw err;
      if (err.record_index === null) throw this.corrupt(number, entry.offset, err.problem);
      // The record's 0-based position in its chunk; entry.first_ordinal + that is its place in the trace.
      throw new TraceError(this.path, `record ${err.record_index} of chunk ${number} (byte ${entry.offset}) is malformed: ${err.problem}`);
    } finally {
      // Frame bytes are views into this.buf: give it to them and read the next chunk elsewhere.
      if (d.views_made) this.buf = Buffer.allocUnsafeSlow(this.buf.length);
    }
    if (d.t_min_ns !== h.t_min_ns || d.t_max_ns !== h.t_max_ns) throw this.corrupt(number, entry.offset, "record times do not match the chunk's time range");
    return records;
  }

  /** The chunk header at `offset`; null when fewer than 36 bytes remain. Bad magic or lengths: TraceError. */
  private readChunkHeaderAt(offset: number, number: number): ChunkHeader | null {
    const bytes = this.chunk_header_bytes;
    if (this.readAt(bytes, 0, CHUNK_HEADER_BYTES, offset) < CHUNK_HEADER_BYTES) return null;
    const h = readChunkHeader(bytes);
    if (h === null) throw this.corrupt(number, offset, "bad chunk magic");
    if (h.payload_len > CHUNK_PAYLOAD_BYTES_MAX || h.record_count > CHUNK_RECORDS_MAX) throw this.corrupt(number, offset, "length out of range");
    return h;
  }

  /**
   * Reads the payload of the chunk whose header `h` was just read (it is still in
   * chunk_header_bytes) into the start of this.buf and checks the CRC. null: the file ends first.
   */
  private readPayload(offset: number, h: ChunkHeader, number: number): Uint8Array | null {
    if (h.payload_len > this.buf.length) this.buf = Buffer.allocUnsafeSlow(Math.max(h.payload_len, this.buf.length * 2));
    const payload = this.buf.subarray(0, h.payload_len);
    if (this.readAt(payload, 0, h.payload_len, offset + CHUNK_HEADER_BYTES) < h.payload_len) return null;
    if (chunkCrc(this.chunk_header_bytes, payload) !== h.crc) throw this.corrupt(number, offset, "checksum mismatch");
    return payload;
  }

  /** readSync until `length` bytes or the end of the file; returns how many it got. */
  private readAt(target: Uint8Array, at: number, length: number, position: number): number {
    if (this.fd === null) throw new Error(`${this.path}: trace reader already closed`);
    let got = 0;
    try {
      while (got < length) {
        const n = readSync(this.fd, target, at + got, length - got, position + got);
        if (n === 0) break;
        got += n;
      }
    } catch (err) {
      throw new TraceError(this.path, `cannot read: ${fsErrorText(err)}`);
    }
    return got;
  }

  private noHeader(size: number): TraceError {
    return new TraceError(this.path, `no complete header chunk (file truncated at byte ${size})`);
  }

  /** number: 0 the header chunk, n the n-th RECORDS chunk, -1 the index chunk. */
  private corrupt(number: number, offset: number, why: string): TraceError {
    const which = number < 0 ? "index chunk" : `chunk ${number}`;
    return new TraceError(this.path, `${which} at byte ${offset} is corrupt (${why})`);
  }
}

/**
 * The records of a chunk sequence, optionally only those at or after t_from_ns. A plain
 * iterator rather than a generator: `yield*` over each chunk's array costs ~150 ns per
 * record here, as much as decoding it.
 */
class ChunkRecords implements IterableIterator<TraceRecord> {
  private records: TraceRecord[] = [];
  private i = 0;

  constructor(
    private readonly chunks: Iterator<RecordChunk>,
    private readonly t_from_ns: number | null,
  ) {}

  next(): IteratorResult<TraceRecord> {
    for (;;) {
      while (this.i < this.records.length) {
        const r = this.records[this.i++]!;
        if (this.t_from_ns === null || recordTimeNs(r) >= this.t_from_ns) return { done: false, value: r };
      }
      const chunk = this.chunks.next();
      if (chunk.done) return { done: true, value: undefined };
      this.records = chunk.value.records;
      this.i = 0;
    }
  }

  /** Stopping early (break out of for-of) also stops the chunk walk. */
  return(): IteratorResult<TraceRecord> {
    this.chunks.return?.(undefined);
    this.records = [];
    return { done: true, value: undefined };
  }

  [Symbol.iterator](): IterableIterator<TraceRecord> {
    return this;
  }
}

/** O_NONBLOCK so that a FIFO named by mistake fails the regular-file check instead of hanging the open. */
function openForReading(path: string): number {
  try {
    return openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch (err) {
    throw new TraceError(path, fsErrorText(err));
  }
}

function indexEntryFrom(e: unknown): ChunkIndexEntry | null {
  if (!Array.isArray(e) || e.length !== 5 || !e.every((v) => Number.isSafeInteger(v) && (v as number) >= 0)) return null;
  const [offset, t_min_ns, t_max_ns, record_count, first_ordinal] = e as number[];
  if (!(t_min_ns! <= t_max_ns! && record_count! >= 1 && record_count! <= CHUNK_RECORDS_MAX)) return null;
  return { offset: offset!, t_min_ns: t_min_ns!, t_max_ns: t_max_ns!, record_count: record_count!, first_ordinal: first_ordinal! };
}
