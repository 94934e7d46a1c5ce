// Shared fixtures for recorder tests: a valid trace header, random records of every kind,
// writing traces with many chunks, walking a file's chunk layout, and TraceError checks.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Packr } from "msgpackr";
import * as assert from "uvu/assert";
import { Prng } from "../../engine/prng.js";
import { makeRunConfig } from "../../engine/run.js";
import type { DropReason, LifecycleEvent, RunEndReason, TraceHeader, TraceRecord } from "../../engine/trace_records.js";
import { TraceError } from "../../recorder/errors.js";
import { CHUNK_HEADER_BYTES, CHUNK_MAGIC, chunkCrc, FILE_MAGIC, FORMAT_VERSION, TRAILER_BYTES, TRAILER_MAGIC } from "../../recorder/format.js";
import { TraceReader, type ChunkIndexEntry, type TraceStatus } from "../../recorder/reader.js";
import { TraceWriter } from "../../recorder/writer.js";
import { uniformTopology } from "./engine_fixtures.js";

export const NODES = 4;

// Hand-built chunks follow the layout documented in recorder/format.ts, independently of
// its helpers: u32 magic | u8 type | u8 flags | u16 reserved | u32 payload_len |
// u32 record_count | f64 t_min_ns | f64 t_max_ns | u32 checksum(bytes 0..31 + payload).
const CRC_AT = 32;
const packr = new Packr({ useRecords: false, moreTypes: false });

/** Plain msgpack of `value`, in a buffer of its own. */
export function pack(value: unknown): Buffer {
  return Buffer.from(packr.pack(value));
}

/** A chunk with a correct checksum around `payload` (whatever it contains). */
export function handChunk(type: number, payload: Uint8Array, record_count: number, t_min_ns = 0, t_max_ns = 0): Buffer {
  const chunk = Buffer.alloc(CHUNK_HEADER_BYTES + payload.length);
  chunk.writeUInt32LE(CHUNK_MAGIC, 0);
  chunk.writeUInt8(type, 4);
  chunk.writeUInt32LE(payload.length, 8);
  chunk.writeUInt32LE(record_count, 12);
  chunk.writeDoubleLE(t_min_ns, 16);
  chunk.writeDoubleLE(t_max_ns, 24);
  chunk.set(payload, CHUNK_HEADER_BYTES);
  chunk.writeUInt32LE(chunkCrc(chunk.subarray(0, CHUNK_HEADER_BYTES), payload), CRC_AT);
  return chunk;
}

export interface ParsedChunkHeader {
  type: number;
  payload_len: number;
  record_count: number;
  t_min_ns: number;
  t_max_ns: number;
}

/** The chunk header at buf[at..]; null when there are not 36 bytes or the magic is wrong. */
export function parseChunkHeader(buf: Buffer, at: number): ParsedChunkHeader | null {
  if (at + CHUNK_HEADER_BYTES > buf.length || buf.readUInt32LE(at) !== CHUNK_MAGIC) return null;
  return {
    type: buf.readUInt8(at + 4),
    payload_len: buf.readUInt32LE(at + 8),
    record_count: buf.readUInt32LE(at + 12),
    t_min_ns: buf.readDoubleLE(at + 16),
    t_max_ns: buf.readDoubleLE(at + 24),
  };
}

