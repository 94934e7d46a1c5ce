// A writer killed with SIGKILL: a child process writes a deterministic record stream with
// TraceWriter in an endless loop (flushing every 1000 records), is read while it runs, then
// killed. Every complete chunk must read back, as an exact prefix of the stream.

import { spawn } from "node:child_process";
import { statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { TraceRecord } from "../engine/trace_records.js";
import { recordsEqual } from "../recorder/describe.js";
import { TraceReader, type TraceStatus } from "../recorder/reader.js";
import { makeHeader, normalize, removeDir, tempDir } from "./helpers/recorder_fixtures.js";

const WRITER_JS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../recorder/writer.js");
const dir = tempDir("kill");
test.after(() => removeDir(dir));

/**
 * Record i of the child's stream (t = i). Self-contained: its compiled source is pasted into
 * the child script, so parent and child cannot disagree on the stream. Nodes 0..3.
 */
function recordFor(i: number): TraceRecord {
  switch (i % 5) {
    case 0:
      return [1, i % 4, i, i + 1];
    case 1:
      return [3, i % 4, i, i, new Uint8Array(i % 97).fill(i & 0xff)];
    case 2:
      return [4, (i + 1) % 4, i, i - 1, i % 4, i];
    case 3:
      return [5, i % 7 === 0 ? -1 : i % 4, i, i, (i + 2) % 4, "queue_full"];
    default:
      return [7, -1, i, `mark ${i}`];
  }
}

function childScript(trace: string, header_json: string): string {
  return `import { TraceWriter } from ${JSON.stringify(pathToFileURL(WRITER_JS).href)};
${recordFor.toString()}
const writer = TraceWriter.create(${JSON.stringify(trace)}, JSON.parse(${JSON.stringify(header_json)}));
for (let i = 0; ; i++) {
  writer.write(recordFor(i));
  if (i % 1000 === 999) writer.flush();
}
`;
}

interface Read {
  records: TraceRecord[];
  status: TraceStatus;
}

function readEverything(file: string): Read {
  const reader = TraceReader.open(file);
  try {
    const records: TraceRecord[] = [];
    for (const chunk of reader.chunks()) records.push(...chunk.records);
    return { records, status: reader.status() };
  } finally {
    reader.close();
  }
}

/** The records are exactly recordFor(0), recordFor(1), ... */
function assertStreamPrefix(records: TraceRecord[], label: string): void {
  for (let i = 0; i < records.length; i++) {
    const want = recordFor(i);
    if (!recordsEqual(records[i]!, want)) assert.equal(normalize([records[i]!]), normalize([want]), `${label}: record ${i}`);
  }
}

async function waitUntil(condition: () => boolean, what: string, timeout_ms: number): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeout_ms) assert.unreachable(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test("SIGKILL: a writer killed mid-stream leaves every complete chunk readable, a prefix of its stream", async () => {
  const trace = path.join(dir, "killed.trace");
  const script = path.join(dir, "writer-child.mjs");
  writeFileSync(script, childScript(trace, JSON.stringify(makeHeader())));
  const child = spawn(process.execPath, [script], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on("close", (_code, signal) => resolve(signal)));
  const size = () => {
    try {
      return statSync(trace).size;
    } catch {
      return 0;
    }
  };
  const alive = () => child.exitCode === null && child.signalCode === null;
  let live_records = 0;
  try {
    await waitUntil(() => size() > 300_000 || !alive(), "the trace to grow past 300 kB", 20_000);
    assert.ok(alive(), `the writer died on its own: ${stderr}`);

    // read while the writer is still going: an incomplete trace, a prefix of the stream
    const live = readEverything(trace);
    assert.is(live.status.complete, false);
    assert.ok(live.records.length >= 1000, `live read got ${live.records.length} records`);
    assert.is(live.records.length, live.status.records);
    assertStreamPrefix(live.records, "while running");
    live_records = live.records.length;

    const size_at_live_read = size();
    await waitUntil(() => size() > size_at_live_read + 200_000 || !alive(), "more chunks", 20_000);
    child.kill("SIGKILL");
    assert.is(await exited, "SIGKILL");
  } finally {
    if (alive()) child.kill("SIGKILL");
  }

  const file_size = size();
  const after = readEverything(trace);
  assert.is(after.status.complete, false, "no trailer: the run never closed");
  assert.ok(after.records.length > live_records, `killed read got ${after.records.length} records, the live read ${live_records}`);
  assert.is(after.records.length, after.status.records);
  assert.ok(after.status.truncated_at_byte === null || after.status.truncated_at_byte < file_size);
  assertStreamPrefix(after.records, "after SIGKILL");
  // recordsFrom seeks with the scanned index and agrees with a filter of the whole stream
  const reader = TraceReader.open(trace);
  const from = Math.floor(after.records.length / 2) + 0.5;
  const tail = [...reader.recordsFrom(from)];
  reader.close();
  assert.is(tail.length, after.records.length - Math.ceil(from));
  assertStreamPrefix(after.records.slice(0, Math.ceil(from)).concat(tail), "recordsFrom");
  // chunks(k) on a file without index starts at the k-th chunk (a fresh reader walks the headers as it reads)
  const walker = TraceReader.open(trace);
  const later = [...walker.chunks(2)];
  walker.close();
  assert.is(later[0]!.index, 2);
  assert.is(later.length, after.status.chunks - 2);
  assertStreamPrefix(after.records.slice(0, later[0]!.first_ordinal).concat(later.flatMap((c) => c.records)), "chunks(2)");
});

test.run();
