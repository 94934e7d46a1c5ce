// The pieces under the trace format: CRC-32, the record msgpack encoder/decoder (plain
// msgpack both ways, and the decoder's inline validation agreeing with validateRecord), the
// writer's flush policy, and frame bytes staying intact while the reader moves on.

import { statSync } from "node:fs";
import path from "node:path";
import { Packr, Unpackr } from "msgpackr";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Prng } from "../engine/prng.js";
import type { TraceRecord } from "../engine/trace_records.js";
import { TraceReader } from "../recorder/reader.js";
import { encodeRecordsPayload, PayloadError, RecordChunkEncoder, RecordDecoder } from "../recorder/record_codec.js";
import { validateRecord } from "../recorder/validate.js";
import { CHUNK_BYTES_TARGET, CHUNK_RECORDS_TARGET, TraceWriter } from "../recorder/writer.js";
import { makeHeader, NODES, normalize, randomRecords, removeDir, tempDir } from "./helpers/recorder_fixtures.js";

const dir = tempDir("codec");
test.after(() => removeDir(dir));

const packr = new Packr({ useRecords: false, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: "number" });

/** Decodes a payload with the reader's decoder; the records, or the PayloadError's problem. */
function decodeWithReader(payload: Uint8Array, count: number): TraceRecord[] | string {
  const src = Buffer.from(payload);
  try {
    return new RecordDecoder(NODES).decode(src, 0, src.length, count);
  } catch (err) {
    if (err instanceof PayloadError) return err.problem;
    throw err;
  }
}

test("encoder: plain msgpack that msgpackr reads back equal, at every integer, length and count boundary", () => {
  const ints = [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 7, 2 ** 53 - 1];
  const bins = [0, 1, 255, 256, 65535, 65536].map((n) => new Uint8Array(n).map((_, i) => (i * 7) & 0xff));
  const texts = ["", "a", "x".repeat(31), "y".repeat(32), "z".repeat(255), "w".repeat(256), "v".repeat(70_000), "héllo ✓", "🚀 日本語", "\u0000nul"];
  const records: TraceRecord[] = [];
  for (const t of ints) {
    records.push([1, 3, t, t + 1 <= Number.MAX_SAFE_INTEGER ? t + 1 : t], [2, 0, t, -1], [4, 1, t, t, 2, t]);
  }
  bins.forEach((b, i) => records.push([3, i % NODES, i, i, b]));
  texts.forEach((s, i) => records.push([7, i % 2 === 0 ? -1 : 1, i, s], [6, 2, i, "crash", s]));
  records.push([5, -1, 5, 6, 0, "no_route"], [8, 2 ** 52, "interrupted"]);
  const valid = records.filter((r) => validateRecord(r, NODES) === null);
  const payload = encodeRecordsPayload(valid);
  assert.equal(normalize(unpackr.unpack(payload) as TraceRecord[]), normalize(valid), "msgpackr reads the encoder's bytes");
  assert.equal(normalize(decodeWithReader(payload, valid.length) as TraceRecord[]), normalize(valid), "the decoder reads them too");
  // and the decoder reads msgpackr's encoding of the same records (floats for large integers)
  const theirs = Buffer.from(packr.pack(valid));
  assert.equal(normalize(decodeWithReader(theirs, valid.length) as TraceRecord[]), normalize(valid), "the decoder reads msgpackr's bytes");

  for (const count of [0, 15, 16, 65535, 65536]) {
    const many: TraceRecord[] = Array.from({ length: count }, (_, i) => [8, i, "quiescent"]);
    const bytes = encodeRecordsPayload(many);
    const expected_header = count < 16 ? [0x90 | count] : count < 65536 ? [0xdc, count >> 8, count & 0xff] : [0xdd, 0, 1, 0, 0];
    assert.equal([...bytes.subarray(0, expected_header.length)], expected_header, `array header for ${count} records`);
    assert.is((unpackr.unpack(bytes) as unknown[]).length, count);
    assert.is((decodeWithReader(bytes, count) as TraceRecord[]).length, count);
  }
});