export function tempDir(tag: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `tapsim-rec-${tag}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export function makeHeader(overrides: Partial<TraceHeader> = {}): TraceHeader {
  return {
    format: "tapsim-trace",
    format_version: FORMAT_VERSION,
    tapsim_version: "0.0.0-test",
    created_at: "2024-01-02T03:04:05.678Z",
    config: makeRunConfig({ topology: uniformTopology(NODES, 12.5), workload: { kind: "bracha", messages_per_node: 2 }, seed: 42, until_ns: null }),
    ...overrides,
  };
}

const DROP_REASONS: DropReason[] = ["loss", "queue_full", "no_route", "node_exited"];
const LIFECYCLE: LifecycleEvent[] = ["boot", "exit", "crash"];
const END_REASONS: RunEndReason[] = ["quiescent", "duration", "interrupted", "error"];
const TEXTS = ["", "hello", "héllo wörld ✓", "🚀 launch 日本語 \u0000 nul", "line1\nline2", "x".repeat(300)];
const FRAME_SIZES = [0, 1, 14, 60, 64, 255, 256, 1514, 4000, 9000, 70_000];

function pick<T>(prng: Prng, xs: readonly T[]): T {
  return xs[prng.nextBelow(xs.length)]!;
}

function bytes(prng: Prng, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = prng.nextU32() & 0xff;
  return b;
}

/**
 * `count` records cycling through every kind (run_end last), times mostly increasing with
 * occasional steps back, node ids -1 where the format allows them, frames of many sizes.
 */
export function randomRecords(prng: Prng, count: number, options: { big_frames?: boolean } = {}): TraceRecord[] {
  const records: TraceRecord[] = [];
  let t = 1000;
  const sizes = options.big_frames === false ? FRAME_SIZES.filter((s) => s <= 1514) : FRAME_SIZES;
  for (let i = 0; i < count - 2; i++) {
    t += prng.nextBelow(5_000_000);
    // now and then a record a little in the past (the engine does not promise strict order)
    const rt = prng.nextBelow(10) === 0 ? Math.max(0, t - prng.nextBelow(3_000_000)) : t;
    const node = prng.nextBelow(NODES);
    const other = (node + 1 + prng.nextBelow(NODES - 1)) % NODES;
    switch (i % 7) {
      case 0:
        records.push([1, node, rt, rt + 1 + prng.nextBelow(1_000_000)]);
        break;
      case 1:
        records.push([2, node, rt, prng.nextBelow(3) === 0 ? -1 : rt + prng.nextBelow(1e9)]);
        break;
      case 2: {
        const size = prng.nextBelow(4) === 0 ? pick(prng, sizes) : 42 + prng.nextBelow(200);
        records.push([3, node, rt, i, bytes(prng, size)]);
        break;
      }
      case 3:
        records.push([4, node, rt, i, other, Math.max(0, rt - prng.nextBelow(100_000))]);
        break;
      case 4:
        records.push([5, prng.nextBelow(4) === 0 ? -1 : node, rt, i, other, pick(prng, DROP_REASONS)]);
        break;
      case 5:
        records.push([6, node, rt, pick(prng, LIFECYCLE), pick(prng, TEXTS)]);
        break;
      default:
        records.push([7, prng.nextBelow(3) === 0 ? -1 : node, rt, pick(prng, TEXTS) + ` #${i}`]);
    }
  }
  // a few extreme times
  records.push([7, -1, 2 ** 52, "far future ∞"]);
  records.push([8, 2 ** 52 + 1, pick(prng, END_REASONS)]);
  return records;
}

/** Writes `records` through TraceWriter, flushing by hand after about every `flush_every` records too. */
export function writeTrace(file: string, header: TraceHeader, records: readonly TraceRecord[], prng: Prng | null = null, flush_every = 0): TraceWriter {
  const writer = TraceWriter.create(file, header);
  for (const r of records) {
    writer.write(r);
    if (prng !== null && flush_every > 0 && prng.nextBelow(flush_every) === 0) writer.flush();
  }
  writer.close();
  return writer;
}

/** Buffers (what the decoder returns for bin) as plain Uint8Array copies, so assert.equal compares bytes. */
export function normalize(records: readonly TraceRecord[]): TraceRecord[] {
  return records.map((r) => (r[0] === 3 ? [3, r[1], r[2], r[3], new Uint8Array(r[4])] : [...r]) as TraceRecord);
}

export interface ReadResult {
  header: TraceHeader;
  records: TraceRecord[];
  status: TraceStatus;
  index: ChunkIndexEntry[];
}

export function readAll(file: string): ReadResult {
  const reader = TraceReader.open(file);
  try {
    const records = normalize([...reader.records()]);
    return { header: reader.header, records, status: reader.status(), index: reader.index() };
  } finally {
    reader.close();
  }
}

