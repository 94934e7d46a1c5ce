// Streams records into a trace file in checksummed chunks. A chunk goes to the kernel with
// one synchronous write as soon as it is full, on flush(), or after ~250 ms of wall time, so
// a run killed with SIGKILL leaves every chunk written before the kill readable. (Only
// close() fsyncs: surviving a power cut mid-run is not promised.) A failed write (disk full)
// cuts the file back to its last whole chunk, so it reads as an incomplete trace, and every
// later call fails with that same first error instead of a misleading "already closed".

import { accessSync, closeSync, constants as fsConstants, ftruncateSync, fsyncSync, openSync, statSync, unlinkSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { RuntimeFailure, errnoText } from "../engine/errors.js";
import { RECORD_KIND_MAX, recordTimeNs, type RecordSink, type TraceHeader, type TraceRecord } from "../engine/trace_records.js";
import { hostNowNs } from "../engine/units.js";
import { TraceError } from "./errors.js";
import { FILE_MAGIC, encodeHeaderChunk, encodeIndexChunk, encodeTrailer, type IndexTuple } from "./format.js";
import { RecordChunkEncoder } from "./record_codec.js";

/** A chunk is written once it holds this many records... */
export const CHUNK_RECORDS_TARGET = 4096;
/** ...or this many payload bytes, whichever comes first. */
export const CHUNK_BYTES_TARGET = 256 * 1024;
/** maybeFlushByWallTime() writes pending records once this much wall time has passed since the last write. */
export const FLUSH_INTERVAL_NS = 250e6;

export class TraceWriter implements RecordSink {
  /** Records are encoded as they are written: byte fields may be views. */
  readonly transient_bytes = true;
  /** ...and the records themselves (add() encodes them): the engine may reuse record arrays. */
  readonly transient_records = true;
  /** Records, bytes (whole file) and RECORDS chunks handed to the kernel so far. */
  records_written = 0;
  bytes_written = 0;
  chunks_written = 0;
  private readonly encoder = new RecordChunkEncoder();
  private readonly index: IndexTuple[] = [];
  private last_flush_ns: number = hostNowNs();
  private fd: number | null;
  /** The write error that ended this writer; thrown again by every later call. */
  private failure: RuntimeFailure | null = null;

  private constructor(
    readonly path: string,
    fd: number,
  ) {
    this.fd = fd;
  }

  /** Creates (or overwrites) `path` and writes the file magic and the header chunk. */
  static create(path: string, header: TraceHeader): TraceWriter {
    let fd: number;
    try {
      fd = openSync(path, "w", 0o644);
    } catch (err) {
      throw new TraceError(path, `cannot create trace: ${createErrorText(err, path)}`);
    }
    const writer = new TraceWriter(path, fd);
    try {
      writer.append(FILE_MAGIC);
      writer.append(encodeHeaderChunk(header));
    } catch (err) {
      writer.abandon();
      // Not even a header: nothing in the file is worth keeping.
      try {
        unlinkSync(path);
      } catch {
        // already gone
      }
      throw err;
    }
    return writer;
  }

  /**
   * What create() would refuse about `path` (missing or unwritable directory, a directory in
   * its place), checked without creating anything: for runs that start VMs or namespaces
   * before they create the trace.
   */
  static checkPath(path: string): void {
    const dir = dirname(path);
    const dir_stat = statSync(dir, { throwIfNoEntry: false });
    if (dir_stat === undefined) throw new TraceError(path, `cannot create trace: ENOENT (its directory ${dir} does not exist)`);
    if (!dir_stat.isDirectory()) throw new TraceError(path, `cannot create trace: ENOTDIR (${dir} is not a directory)`);
    if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) throw new TraceError(path, "cannot create trace: EISDIR (is a directory)");
    try {
      accessSync(dir, fsConstants.W_OK);
    } catch (err) {
      throw new TraceError(path, `cannot create trace: ${errnoText(err)}`);
    }
  }

  /** Records not yet in a written chunk. */
  get records_pending(): number {
    return this.encoder.count;
  }

  get closed(): boolean {
    return this.fd === null;
  }

  /** Appends a record to the pending chunk; writes the chunk when it is full. */
  write(record: TraceRecord): void {
    const kind = record[0];
    const t = recordTimeNs(record);
    // Cheap guards only: the reader validates every field.
    if (!(kind >= 1 && kind <= RECORD_KIND_MAX && t >= 0 && Number.isSafeInteger(t))) {
      throw new RangeError(`refusing to write a malformed trace record: kind ${String(kind)}, time ${String(t)}`);
    }
    if (this.fd === null) throw this.failure ?? new Error(`${this.path}: trace writer already closed`);
    const enc = this.encoder;
    enc.add(record, t);
    if (enc.count >= CHUNK_RECORDS_TARGET || enc.record_bytes >= CHUNK_BYTES_TARGET) this.flush();
  }

  /** write() of a frame_emit record whose bytes are buf[offset, offset + length) (the engine makes no view for it). */
  writeFrameEmitIn(node: number, t_ns: number, frame_id: number, buf: Uint8Array, offset: number, length: number): void {
    if (!(t_ns >= 0 && Number.isSafeInteger(t_ns))) throw new RangeError(`refusing to write a malformed trace record: kind 3, time ${String(t_ns)}`);
    if (this.fd === null) throw this.failure ?? new Error(`${this.path}: trace writer already closed`);
    const enc = this.encoder;
    enc.addFrameEmitIn(node, t_ns, frame_id, buf, offset, length);
    if (enc.count >= CHUNK_RECORDS_TARGET || enc.record_bytes >= CHUNK_BYTES_TARGET) this.flush();
  }

  /** Writes the pending chunk (if any) with a synchronous write: once this returns, a SIGKILL cannot lose it. */
  flush(): void {
    this.last_flush_ns = hostNowNs();
    const enc = this.encoder;
    if (enc.count === 0 || this.fd === null) return;
    const offset = this.bytes_written;
    this.append(enc.finishChunk());
    this.index.push([offset, enc.t_min_ns, enc.t_max_ns, enc.count, this.records_written]);
    this.records_written += enc.count;
    this.chunks_written += 1;
    enc.reset();
  }

  /** Flushes when records have waited more than FLUSH_INTERVAL_NS of wall time; true if it wrote. */
  maybeFlushByWallTime(): boolean {
    if (this.encoder.count === 0 || hostNowNs() - this.last_flush_ns <= FLUSH_INTERVAL_NS) return false;
    this.flush();
    return true;
  }

  /** RecordSink's periodic hook (the engine calls it from its run loop). */
  tick(): void {
    this.maybeFlushByWallTime();
  }

  /** Flushes, writes the index and trailer, fsyncs and closes. Safe to call again; after a failed write it throws that failure. */
  close(): void {
    if (this.failure !== null) throw this.failure;
    if (this.fd === null) return;
    try {
      this.flush();
      const index_offset = this.bytes_written;
      this.append(encodeIndexChunk(this.index));
      this.append(encodeTrailer(index_offset));
      fsyncSync(this.fd);
    } catch (err) {
      if (err instanceof TraceError || err instanceof RuntimeFailure) throw err;
      this.failure = new RuntimeFailure(`${this.path}: cannot finish trace: ${errnoText(err)}`);
      throw this.failure;
    } finally {
      this.abandon();
    }
  }

  /** Closes the descriptor without writing anything more (the file reads as an incomplete trace). */
  private abandon(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    closeSync(fd);
  }

  private append(bytes: Uint8Array): void {
    if (this.fd === null) throw this.failure ?? new Error(`${this.path}: trace writer already closed`);
    try {
      let done = 0;
      while (done < bytes.length) done += writeSync(this.fd, bytes, done, bytes.length - done);
    } catch (err) {
      // Part of a chunk may be in the file now; anything appended after it would be misplaced.
      const kept = this.cutBackToLastChunk();
      this.abandon();
      this.failure = new RuntimeFailure(`${this.path}: cannot write trace: ${errnoText(err)}; ${kept}`);
      throw this.failure;
    }
    this.bytes_written += bytes.length;
  }

  /** Drops a partly written chunk; says what the file holds now. */
  private cutBackToLastChunk(): string {
    try {
      ftruncateSync(this.fd!, this.bytes_written);
    } catch {
      return "its last chunk may be cut short (the reader stops there)";
    }
    return `the file keeps ${this.records_written} records in ${this.chunks_written} whole chunks (an incomplete trace)`;
  }
}

/** "ENOENT (its directory does not exist)": the code for scripts, then what it means here. */
function createErrorText(err: unknown, file: string): string {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code !== "ENOENT") return errnoText(err);
  // ENOENT also comes from a directory that exists but creates no files (/proc, /sys).
  const dir = dirname(file);
  const exists = statSync(dir, { throwIfNoEntry: false })?.isDirectory() === true;
  return exists ? `ENOENT (no such file or directory: ${dir} exists but does not let files be created in it)` : `ENOENT (its directory ${dir} does not exist)`;
}