test("encoder: addFrameEmitIn (frame bytes as buffer + offset) writes exactly what add() writes", () => {
  const buf = new Uint8Array(70_000).map((_, i) => (i * 13) & 0xff);
  const cases: [number, number, number, number, number][] = [
    [0, 0, 0, 0, 0],
    [1, 2 ** 32 + 5, 7, 100, 66],
    [3, 2 ** 31, 2 ** 31, 1000, 129],
    [2, 5, 2 ** 40, 3, 65_536],
  ];
  const by_add = new RecordChunkEncoder(64);
  const by_range = new RecordChunkEncoder(64);
  for (const [node, t_ns, frame_id, offset, length] of cases) {
    by_add.add([3, node, t_ns, frame_id, buf.subarray(offset, offset + length)], t_ns);
    by_range.addFrameEmitIn(node, t_ns, frame_id, buf, offset, length);
  }
  assert.equal([...by_range.finishChunk()], [...by_add.finishChunk()]);
  assert.is(by_range.count, cases.length);
});

test("encoder: refuses fields msgpack records cannot hold, and leaves the batch as it was", () => {
  const file = path.join(dir, "refuse-fields.trace");
  const w = TraceWriter.create(file, makeHeader());
  w.write([7, 0, 1, "before"]);
  for (const bad of [[7, 0, 2, null], [7, 0, 2, { text: "x" }], [7, 0, 2, true], [3, 0, 2, 1, [1, 2]]]) {
    assert.throws(() => w.write(bad as unknown as TraceRecord), /field cannot be/);
  }
  assert.is(w.records_pending, 1);
  w.write([7, 0, 3, "after"]);
  w.close();
  const reader = TraceReader.open(file);
  assert.equal([...reader.records()], [
    [7, 0, 1, "before"],
    [7, 0, 3, "after"],
  ]);
  reader.close();
});

/** A value that breaks a record field in some way msgpack can still carry. */
function oddValue(prng: Prng): unknown {
  const values: unknown[] = [null, true, false, -1, -2, -129, -70_000, -(2 ** 40), 1.5, -0.5, 2 ** 53, 2 ** 60, NaN, Infinity, NODES, NODES + 1, 0, 7, "", "loss", "boot", "quiescent", "x", [], [1], { a: 1 }, new Uint8Array(3)];
  return values[prng.nextBelow(values.length)];
}

/** A valid record, then sometimes a field replaced, dropped or added, or the kind changed. */
function mangledRecord(prng: Prng, base: TraceRecord): unknown[] {
  const r: unknown[] = [...base];
  switch (prng.nextBelow(6)) {
    case 0:
      return r;
    case 1:
    case 2:
      r[prng.nextBelow(r.length)] = oddValue(prng);
      return r;
    case 3:
      r.splice(1 + prng.nextBelow(r.length - 1), 1);
      return r;
    case 4:
      r.push(oddValue(prng));
      return r;
    default:
      r[0] = prng.nextBelow(10);
      return r;
  }
}

test("decoder and validateRecord agree on thousands of mangled records (accept/reject and the message)", () => {
  const prng = new Prng(99);
  const bases = randomRecords(prng, 400, { big_frames: false });
  let accepted = 0;
  let rejected = 0;
  for (let i = 0; i < 6000; i++) {
    const candidate = mangledRecord(prng, bases[prng.nextBelow(bases.length)]!);
    const bytes = Buffer.from(packr.pack([candidate]));
    const oracle = validateRecord(unpackr.unpack(bytes)[0], NODES);
    const got = decodeWithReader(bytes, 1);
    const label = `candidate ${i}: ${JSON.stringify(candidate, (_, v) => (v instanceof Uint8Array ? `bytes(${v.length})` : v))}`;
    if (oracle === null) {
      assert.ok(Array.isArray(got), `${label}: the decoder rejected it: ${String(got)}`);
      assert.equal(normalize(got as TraceRecord[]), normalize([candidate as TraceRecord]), label);
      accepted++;
    } else {
      assert.is(got, oracle, label);
      rejected++;
    }
  }
  assert.ok(accepted > 800 && rejected > 2500, `both outcomes exercised (${accepted} accepted, ${rejected} rejected)`);
});

test("decoder: a payload that is not exactly the announced records is reported for the whole chunk", () => {
  const two = encodeRecordsPayload([
    [8, 1, "error"],
    [8, 2, "error"],
  ]);
  assert.is(decodeWithReader(two, 3), "payload holds 2 records, the chunk header says 3");
  assert.is(decodeWithReader(Buffer.concat([two, Buffer.from([0xc0])]), 2), "1 stray byte after the last record");
  assert.is(decodeWithReader(Buffer.from([0x82]), 1), "payload is not a list of records");
  assert.is(decodeWithReader(Buffer.alloc(0), 0), "payload is not a list of records");
  // cut inside the second record: that record is reported
  const err = (() => {
    try {
      new RecordDecoder(NODES).decode(Buffer.from(two), 0, two.length - 2, 2);
    } catch (e) {
      return e as PayloadError;
    }
    return null;
  })();
  assert.ok(err instanceof PayloadError);
  assert.is(err!.record_index, 1);
  assert.is(err!.problem, "does not decode as msgpack");
});