export interface ChunkSpan {
  type: number;
  offset: number;
  end: number;
  record_count: number;
}

/** Walks a well-formed file's chunks from the header on (stops at the trailer or anything odd). */
export function chunkLayout(buf: Buffer): { chunks: ChunkSpan[]; trailer_at: number | null } {
  const chunks: ChunkSpan[] = [];
  let offset = FILE_MAGIC.length;
  while (offset + CHUNK_HEADER_BYTES <= buf.length) {
    const h = parseChunkHeader(buf, offset);
    if (h === null) break;
    const end = offset + CHUNK_HEADER_BYTES + h.payload_len;
    if (end > buf.length) break;
    chunks.push({ type: h.type, offset, end, record_count: h.record_count });
    offset = end;
  }
  const trailer_at = buf.length - offset === TRAILER_BYTES && buf.subarray(offset, offset + 8).equals(TRAILER_MAGIC) ? offset : null;
  return { chunks, trailer_at };
}

/**
 * Rewrites the CRC of every chunk reachable by walking chunk headers from the start, so a
 * mutated payload passes the checksum and reaches the decoder and the validator.
 */
export function recomputeCrcs(buf: Buffer): void {
  let offset = FILE_MAGIC.length;
  while (offset + CHUNK_HEADER_BYTES <= buf.length) {
    const h = parseChunkHeader(buf, offset);
    if (h === null) return;
    const end = offset + CHUNK_HEADER_BYTES + h.payload_len;
    if (end > buf.length) return;
    buf.writeUInt32LE(chunkCrc(buf.subarray(offset, offset + CHUNK_HEADER_BYTES), buf.subarray(offset + CHUNK_HEADER_BYTES, end)), offset + CRC_AT);
    offset = end;
  }
}

/** Asserts `err` is a TraceError with a one-line message that starts with `file: `. */
export function assertTraceError(err: unknown, file: string, context = ""): asserts err is TraceError {
  if (!(err instanceof TraceError)) {
    const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
    assert.unreachable(`${context}expected a TraceError, got: ${detail}`);
  }
  const msg = (err as TraceError).message;
  assert.ok(msg.startsWith(`${file}: `), `${context}message does not start with the path: ${JSON.stringify(msg)}`);
  assert.not.match(msg, /[\r\n]/, `${context}message is not one line: ${JSON.stringify(msg)}`);
}

/** Runs `fn` and returns the TraceError it throws (checked as above); fails when it does not throw. */
export function traceErrorOf(fn: () => unknown, file: string, context = ""): TraceError {
  try {
    const opened = fn();
    if (opened instanceof TraceReader) opened.close();
  } catch (err) {
    assertTraceError(err, file, context);
    return err;
  }
  assert.unreachable(`${context}expected a TraceError, nothing was thrown`);
  throw new Error("unreachable");
}

export function copyWith(src: string, dst: string, edit: (buf: Buffer) => Buffer | void): string {
  const buf = readFileSync(src);
  const out = edit(buf) ?? buf;
  writeFileSync(dst, out);
  return dst;
}

/**
 * Copies the trace at `src` to `dst` through TraceReader and TraceWriter (so every checksum is
 * right), letting `edit_header` and `edit_records` change what goes in: traces whose content,
 * not bytes, is wrong.
 */
export function rewriteTrace(src: string, dst: string, edit_header: ((h: TraceHeader) => void) | null, edit_records: ((records: TraceRecord[]) => void) | null = null): string {
  const reader = TraceReader.open(src);
  let header: TraceHeader;
  let records: TraceRecord[];
  try {
    header = structuredClone(reader.header);
    records = normalize([...reader.records()]);
  } finally {
    reader.close();
  }
  edit_header?.(header);
  edit_records?.(records);
  const writer = TraceWriter.create(dst, header);
  for (const r of records) writer.write(r);
  writer.close();
  return dst;
}
