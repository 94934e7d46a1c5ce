// Streams records into a trace file in checksummed chunks. Every chunk is written with a
// synchronous write as soon as it is full (or after ~250 ms of wall time), so a run killed
// with SIGKILL leaves everything up to its last complete chunk readable.

import { closeSync, fsyncSync, openSync, writeSync } from "node:fs";
import { recordTimeNs, type RecordSink, type TraceHeader, type TraceRecord } from "../engine/trace_records.js";
import { hostNowNs } from "../engine/units.js";
import { TraceError } from "./errors.js";
import { ChunkType, encodeChunk, encodeTrailer, FILE_MAGIC, packr } from "./format.js";

export const CHUNK_RECORDS_TARGET = 4096;
export const CHUNK_BYTES_TARGET = 256 * 1024;
const FLUSH_INTERVAL_NS = 250e6;
/** Rough msgpack size of a record without its frame bytes or text. */
const RECORD_BYTES_ESTIMATE = 24;

export type IndexEntry = [offset: number, t_min_ns: number, t_max_ns: number, record_count: number, first_ordinal: number];

export class TraceWriter implements RecordSink {
  records_written = 0;
  bytes_written = 0;
  chunks_written = 0;
  private batch: TraceRecord[] = [];
  private batch_bytes = 0;
  private batch_t_min = Number.MAX_SAFE_INTEGER;
  private batch_t_max = 0;
  private readonly index: IndexEntry[] = [];
  private last_flush_ns = hostNowNs() as number;
  private fd: number | null;

  private constructor(
    readonly path: string,
    fd: number,
  ) {
    this.fd = fd;
  }

  static create(path: string, header: TraceHeader): TraceWriter {
    let fd: number;
    try {
      fd = openSync(path, "w", 0o644);
    } catch (err) {
      throw new TraceError(path, `cannot create trace: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    const writer = new TraceWriter(path, fd);
    writer.append(FILE_MAGIC);
    writer.append(encodeChunk(ChunkType.Header, packr.pack(header), 0, 0, 0));
    return writer;
  }

  write(record: TraceRecord): void {
    const t = recordTimeNs(record);
    if (!(record[0] >= 1 && record[0] <= 8 && Number.isSafeInteger(t) && t >= 0)) {
      throw new RangeError(`refusing to write a malformed record: kind ${record[0]}, t ${t}`);
    }
    this.batch.push(record);
    this.batch_bytes += RECORD_BYTES_ESTIMATE + (record[0] === 3 ? record[4].length : record[0] === 7 ? record[3].length : 0);
    if (t < this.batch_t_min) this.batch_t_min = t;
    if (t > this.batch_t_max) this.batch_t_max = t;
    if (this.batch.length >= CHUNK_RECORDS_TARGET || this.batch_bytes >= CHUNK_BYTES_TARGET) this.flush();
  }

  /** Flushes when the pending chunk has waited long enough (called from the run loop). */
  tick(): void {
    if (this.batch.length > 0 && hostNowNs() - this.last_flush_ns > FLUSH_INTERVAL_NS) this.flush();
  }

  flush(): void {
    this.last_flush_ns = hostNowNs();
    if (this.batch.length === 0) return;
    const offset = this.bytes_written;
    const chunk = encodeChunk(ChunkType.Records, packr.pack(this.batch), this.batch.length, this.batch_t_min, this.batch_t_max);
    this.append(chunk);
    this.index.push([offset, this.batch_t_min, this.batch_t_max, this.batch.length, this.records_written]);
    this.records_written += this.batch.length;
    this.chunks_written += 1;
    this.batch = [];
    this.batch_bytes = 0;
    this.batch_t_min = Number.MAX_SAFE_INTEGER;
    this.batch_t_max = 0;
  }

  /** Flushes, writes the index and trailer, and closes the file. Safe to call twice. */
  close(): void {
    if (this.fd === null) return;
    this.flush();
    const index_offset = this.bytes_written;
    this.append(encodeChunk(ChunkType.Index, packr.pack(this.index), this.index.length, 0, 0));
    this.append(encodeTrailer(index_offset));
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = null;
  }

  private append(bytes: Uint8Array): void {
    if (this.fd === null) throw new Error(`${this.path}: trace already closed`);
    let done = 0;
    while (done < bytes.length) done += writeSync(this.fd, bytes, done, bytes.length - done);
    this.bytes_written += bytes.length;
  }
}