test("writer: a chunk per 4096 records or ~256 KiB, counters, and flushed chunks on disk before close", () => {
  const file = path.join(dir, "policy.trace");
  const w = TraceWriter.create(file, makeHeader());
  for (let i = 0; i < CHUNK_RECORDS_TARGET - 1; i++) w.write([2, i % NODES, i, -1]);
  assert.is(w.chunks_written, 0);
  assert.is(w.records_pending, CHUNK_RECORDS_TARGET - 1);
  w.write([2, 0, CHUNK_RECORDS_TARGET, -1]);
  assert.is(w.chunks_written, 1);
  assert.is(w.records_written, CHUNK_RECORDS_TARGET);
  assert.is(w.records_pending, 0);
  assert.is(statSync(file).size, w.bytes_written, "the chunk is in the file, not in a buffer");

  // big frames: chunks close on bytes, not on count
  const frame = new Uint8Array(10_000).fill(0xab);
  for (let i = 0; i < 100; i++) w.write([3, 1, 10_000 + i, i, frame]);
  w.flush();
  assert.is(statSync(file).size, w.bytes_written);
  // readable while the writer is still open: an incomplete trace holding every flushed record
  const live = TraceReader.open(file);
  const status = live.status();
  assert.equal({ complete: status.complete, truncated_at_byte: status.truncated_at_byte, records: status.records }, { complete: false, truncated_at_byte: null, records: CHUNK_RECORDS_TARGET + 100 });
  const frame_chunks = live.index().slice(1);
  live.close();
  w.close();
  assert.ok(frame_chunks.length >= 3, `${frame_chunks.length} chunks for 1 MB of frames`);
  for (const [i, e] of frame_chunks.slice(0, -1).entries()) {
    const bytes = e.record_count * (frame.length + 16);
    assert.ok(bytes >= CHUNK_BYTES_TARGET && bytes < CHUNK_BYTES_TARGET + 2 * frame.length, `frame chunk ${i}: ${e.record_count} records`);
  }
});

test("writer: maybeFlushByWallTime writes a pending chunk only after 250 ms of wall time", () => {
  const file = path.join(dir, "wall.trace");
  const w = TraceWriter.create(file, makeHeader());
  assert.is(w.maybeFlushByWallTime(), false, "nothing pending");
  w.write([7, -1, 1, "pending"]);
  assert.is(w.maybeFlushByWallTime(), false, "too early");
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
  assert.is(w.maybeFlushByWallTime(), true, "after 300 ms");
  assert.is(w.chunks_written, 1);
  assert.is(w.maybeFlushByWallTime(), false, "nothing pending again");
  w.write([7, -1, 2, "pending too"]);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
  w.tick(); // the engine's hook does the same
  assert.is(w.chunks_written, 2);
  w.close();
});

test("reader: frame bytes are plain Uint8Arrays that stay intact while later chunks are read", () => {
  const file = path.join(dir, "views.trace");
  const w = TraceWriter.create(file, makeHeader());
  const frameFor = (i: number) => new Uint8Array(100 + (i % 50)).fill(i & 0xff);
  const records: TraceRecord[] = [];
  for (let i = 0; i < 20_000; i++) {
    // chunks with frames and chunks without, so the reader both hands over and reuses its buffer
    const with_frames = Math.floor(i / 3000) % 2 === 0;
    records.push(with_frames ? [3, i % NODES, i, i, frameFor(i)] : [4, i % NODES, i, i, (i + 1) % NODES, i]);
  }
  for (const r of records) w.write(r);
  w.close();
  const reader = TraceReader.open(file);
  const kept: TraceRecord[] = [];
  for (const chunk of reader.chunks()) kept.push(...chunk.records);
  reader.close();
  assert.is(kept.length, records.length);
  for (let i = 0; i < kept.length; i++) {
    const r = kept[i]!;
    if (r[0] !== 3) continue;
    assert.is(r[4].constructor, Uint8Array, `record ${i}: a plain Uint8Array`);
    assert.equal(r[4], frameFor(i), `record ${i}: bytes intact after reading the whole file`);
  }
});

test.run();
