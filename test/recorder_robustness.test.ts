// Robustness of the trace reader: random damage to a valid trace (with and without fixed-up
// checksums) only ever gives a TraceError, and real runs stopped by SIGKILL or SIGINT leave
// traces that info and replay accept.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Prng } from "../engine/prng.js";
import { recordTimeNs, type TraceRecord } from "../engine/trace_records.js";
import { TraceError } from "../recorder/errors.js";
import { CHUNK_HEADER_BYTES, ChunkType } from "../recorder/format.js";
import { TraceReader } from "../recorder/reader.js";
import { assertTraceError, chunkLayout, makeHeader, randomRecords, recomputeCrcs, removeDir, tempDir, writeTrace } from "./helpers/recorder_fixtures.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const dir = tempDir("robust");
test.after(() => removeDir(dir));

// ---------------------------------------------------------------------------------------------
// 5. Fuzz

const FUZZ_SEED = Number(process.env.TAPSIM_FUZZ_SEED ?? 0x7a95);
const FUZZ_WALL_MS = Number(process.env.TAPSIM_FUZZ_MS ?? 3000);
const FUZZ_ITERATIONS_MAX = Number(process.env.TAPSIM_FUZZ_ITERATIONS ?? 20_000);

function randomBytes(prng: Prng, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = prng.nextU32() & 0xff;
  return b;
}

/** Bytes that mean something to msgpack (type codes, length limits); -1: a random byte. */
const INTERESTING_BYTES = [0, 1, 0x1f, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc4, 0xca, 0xcb, 0xcf, 0xd3, 0xd9, 0xdc, 0xdd, 0xe0, 0xff, -1, -1, -1, -1];

/** One random mutation of `buf`; returns the new buffer and a short description. */
function mutate(prng: Prng, buf: Buffer): [Buffer, string] {
  const chunks = chunkLayout(buf).chunks;
  // half the time aim at structure: a chunk header or the first bytes of a payload
  // a third of the time aim at structure (a chunk header or the start of its payload), a
  // third at some chunk's payload (chunks differ in size), else anywhere
  const target = (): number => {
    if (buf.length === 0) return 0;
    const ch = chunks.length > 0 ? chunks[prng.nextBelow(chunks.length)]! : null;
    const how = prng.nextBelow(3);
    if (ch !== null && how === 0) return Math.min(buf.length - 1, ch.offset + prng.nextBelow(CHUNK_HEADER_BYTES + 16));
    if (ch !== null && how === 1) return Math.min(buf.length - 1, ch.offset + prng.nextBelow(ch.end - ch.offset));
    return prng.nextBelow(buf.length);
  };
  switch (prng.nextBelow(9)) {
    case 0: {
      const at = target();
      const bit = prng.nextBelow(8);
      const out = Buffer.from(buf);
      if (out.length > 0) out[at] = out[at]! ^ (1 << bit);
      return [out, `flip bit ${bit} at ${at}`];
    }
    case 1: {
      const at = target();
      const out = Buffer.from(buf);
      const n = 1 + prng.nextBelow(4);
      for (let i = 0; i < n && at + i < out.length; i++) {
        const v = INTERESTING_BYTES[prng.nextBelow(INTERESTING_BYTES.length)]!;
        out[at + i] = v >= 0 ? v : prng.nextU32() & 0xff;
      }
      return [out, `overwrite ${n} bytes at ${at}`];
    }
    case 2: {
      const at = prng.nextBelow(buf.length + 1);
      return [buf.subarray(0, at), `truncate to ${at}`];
    }
    case 3: {
      const at = prng.nextBelow(buf.length + 1);
      const n = 1 + prng.nextBelow(40);
      return [Buffer.concat([buf.subarray(0, at), randomBytes(prng, n), buf.subarray(at)]), `insert ${n} bytes at ${at}`];
    }
    case 4: {
      const at = prng.nextBelow(buf.length + 1);
      const n = 1 + prng.nextBelow(40);
      return [Buffer.concat([buf.subarray(0, at), buf.subarray(at + n)]), `delete ${n} bytes at ${at}`];
    }
    case 5: {
      if (chunks.length === 0) return [buf, "no chunk to duplicate"];
      const i = prng.nextBelow(chunks.length);
      const ch = chunks[i]!;
      const to = chunks[prng.nextBelow(chunks.length)]!.end;
      const copy = buf.subarray(ch.offset, ch.end);
      return [Buffer.concat([buf.subarray(0, to), copy, buf.subarray(to)]), `duplicate chunk ${i} after byte ${to}`];
    }
    case 6: {
      if (chunks.length < 2) return [buf, "no chunks to swap"];
      const i = prng.nextBelow(chunks.length - 1);
      const a = chunks[i]!;
      const b = chunks[i + 1]!;
      return [Buffer.concat([buf.subarray(0, a.offset), buf.subarray(b.offset, b.end), buf.subarray(a.offset, a.end), buf.subarray(b.end)]), `swap chunks ${i} and ${i + 1}`];
    }
    case 7: {
      if (chunks.length === 0) return [buf, "no chunk header"];
      const i = prng.nextBelow(chunks.length);
      const field = [4, 8, 12, 16, 24][prng.nextBelow(5)]!;
      const out = Buffer.from(buf);
      const ch = chunks[i]!;
      if (field === 4) out[ch.offset + 4] = prng.nextBelow(5);
      else if (field >= 16) out.writeDoubleLE([-1, NaN, Infinity, 0, 2 ** 60, prng.nextBelow(1e12)][prng.nextBelow(6)]!, ch.offset + field);
      else out.writeUInt32LE([0, 1, 0xffffffff, 64 * 1024 * 1024, (1 << 20) + 1, prng.nextU32(), out.readUInt32LE(ch.offset + field) + 1][prng.nextBelow(7)]! >>> 0, ch.offset + field);
      return [out, `header field ${field} of chunk ${i}`];
    }
    default: {
      // a trailer pointing somewhere else
      const out = Buffer.from(buf);
      if (out.length >= 8) out.writeDoubleLE([0, 8, -1, 2 ** 53, prng.nextBelow(out.length), chunks[prng.nextBelow(Math.max(1, chunks.length))]?.offset ?? 0][prng.nextBelow(6)]!, out.length - 8);
      return [out, "trailer offset"];
    }
  }
}

