// Trace file format: round trip through TraceWriter/TraceReader, the index, recordsFrom,
// truncation at every cut point (a killed run), and the one-line errors for damaged files.

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Prng } from "../engine/prng.js";
import { recordTimeNs, type TraceRecord } from "../engine/trace_records.js";
import { TraceError } from "../recorder/errors.js";
import { CHUNK_HEADER_BYTES, CHUNK_MAGIC, ChunkType, encodeTrailer, FILE_MAGIC, TRAILER_BYTES } from "../recorder/format.js";
import { TraceReader } from "../recorder/reader.js";
import { TraceWriter } from "../recorder/writer.js";
import {
  assertTraceError,
  chunkLayout,
  copyWith,
  handChunk,
  makeHeader,
  normalize,
  pack,
  randomRecords,
  readAll,
  recomputeCrcs,
  removeDir,
  tempDir,
  traceErrorOf,
  writeTrace,
} from "./helpers/recorder_fixtures.js";

const dir = tempDir("format");
test.after(() => removeDir(dir));

function withReader<T>(file: string, fn: (r: TraceReader) => T): T {
  const reader = TraceReader.open(file);
  try {
    return fn(reader);
  } finally {
    reader.close();
  }
}

/** Sample times: before everything, exact record times, between chunks, after everything. */
function sampleTimes(records: readonly TraceRecord[], prng: Prng): number[] {
  const times = records.map(recordTimeNs);
  const ts = [0, 1, Math.min(...times), Math.max(...times), Math.max(...times) + 1, 2 ** 53 - 1];
  for (let i = 0; i < 12; i++) ts.push(times[prng.nextBelow(times.length)]!);
  for (let i = 0; i < 6; i++) ts.push(times[prng.nextBelow(times.length)]! + 1);
  return ts;
}