test("fuzz: randomly damaged traces either read fine or throw a one-line TraceError, never anything else", () => {
  const base_prng = new Prng(FUZZ_SEED, 1);
  const records = randomRecords(base_prng, 120, { big_frames: false });
  const complete = path.join(dir, "fuzz-base.trace");
  writeTrace(complete, makeHeader(), records, base_prng, 15);
  const full = readFileSync(complete);
  const last_records = chunkLayout(full).chunks.filter((c) => c.type === ChunkType.Records).at(-1)!;
  const bases = [full, full.subarray(0, last_records.end)];
  const file = path.join(dir, "fuzz.trace");
  const started = Date.now();
  const outcomes = { read_ok: 0, trace_error: 0, decoder_or_validator: 0, crc_fixed: 0 };
  let iteration = 0;
  for (; iteration < FUZZ_ITERATIONS_MAX && Date.now() - started < FUZZ_WALL_MS; iteration++) {
    const prng = new Prng(FUZZ_SEED, 2, iteration);
    let buf: Buffer = bases[prng.nextBelow(2)]!;
    const steps: string[] = [];
    const n = 1 + prng.nextBelow(3);
    for (let k = 0; k < n; k++) {
      const [out, what] = mutate(prng, buf);
      buf = out;
      steps.push(what);
    }
    if (prng.nextBelow(2) === 0) {
      buf = Buffer.from(buf);
      recomputeCrcs(buf);
      steps.push("checksums recomputed");
      outcomes.crc_fixed++;
    }
    writeFileSync(file, buf);
    const label = `seed ${FUZZ_SEED} (TAPSIM_FUZZ_SEED), iteration ${iteration}, ${steps.join("; ")}: `;
    let reader: TraceReader | null = null;
    try {
      reader = TraceReader.open(file);
      let count = 0;
      let t_last = 0;
      for (const r of reader.records()) {
        count++;
        t_last = recordTimeNs(r);
      }
      const status = reader.status();
      assert.ok(status.records >= 0 && status.chunks >= 0, label + "status");
      // recordsFrom goes through the same chunks (header time bounds may be damaged: no count check)
      for (const r of reader.recordsFrom(t_last)) assert.ok(recordTimeNs(r) >= t_last, label + "recordsFrom");
      assert.ok(count >= 0);
      outcomes.read_ok++;
    } catch (err) {
      if (!(err instanceof TraceError)) {
        const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
        assert.unreachable(`${label}expected a TraceError, got: ${detail}`);
      }
      assertTraceError(err, file, label);
      outcomes.trace_error++;
      if (/malformed|does not decode|payload is not|payload holds|stray bytes|record times|not supported|format tag/.test((err as TraceError).message)) outcomes.decoder_or_validator++;
    } finally {
      reader?.close();
    }
  }
  console.log(`  fuzz: seed ${FUZZ_SEED}, ${iteration} iterations in ${Date.now() - started} ms: ${JSON.stringify(outcomes)}`);
  assert.ok(iteration >= 200, `enough fuzz iterations (${iteration})`);
  assert.ok(outcomes.read_ok > iteration / 50, "some damaged files still read (truncations, trailer damage)");
  assert.ok(outcomes.trace_error > iteration / 10, "most damage is detected");
  assert.ok(outcomes.decoder_or_validator > 0, "the decoder and validator got exercised");
});

// ---------------------------------------------------------------------------------------------
// 6./7. Real runs stopped from outside