function checkRecordsFrom(file: string, records: readonly TraceRecord[], times: number[], label: string): void {
  const expected = normalize(records);
  withReader(file, (reader) => {
    for (const t of times) {
      const got = normalize([...reader.recordsFrom(t)]);
      const want = expected.filter((r) => recordTimeNs(r) >= t);
      assert.equal(got, want, `${label}: recordsFrom(${t})`);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// 1. Round trip

test("round trip: thousands of records of every kind over many chunks read back equal, with a consistent index", () => {
  const prng = new Prng(20240601);
  const header = makeHeader();
  const records = randomRecords(prng, 6000);
  const kinds = new Set(records.map((r) => r[0]));
  assert.equal([...kinds].sort(), [1, 2, 3, 4, 5, 6, 7, 8], "fixture covers every kind");
  const file = path.join(dir, "roundtrip.trace");
  const writer = writeTrace(file, header, records, prng, 250);
  assert.is(writer.records_written, records.length);
  assert.ok(writer.chunks_written >= 15, `many chunks (${writer.chunks_written})`);

  const got = readAll(file);
  assert.equal(got.header, header);
  assert.is(got.records.length, records.length);
  assert.equal(got.records, normalize(records));
  assert.equal(got.status, { complete: true, truncated_at_byte: null, chunks: writer.chunks_written, records: records.length });

  // file layout: magic, header chunk, records chunks, index chunk, trailer
  const buf = readFileSync(file);
  assert.ok(buf.subarray(0, 8).equals(FILE_MAGIC));
  assert.is(buf.length, writer.bytes_written);
  const layout = chunkLayout(buf);
  assert.is(layout.chunks[0]!.type, ChunkType.Header);
  assert.is(layout.chunks.at(-1)!.type, ChunkType.Index);
  const record_chunks = layout.chunks.filter((c) => c.type === ChunkType.Records);
  assert.is(record_chunks.length, writer.chunks_written);
  assert.is(layout.trailer_at, layout.chunks.at(-1)!.end);
  assert.is(buf.readDoubleLE(buf.length - 8), layout.chunks.at(-1)!.offset, "trailer points at the index chunk");

  // index: offsets increasing and matching the chunks, first_ordinal cumulative, time bounds exact
  let ordinal = 0;
  got.index.forEach((e, i) => {
    assert.is(e.offset, record_chunks[i]!.offset, `index entry ${i} offset`);
    if (i > 0) assert.ok(e.offset > got.index[i - 1]!.offset);
    assert.is(e.first_ordinal, ordinal, `index entry ${i} first_ordinal`);
    assert.is(e.record_count, record_chunks[i]!.record_count);
    assert.ok(e.record_count > 0);
    const times = records.slice(e.first_ordinal, e.first_ordinal + e.record_count).map(recordTimeNs);
    assert.is(e.t_min_ns, Math.min(...times), `index entry ${i} t_min`);
    assert.is(e.t_max_ns, Math.max(...times), `index entry ${i} t_max`);
    ordinal += e.record_count;
  });
  assert.is(ordinal, records.length);
  assert.is(got.index[0]!.offset, layout.chunks[0]!.end, "first records chunk follows the header chunk");

  // chunks() yields the same partition
  withReader(file, (reader) => {
    let i = 0;
    for (const c of reader.chunks()) {
      assert.is(c.index, i);
      assert.is(c.records.length, c.record_count);
      assert.equal(normalize(c.records), normalize(records.slice(c.first_ordinal, c.first_ordinal + c.record_count)));
      i++;
    }
    assert.is(i, writer.chunks_written);
    // from a later chunk on
    const from = [...reader.chunks(3)].map((c) => c.index);
    assert.equal(from, Array.from({ length: writer.chunks_written - 3 }, (_, k) => k + 3));
  });

  const times = sampleTimes(records, prng);
  checkRecordsFrom(file, records, times, "closed file");

  // the same file cut right after its last records chunk (index and trailer never written)
  const cut = path.join(dir, "roundtrip-cut.trace");
  copyWith(file, cut, (b) => b.subarray(0, record_chunks.at(-1)!.end));
  const cut_read = readAll(cut);
  assert.equal(cut_read.header, header);
  assert.equal(cut_read.status, { complete: false, truncated_at_byte: null, chunks: writer.chunks_written, records: records.length });
  assert.equal(cut_read.index, got.index, "scanned index equals the stored one");
  assert.equal(cut_read.records, normalize(records));
  checkRecordsFrom(cut, records, times, "file without index");

  // index chunk written but not the trailer: still incomplete, still everything readable
  const no_trailer = path.join(dir, "roundtrip-no-trailer.trace");
  copyWith(file, no_trailer, (b) => b.subarray(0, b.length - TRAILER_BYTES));
  const nt = readAll(no_trailer);
  assert.equal(nt.status, { complete: false, truncated_at_byte: null, chunks: writer.chunks_written, records: records.length });
  assert.equal(nt.records, normalize(records));
});

test("round trip: an empty run, a one-record run, and a close() called twice", () => {
  const header = makeHeader();
  const empty = path.join(dir, "empty-run.trace");
  const w = TraceWriter.create(empty, header);
  w.close();
  w.close();
  const got = readAll(empty);
  assert.equal(got.header, header);
  assert.equal(got.records, []);
  assert.equal(got.status, { complete: true, truncated_at_byte: null, chunks: 0, records: 0 });
  assert.equal(withReader(empty, (r) => [...r.recordsFrom(0)]), []);

  const one = path.join(dir, "one.trace");
  writeTrace(one, header, [[8, 0, "quiescent"]]);
  assert.equal(readAll(one).records, [[8, 0, "quiescent"]]);
  assert.equal(withReader(one, (r) => [...r.recordsFrom(1)]), []);
  assert.equal(withReader(one, (r) => [...r.recordsFrom(0)]), [[8, 0, "quiescent"]]);
});

test("writer: refuses malformed records, writes nothing after close, reports an uncreatable path", () => {
  const file = path.join(dir, "refuse.trace");
  const w = TraceWriter.create(file, makeHeader());
  assert.throws(() => w.write([14, 1, 2] as unknown as TraceRecord), /malformed/);
  assert.throws(() => w.write([7, 0, -5, "neg"]), /malformed/);
  assert.throws(() => w.write([7, 0, 1.5, "frac"]), /malformed/);
  w.write([7, 0, 5, "ok"]);
  // Format 2's kinds (a VM's console output and management frames) are records like the others.
  const format2: TraceRecord[] = [[9, 0, 6, "console\r\n"], [10, 1, 7, new Uint8Array([1, 2])], [11, 1, 8, new Uint8Array([3])]];
  for (const r of format2) w.write(r);
  w.close();
  assert.throws(() => {
    w.write([7, 0, 6, "late"]);
    w.flush();
  }, /already closed/);
  assert.equal(
    readAll(file).records.map((r) => r.map((f) => (f instanceof Uint8Array ? Array.from(f) : f))),
    [[7, 0, 5, "ok"], [9, 0, 6, "console\r\n"], [10, 1, 7, [1, 2]], [11, 1, 8, [3]]],
  );

  const bad = path.join(dir, "no-such-dir", "x.trace");
  const err = traceErrorOf(() => TraceWriter.create(bad, makeHeader()), bad);
  assert.match(err.message, /cannot create trace/);
  assert.match(err.message, /no such file|ENOENT/);
});

// ---------------------------------------------------------------------------------------------
// 2. Truncation (a run killed at any byte)

test("truncation at every cut point: 'no complete header chunk' inside the header, else exactly the complete chunks", () => {
  const prng = new Prng(77);
  const records = randomRecords(prng, 1200, { big_frames: false });
  const full = path.join(dir, "trunc-full.trace");
  const writer = writeTrace(full, makeHeader(), records, prng, 60);
  assert.ok(writer.chunks_written >= 10);
  const buf = readFileSync(full);
  const layout = chunkLayout(buf);
  const header_end = layout.chunks[0]!.end;
  const index = readAll(full).index;
  const record_chunks = layout.chunks.filter((c) => c.type === ChunkType.Records);
  const index_chunk = layout.chunks.at(-1)!;
  assert.is(index_chunk.type, ChunkType.Index);
  const expected_all = normalize(records);

  const cuts = new Set<number>();
  // every byte through the magic, the header chunk (it holds the whole config) and 320 more
  for (let c = 0; c < Math.min(buf.length, header_end + 320); c++) cuts.add(c);
  for (let c = Math.max(0, buf.length - 320); c < buf.length; c++) cuts.add(c);
  for (let c = 0; c < buf.length; c += 97) cuts.add(c);
  for (const ch of layout.chunks) for (const d of [-1, 0, 1, CHUNK_HEADER_BYTES - 1, CHUNK_HEADER_BYTES, CHUNK_HEADER_BYTES + 1]) cuts.add(ch.offset + d);

  const file = path.join(dir, "trunc.trace");
  let header_errors = 0;
  let reads = 0;
  for (const c of [...cuts].filter((c) => c >= 0 && c < buf.length).sort((a, b) => a - b)) {
    writeFileSync(file, buf.subarray(0, c));
    const label = `cut at byte ${c} of ${buf.length}: `;
    if (c === 0) {
      assert.match(traceErrorOf(() => TraceReader.open(file), file, label).message, /empty file, not a tapsim trace$/);
      continue;
    }
    if (c < header_end) {
      const err = traceErrorOf(() => TraceReader.open(file), file, label);
      assert.is(err.message, `${file}: no complete header chunk (file truncated at byte ${c})`, label);
      header_errors++;
      continue;
    }
    let got;
    try {
      got = readAll(file);
    } catch (err) {
      assertTraceError(err, file, label);
      assert.unreachable(`${label}unexpected error ${(err as Error).message}`);
      return;
    }
    const complete = index.filter((e, i) => record_chunks[i]!.end <= c);
    const n = complete.reduce((s, e) => s + e.record_count, 0);
    // an unfinished chunk is reported where it starts; a cut inside the trailer where the trailer starts
    const inside = layout.chunks.find((ch) => ch.offset < c && c < ch.end)?.offset ?? (c > index_chunk.end ? index_chunk.end : null);
    assert.is(got.records.length, n, `${label}record count`);
    assert.equal(got.records, expected_all.slice(0, n), `${label}records`);
    assert.equal(got.status, { complete: false, truncated_at_byte: inside, chunks: complete.length, records: n }, `${label}status`);
    assert.equal(got.index, complete, `${label}index`);
    reads++;
  }
  assert.is(header_errors, header_end - 1);
  assert.ok(reads > 500, `enough cut points read (${reads})`);
});

// ---------------------------------------------------------------------------------------------
// 3. Corruption

function smallTrace(name: string, seed: number): { file: string; records: TraceRecord[]; buf: Buffer; noindex: string } {
  const prng = new Prng(seed);
  const records = randomRecords(prng, 800, { big_frames: false });
  const file = path.join(dir, `${name}.trace`);
  writeTrace(file, makeHeader(), records, prng, 80);
  const buf = readFileSync(file);
  const last_records = chunkLayout(buf).chunks.filter((c) => c.type === ChunkType.Records).at(-1)!;
  const noindex = copyWith(file, path.join(dir, `${name}-noindex.trace`), (b) => b.subarray(0, last_records.end));
  return { file, records, buf, noindex };
}

/** Reads every record; returns how many came out before the TraceError (which it returns). */
function readUntilError(file: string, label: string): { before: number; err: TraceError } {
  let before = 0;
  try {
    const reader = TraceReader.open(file);
    try {
      for (const _ of reader.records()) before++;
      reader.status();
    } finally {
      reader.close();
    }
  } catch (err) {
    assertTraceError(err, file, label);
    return { before, err };
  }
  assert.unreachable(`${label}expected a TraceError, the file read fine`);
  throw new Error("unreachable");
}

test("corruption: a flipped payload byte in a records chunk is a checksum mismatch naming the chunk and its byte offset", () => {
  const t = smallTrace("flip", 5);
  const layout = chunkLayout(t.buf);
  const record_chunks = layout.chunks.filter((c) => c.type === ChunkType.Records);
  assert.ok(record_chunks.length >= 5);
  const index = readAll(t.file).index;
  for (const k of [0, 2, record_chunks.length - 1]) {
    const ch = record_chunks[k]!;
    for (const at of [ch.offset + CHUNK_HEADER_BYTES, Math.floor((ch.offset + CHUNK_HEADER_BYTES + ch.end) / 2), ch.end - 1]) {
      for (const src of [t.file, t.noindex]) {
        const bad = copyWith(src, path.join(dir, "flip-bad.trace"), (b) => {
          b[at] = b[at]! ^ 0x01;
        });
        const label = `chunk ${k + 1}, byte ${at}, ${src === t.file ? "complete" : "no index"}: `;
        const { before, err } = readUntilError(bad, label);
        assert.is(err.message, `${bad}: chunk ${k + 1} at byte ${ch.offset} is corrupt (checksum mismatch)`, label);
        assert.is(before, index[k]!.first_ordinal, `${label}records of earlier chunks still read`);
      }
    }
  }
  // header fields other than the magic are checked too (t_max_ns here): by the CRC, the index, or the time range
  const ch = record_chunks[1]!;
  for (const src of [t.file, t.noindex]) {
    const bad = copyWith(src, path.join(dir, "flip-tmax.trace"), (b) => {
      b[ch.offset + 30] = b[ch.offset + 30]! ^ 0x01;
    });
    const { before, err } = readUntilError(bad, "t_max: ");
    assert.match(err.message, new RegExp(`: chunk 2 at byte ${ch.offset} is corrupt \\(`));
    assert.is(before, index[1]!.first_ordinal);
  }
  // a flip in the header chunk fails the open
  const bad_header = copyWith(t.file, path.join(dir, "flip-header.trace"), (b) => {
    b[60] = b[60]! ^ 0x10;
  });
  assert.is(traceErrorOf(() => TraceReader.open(bad_header), bad_header).message, `${bad_header}: chunk 0 at byte 8 is corrupt (checksum mismatch)`);
  // a flip in the index chunk fails the open
  const ix = layout.chunks.at(-1)!;
  const bad_index = copyWith(t.file, path.join(dir, "flip-index.trace"), (b) => {
    b[ix.offset + CHUNK_HEADER_BYTES + 2] = b[ix.offset + CHUNK_HEADER_BYTES + 2]! ^ 0x04;
  });
  assert.match(traceErrorOf(() => TraceReader.open(bad_index), bad_index).message, new RegExp(`index chunk at byte ${ix.offset} is corrupt \\(checksum mismatch\\)$`));
});

test("corruption: a damaged chunk magic is 'bad chunk magic' at that chunk's byte offset", () => {
  const t = smallTrace("magic", 6);
  const chunks = chunkLayout(t.buf).chunks.filter((c) => c.type === ChunkType.Records);
  for (const k of [1, 3, chunks.length - 1]) {
    const ch = chunks[k]!;
    for (const src of [t.file, t.noindex]) {
      const bad = copyWith(src, path.join(dir, "magic-bad.trace"), (b) => {
        b[ch.offset + 1] = b[ch.offset + 1]! ^ 0xff;
      });
      const label = `chunk ${k + 1} magic, ${src === t.file ? "complete" : "no index"}: `;
      const { err } = readUntilError(bad, label);
      assert.match(err.message, /bad chunk magic/, label + err.message);
      assert.match(err.message, new RegExp(`chunk ${k + 1} at byte ${ch.offset} is corrupt`), label + err.message);
    }
  }
  // the magic of the header chunk
  const bad = copyWith(t.file, path.join(dir, "magic-header.trace"), (b) => {
    b.writeUInt32LE(CHUNK_MAGIC ^ 1, 8);
  });
  assert.is(traceErrorOf(() => TraceReader.open(bad), bad).message, `${bad}: chunk 0 at byte 8 is corrupt (bad chunk magic)`);
});

test("corruption: trailer, index and chunk lengths", () => {
  const t = smallTrace("trailer", 8);
  const layout = chunkLayout(t.buf);
  // trailer offset out of range
  const bad_offset = copyWith(t.file, path.join(dir, "trailer-offset.trace"), (b) => {
    b.writeDoubleLE(1e15, b.length - 8);
  });
  assert.match(traceErrorOf(() => TraceReader.open(bad_offset), bad_offset).message, /trailer at byte \d+ is corrupt \(index offset 1000000000000000 (is )?out of range\)$/);
  const frac_offset = copyWith(t.file, path.join(dir, "trailer-frac.trace"), (b) => {
    b.writeDoubleLE(100.5, b.length - 8);
  });
  assert.match(traceErrorOf(() => TraceReader.open(frac_offset), frac_offset).message, /trailer at byte \d+ is corrupt/);
  // trailer pointing at a records chunk
  const records_offset = layout.chunks[1]!.offset;
  const wrong_target = copyWith(t.file, path.join(dir, "trailer-target.trace"), (b) => {
    b.writeDoubleLE(records_offset, b.length - 8);
  });
  assert.match(traceErrorOf(() => TraceReader.open(wrong_target), wrong_target).message, new RegExp(`index chunk at byte ${records_offset} is corrupt`));
  // trailer magic damaged: the file reads as one that never got its trailer
  const bad_magic = copyWith(t.file, path.join(dir, "trailer-magic.trace"), (b) => {
    b[b.length - 16] = 0x21;
  });
  const r = readAll(bad_magic);
  assert.is(r.status.complete, false);
  assert.equal(r.records, normalize(t.records));
  // an index that disagrees with the chunks (CRC recomputed so only the content is wrong)
  const ix = layout.chunks.at(-1)!;
  const entries = readAll(t.file).index.map((e) => [e.offset, e.t_min_ns, e.t_max_ns, e.record_count, e.first_ordinal]);
  entries[2]![4] = 12345;
  const index_chunk = handChunk(ChunkType.Index, pack(entries), entries.length, 0, 0);
  const bad_index = path.join(dir, "index-content.trace");
  writeFileSync(bad_index, Buffer.concat([t.buf.subarray(0, ix.offset), index_chunk, encodeTrailer(ix.offset)]));
  assert.match(traceErrorOf(() => TraceReader.open(bad_index), bad_index).message, new RegExp(`index (chunk at byte ${ix.offset} is corrupt \\(entry 2 is malformed\\)|entry 2 at byte ${ix.offset} is malformed)$`));
  // a chunk claiming a payload beyond the bound (CRC recomputed)
  const ch = layout.chunks[2]!;
  const huge = copyWith(t.noindex, path.join(dir, "huge-len.trace"), (b) => {
    b.writeUInt32LE(0xfffffff0, ch.offset + 8);
    recomputeCrcs(b);
  });
  assert.match(readUntilError(huge, "huge: ").err.message, new RegExp(`chunk 2 at byte ${ch.offset} is corrupt \\(length out of range\\)$`));
  const many = copyWith(t.noindex, path.join(dir, "many-records.trace"), (b) => {
    b.writeUInt32LE(0xfffffff0, ch.offset + 12);
  });
  assert.match(readUntilError(many, "many: ").err.message, /length out of range/);
  // an unknown chunk type among the records
  const odd_type = copyWith(t.noindex, path.join(dir, "odd-type.trace"), (b) => {
    b[ch.offset + 4] = 9;
    recomputeCrcs(b);
  });
  assert.match(readUntilError(odd_type, "type: ").err.message, new RegExp(`chunk 2 at byte ${ch.offset} is corrupt \\(unknown chunk type 9\\)$`));
});

/** FILE_MAGIC + a header chunk with `header` as its payload (any value) + the given chunks. */
function handFile(name: string, header: unknown, ...chunks: Buffer[]): string {
  const file = path.join(dir, name);
  writeFileSync(file, Buffer.concat([FILE_MAGIC, handChunk(ChunkType.Header, pack(header), 0, 0, 0), ...chunks]));
  return file;
}

test("header problems: wrong format version, no format tag, malformed config, wrong first chunk, undecodable", () => {
  const v99 = handFile("v99.trace", { ...makeHeader(), format_version: 99 });
  assert.is(traceErrorOf(() => TraceReader.open(v99), v99).message, `${v99}: trace format version 99 is not supported (this tapsim reads versions 1 to 3)`);
  const vtext = handFile("vtext.trace", { ...makeHeader(), format_version: "1\nsecond line" });
  assert.match(traceErrorOf(() => TraceReader.open(vtext), vtext).message, /format version .* is not supported/);
  const untagged = handFile("untagged.trace", { ...makeHeader(), format: "something-else" });
  assert.is(traceErrorOf(() => TraceReader.open(untagged), untagged).message, `${untagged}: not a tapsim trace (header has no tapsim-trace format tag)`);
  const not_object = handFile("not-object.trace", [1, 2, 3]);
  assert.match(traceErrorOf(() => TraceReader.open(not_object), not_object).message, /header has no tapsim-trace format tag/);
  const h = makeHeader();
  const no_nodes = handFile("no-nodes.trace", { ...h, config: { ...h.config, nodes: [] } });
  assert.is(traceErrorOf(() => TraceReader.open(no_nodes), no_nodes).message, `${no_nodes}: header is malformed: config.nodes must be a non-empty list`);
  const bad_seed = handFile("bad-seed.trace", { ...h, config: { ...h.config, seed: -3 } });
  assert.match(traceErrorOf(() => TraceReader.open(bad_seed), bad_seed).message, /header is malformed: config\.seed/);
  const first_records = path.join(dir, "first-records.trace");
  writeFileSync(first_records, Buffer.concat([FILE_MAGIC, handChunk(ChunkType.Records, pack([[8, 0, "quiescent"]]), 1, 0, 0)]));
  assert.match(traceErrorOf(() => TraceReader.open(first_records), first_records).message, /(chunk 0 at byte 8 is corrupt \(expected the header chunk, found chunk type 2\)|first chunk has type 2, expected a header)$/);
  const undecodable = path.join(dir, "undecodable.trace");
  writeFileSync(undecodable, Buffer.concat([FILE_MAGIC, handChunk(ChunkType.Header, Buffer.from([0x82, 0xa1, 0x61]), 0, 0, 0)]));
  assert.match(traceErrorOf(() => TraceReader.open(undecodable), undecodable).message, /: header chunk does not decode/);
});

test("non-trace inputs: empty file, text, random bytes, a prefix of the magic, a directory, a missing path", () => {
  const cases: [string, Buffer | null, RegExp][] = [
    ["empty.bin", Buffer.alloc(0), /: empty file, not a tapsim trace$/],
    ["text.txt", Buffer.from("hello, this is\njust a text file\n"), /: not a tapsim trace \(bad magic\)$/],
    ["tiny.txt", Buffer.from("hi"), /: not a tapsim trace \(bad magic\)$/],
    ["prefix.bin", Buffer.from("TAPS"), /: no complete header chunk \(file truncated at byte 4\)$/],
    ["magic-only.bin", Buffer.from(FILE_MAGIC), /: no complete header chunk \(file truncated at byte 8\)$/],
  ];
  const prng = new Prng(100);
  const random = Buffer.alloc(100);
  for (let i = 0; i < random.length; i++) random[i] = prng.nextU32() & 0xff;
  cases.push(["random.bin", random, /: not a tapsim trace \(bad magic\)$/]);
  for (const [name, content, pattern] of cases) {
    const file = path.join(dir, name);
    writeFileSync(file, content!);
    const err = traceErrorOf(() => TraceReader.open(file), file, `${name}: `);
    assert.match(err.message, pattern, name);
  }
  const sub = path.join(dir, "a-directory");
  mkdirSync(sub, { recursive: true });
  assert.match(traceErrorOf(() => TraceReader.open(sub), sub).message, /^[^:]*: is a directory/);
  const missing = path.join(dir, "does-not-exist.trace");
  assert.is(traceErrorOf(() => TraceReader.open(missing), missing).message, `${missing}: no such file`);
});

// ---------------------------------------------------------------------------------------------
// 4. Records that pass the CRC but are not records

/** A RECORDS chunk around `records` (any values), its time range taken from the records' time fields. */
function recordsChunk(records: unknown[], count = records.length): Buffer {
  const times = (Array.isArray(records) ? records : [])
    .map((r) => (Array.isArray(r) ? (r[0] === 8 ? r[1] : r[2]) : undefined))
    .filter((t): t is number => Number.isSafeInteger(t) && (t as number) >= 0);
  return handChunk(ChunkType.Records, pack(records), count, times.length ? Math.min(...times) : 0, times.length ? Math.max(...times) : 0);
}

/**
 * A malformed-record message: "record N (chunk C, byte B) is malformed: ..." or "record N of
 * chunk C (byte B) is malformed: ...", N being the record's ordinal in the trace (or, also
 * accepted, its position in the chunk: `in_chunk`).
 */
function malformed(ordinal: number, chunk: number, problem: string, in_chunk = ordinal): RegExp {
  return new RegExp(`: record (${ordinal}|${in_chunk}) (\\(chunk ${chunk}, byte \\d+\\)|of chunk ${chunk} \\(byte \\d+\\)) is malformed: ${problem}`);
}

const esc = (text: string) => text.replace(/[[\]()]/g, "\\$&");

test("malformed records with a correct CRC: shape, unknown kind, count, undecodable payload", () => {
  const h = makeHeader();
  const good: TraceRecord[] = [
    [7, -1, 1, "start"],
    [1, 0, 1, 5],
  ];
  const cases: [string, Buffer[], RegExp][] = [
    ["frame-emit-string.trace", [recordsChunk([[3, 0, 10, 1, "not bytes"]])], malformed(0, 1, esc("expected frame_emit [3, node, t_ns, frame_id, bytes]") + "$")],
    ["second-chunk.trace", [recordsChunk(good), recordsChunk([[4, 1, 10, 1, 0, 5], [4, 1, 10, 1, -1, 5]])], malformed(3, 2, esc("expected frame_deliver [4, to, t_ns, frame_id, from, sent_ns]") + "$", 1)],
    ["unknown-kind.trace", [recordsChunk([[42, 1, 2]])], malformed(0, 1, "unknown record kind 42$")],
    ["string-kind.trace", [recordsChunk([["mark", 1, 2]])], malformed(0, 1, "unknown record kind ")],
    ["not-array.trace", [recordsChunk(["x"])], malformed(0, 1, "not a record array$")],
    ["empty-record.trace", [recordsChunk([[]])], malformed(0, 1, "not a record array$")],
    ["grant-backwards.trace", [recordsChunk([[1, 0, 10, 10]])], malformed(0, 1, "expected slice_grant")],
    ["bad-reason.trace", [recordsChunk([[8, 10, "bored"]])], malformed(0, 1, esc("expected run_end [8, t_ns, reason] or [8, t_ns, reason, detail]") + "$")],
    ["negative-node.trace", [recordsChunk([[6, -1, 10, "boot", ""]])], malformed(0, 1, "expected lifecycle")],
    ["node-out-of-range.trace", [recordsChunk([[7, 4, 10, "x"]])], malformed(0, 1, "node 4 is out of range")],
    ["extra-field.trace", [recordsChunk([[7, 0, 10, "text", 1]])], malformed(0, 1, esc("expected mark [7, node, t_ns, text]") + "$")],
    ["float-time.trace", [recordsChunk([[2, 0, 10.5, -1]])], malformed(0, 1, "expected slice_end")],
    ["count.trace", [recordsChunk(good, 3)], /: chunk 1 at byte \d+ is corrupt \(payload (holds 2 records, the chunk header says 3|is not 3 records)\)$/],
    ["not-list.trace", [recordsChunk({ a: 1 } as unknown as unknown[], 1)], /: chunk 1 at byte \d+ is corrupt \(payload is not /],
    ["undecodable.trace", [handChunk(ChunkType.Records, Buffer.from([0x92, 0x93, 0x08, 0x01]), 2, 0, 0)], /(: chunk 1 at byte \d+ is corrupt \(payload does not decode\)|malformed: does not decode as msgpack)$/],
    ["trailing-bytes.trace", [handChunk(ChunkType.Records, Buffer.concat([pack(good), Buffer.from([1, 2])]), 2, 1, 1)], /: chunk 1 at byte \d+ is corrupt \((2 stray bytes after the last record|payload does not decode)\)$/],
    // the kind as msgpack uint64 (msgpackr's default decodes it as a BigInt): [8, 1, 2] is no record either way
    ["uint64-kind.trace", [handChunk(ChunkType.Records, Buffer.from([0x91, 0x93, 0xcf, 0, 0, 0, 0, 0, 0, 0, 8, 1, 2]), 1, 0, 0)], malformed(0, 1, "(unknown record kind 8n|expected run_end \\[8, t_ns, reason\\] or \\[8, t_ns, reason, detail\\])$")],
  ];
  for (const [name, chunks, pattern] of cases) {
    const file = handFile(name, h, ...chunks);
    const { err } = readUntilError(file, `${name}: `);
    assert.match(err.message, pattern, `${name}: ${err.message}`);
  }
  // a well-formed record whose time is a msgpack uint64: either read as the number or reported, never a crash
  const uint64_time = handFile("uint64-time.trace", h, handChunk(ChunkType.Records, Buffer.from([0x91, 0x93, 0x08, 0xcf, 0, 0, 0, 0, 0, 0, 0, 8, 0xa5, ...Buffer.from("error")]), 1, 8, 8));
  try {
    assert.equal(readAll(uint64_time).records, [[8, 8, "error"]]);
  } catch (err) {
    if (err instanceof assert.Assertion) throw err;
    assertTraceError(err, uint64_time);
    assert.match(err.message, malformed(0, 1, "expected run_end"));
  }
  // the same through the stored index of a complete file
  const bad = recordsChunk([[3, 0, 10, 1, 12345]]);
  const prefix = Buffer.concat([FILE_MAGIC, handChunk(ChunkType.Header, pack(h), 0, 0, 0)]);
  const index_offset = prefix.length + bad.length;
  const complete = path.join(dir, "complete-malformed.trace");
  writeFileSync(complete, Buffer.concat([prefix, bad, handChunk(ChunkType.Index, pack([[prefix.length, 10, 10, 1, 0]]), 1, 0, 0), encodeTrailer(index_offset)]));
  const reader = TraceReader.open(complete);
  try {
    assert.is(reader.status().complete, true);
  } finally {
    reader.close();
  }
  const err = readUntilError(complete, "complete: ").err;
  assert.match(err.message, malformed(0, 1, esc("expected frame_emit [3, node, t_ns, frame_id, bytes]") + "$"));
  assert.ok(err.message.includes(`byte ${prefix.length})`), err.message);
});

test.run();