const RUN_ARGS = ["--max-semi-space-size=32", "bin/tapsim.js", "run", "--latency", "latency_configs/delays_9x9_aws.txt", "--messages", "2000", "--no-progress"];

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function startRun(trace: string): { child: ChildProcess; exited: Promise<Exit>; stderr: () => string } {
  const child = spawn(process.execPath, [...RUN_ARGS, "--trace", trace], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  const exited = new Promise<Exit>((resolve) => child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, exited, stderr: () => stderr };
}

/** Polls the trace's size until it exceeds `bytes`; fails when the run ends first or it takes too long. */
async function waitForSize(trace: string, bytes: number, child: ChildProcess, stderr: () => string, timeout_ms = 20_000): Promise<number> {
  const started = Date.now();
  for (;;) {
    const size = existsSync(trace) ? statSync(trace).size : 0;
    if (size > bytes) return size;
    if (child.exitCode !== null || child.signalCode !== null) {
      await new Promise((r) => setTimeout(r, 50)); // let the last stderr arrive
      assert.unreachable(`the run ended (exit ${child.exitCode}, signal ${child.signalCode}) before its trace reached ${bytes} bytes (${size}); stderr: ${stderr().slice(-2000)}`);
    }
    if (Date.now() - started > timeout_ms) assert.unreachable(`the trace did not reach ${bytes} bytes within ${timeout_ms} ms (${size})`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function tapsim(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ["bin/tapsim.js", ...args], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function killIfRunning(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

test("SIGKILL mid-run: every complete chunk reads back; info says INCOMPLETE; replay is consistent up to the cut and exits 3", async () => {
  const trace = path.join(dir, "killed.trace");
  const { child, exited, stderr } = startRun(trace);
  let exit: Exit;
  try {
    await waitForSize(trace, 2 * 1024 * 1024, child, stderr);
    process.kill(child.pid!, "SIGKILL");
    exit = await exited;
  } finally {
    killIfRunning(child);
  }
  assert.is(exit.signal, "SIGKILL", `killed by the signal (exit ${exit.code}; stderr ${exit.stderr})`);

  const size = statSync(trace).size;
  const reader = TraceReader.open(trace);
  let records: TraceRecord[] = [];
  let status;
  try {
    for (const chunk of reader.chunks()) {
      assert.is(chunk.records.length, chunk.record_count);
      records = records.concat(chunk.records);
    }
    status = reader.status();
    assert.is(reader.header.config.nodes.length, 9);
  } finally {
    reader.close();
  }
  assert.is(status.complete, false);
  assert.ok(status.records > 0, "records survived");
  assert.is(records.length, status.records);
  assert.ok(records.every((r) => r[0] !== 8), "no run_end record in a killed run");
  if (status.truncated_at_byte !== null) assert.ok(status.truncated_at_byte < size);

  const info = tapsim("info", trace);
  assert.is(info.status, 0, `info exit status; stderr: ${info.stderr}`);
  assert.match(info.stdout, /INCOMPLETE/);

  const replay = tapsim("replay", trace);
  assert.is(replay.status, 3, `replay exit status (3: incomplete but consistent); stdout: ${replay.stdout}; stderr: ${replay.stderr}`);
  assert.match(replay.stdout, /replay: INCOMPLETE trace, consistent so far: \d+ complete slices, \d+ records re-derived and identical; incomplete: ends after chunk \d+ \/ record \d+, no index/);
});

test("SIGINT mid-run: exit 130, the trace is closed cleanly and ends with run_end interrupted; replay is identical", async () => {
  const trace = path.join(dir, "interrupted.trace");
  const { child, exited, stderr } = startRun(trace);
  let exit: Exit;
  try {
    await waitForSize(trace, 1024 * 1024, child, stderr);
    process.kill(child.pid!, "SIGINT");
    exit = await exited;
  } finally {
    killIfRunning(child);
  }
  assert.is(exit.code, 130, `exit code (signal ${exit.signal}); stderr: ${exit.stderr}`);
  assert.match(exit.stderr, /interrupted/);

  const reader = TraceReader.open(trace);
  let last: TraceRecord | undefined;
  let count = 0;
  let status;
  try {
    for (const r of reader.records()) {
      last = r;
      count++;
    }
    status = reader.status();
  } finally {
    reader.close();
  }
  assert.is(status.complete, true);
  assert.is(status.truncated_at_byte, null);
  assert.is(status.records, count);
  assert.ok(last !== undefined && last[0] === 8, `last record is run_end: ${JSON.stringify(last)}`);
  assert.is(last[2], "interrupted");
  assert.ok(Number.isSafeInteger(last[1]) && last[1] > 0, "run_end carries the stop time");

  const replay = tapsim("replay", trace);
  assert.is(replay.status, 0, `replay exit status; stdout: ${replay.stdout}; stderr: ${replay.stderr}`);
  assert.match(replay.stdout, /replay: identical/);
  assert.not.match(replay.stdout, /ends without a clean end/);
});

test.run();
