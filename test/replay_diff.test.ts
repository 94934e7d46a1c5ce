import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { InputError } from "../engine/errors.js";
import { brachaConfig } from "../nodes/inprocess/workloads.js";
import { makeRunConfig } from "../engine/run.js";
import { createInProcessRun } from "../nodes/inprocess/run.js";
import { loadTopologyFile } from "../engine/topology_parse.js";
import { RecordKind, type RecordSink, type TraceRecord } from "../engine/trace_records.js";
import { diffTraces } from "../recorder/diff.js";
import { TraceReader } from "../recorder/reader.js";
import { replayTrace } from "../recorder/replay.js";
import { TraceWriter } from "../recorder/writer.js";
import { REPO_ROOT, tapsim } from "./helpers/cli.js";
import { rewriteTrace } from "./helpers/recorder_fixtures.js";

const tmp = mkdtempSync(path.join(tmpdir(), "tapsim-replay-"));
const AWS = path.join(REPO_ROOT, "latency_configs/delays_9x9_aws.txt");
const JITTER = path.join(REPO_ROOT, "latency_configs/wan_aws_9.yaml");

/** Records a Bracha run; `tamper` may rewrite a record on its way to the file. */
async function record(file: string, topology_file: string, seed: number, tamper?: (r: TraceRecord, i: number) => TraceRecord): Promise<number> {
  const config = makeRunConfig({ topology: loadTopologyFile(topology_file), workload: brachaConfig({ messages_per_node: 3 }), seed, until_ns: null });
  const writer = TraceWriter.create(file, { format: "tapsim-trace", format_version: 1, tapsim_version: "test", created_at: new Date().toISOString(), config });
  let i = 0;
  const sink: RecordSink = { write: (r) => writer.write(tamper ? tamper(r, i++) : r) };
  const { engine } = createInProcessRun(config, sink);
  await engine.run();
  writer.close();
  return writer.records_written;
}

function readAll(file: string): TraceRecord[] {
  const reader = TraceReader.open(file);
  const all = [...reader.records()];
  reader.close();
  return all;
}

test("every example trace in traces/ replays identical", async () => {
  const files = readdirSync(path.join(REPO_ROOT, "traces")).filter((f) => f.endsWith(".trace"));
  assert.ok(files.length >= 3, "example traces are present");
  for (const f of files) {
    const outcome = await replayTrace(path.join(REPO_ROOT, "traces", f));
    assert.ok(outcome.identical, `${f}: ${outcome.divergence?.why}`);
    assert.not.ok(outcome.trace_incomplete);
    assert.is(outcome.records_checked, readAll(path.join(REPO_ROOT, "traces", f)).length);
  }
});

test("replay reports a tampered decision at exactly its record, with both versions", async () => {
  const file = path.join(tmp, "tampered.trace");
  let target = -1;
  let original: TraceRecord | null = null;
  await record(file, AWS, 1, (r, i) => {
    if (target < 0 && r[0] === RecordKind.FrameDeliver && i > 500) {
      target = i;
      original = r;
      return [r[0], r[1], r[2] + 1, r[3], r[4], r[5]];
    }
    return r;
  });
  const outcome = await replayTrace(file);
  assert.not.ok(outcome.identical);
  assert.is(outcome.divergence!.index, target);
  assert.equal(outcome.divergence!.actual, original);
  assert.is((outcome.divergence!.expected as number[])[2], (original! as number[])[2]! + 1);
  assert.is(outcome.divergence!.context.length, 5);
});

test("replay of a tampered input (a frame's send time) diverges at the decisions that depend on it", async () => {
  const file = path.join(tmp, "tampered-input.trace");
  let frame_id = -1;
  let at = -1;
  await record(file, AWS, 1, (r, i) => {
    if (frame_id < 0 && r[0] === RecordKind.FrameEmit && i > 300) {
      frame_id = r[3];
      at = i;
      return [r[0], r[1], r[2] + 1000, r[3], r[4]];
    }
    return r;
  });
  const outcome = await replayTrace(file);
  assert.not.ok(outcome.identical);
  const d = outcome.divergence!;
  assert.ok(d.index > at, "inputs are taken as recorded; only what follows from them differs");
  const rec = d.expected as TraceRecord;
  assert.ok(rec[0] === RecordKind.FrameDeliver || rec[0] === RecordKind.FrameDrop, `divergent record is a routing decision: ${JSON.stringify(rec)}`);
  assert.is(rec[3], frame_id);
});

test("a trace cut mid-chunk (killed run) replays identical up to its last complete chunk", async () => {
  const file = path.join(tmp, "cut.trace");
  await record(file, AWS, 1);
  const full = readAll(file).length;
  truncateSync(file, Math.floor(statSync(file).size * 0.6));
  const outcome = await replayTrace(file);
  assert.ok(outcome.identical);
  assert.ok(outcome.trace_incomplete);
  const left = readAll(file);
  assert.ok(outcome.records_checked > 0 && left.length < full);
  // Checking stops only inside the last slice, whose inputs the cut left incomplete.
  const unchecked = left.slice(outcome.records_checked);
  assert.ok(unchecked.length < 200, `${unchecked.length} records unchecked`);
  assert.not.ok(unchecked.some((r) => r[0] === RecordKind.SliceEnd), "every complete slice was checked");
});

test("diff: the same run twice is equivalent; other seed or other matrix is not, with the first divergence", async () => {
  const a = path.join(tmp, "a.trace");
  const b = path.join(tmp, "b.trace");
  const seed2 = path.join(tmp, "seed2.trace");
  const mid = path.join(tmp, "mid.trace");
  await record(a, JITTER, 1);
  await record(b, JITTER, 1);
  await record(seed2, JITTER, 2);
  await record(mid, path.join(REPO_ROOT, "latency_configs/delays_9x9_aws.txt"), 1);

  const same = diffTraces(a, b, 3);
  assert.ok(same.equivalent);
  assert.equal(same.config_differences, []);
  assert.is(same.first_divergence, null);

  const seeds = diffTraces(a, seed2, 3);
  assert.not.ok(seeds.equivalent);
  assert.equal(seeds.config_differences, ["config.seed: 1 vs 2"]);
  const d = seeds.first_divergence!;
  assert.is(d.context.length, Math.min(3, d.index));
  assert.equal(readAll(a).slice(d.index - d.context.length, d.index), d.context);
  assert.equal(readAll(a)[d.index], d.a);
  assert.equal(readAll(seed2)[d.index], d.b);
  assert.ok(seeds.links.length > 0, "per-link summaries show where latencies differ");

  const matrices = diffTraces(a, mid, 3);
  assert.not.ok(matrices.equivalent);
  assert.ok(matrices.config_differences.some((line) => line.startsWith("config.topology.")), matrices.config_differences.join("; "));
});

test("diff of a trace with its own truncated copy stops at the cut", async () => {
  const a = path.join(tmp, "full.trace");
  const cut = path.join(tmp, "full-cut.trace");
  await record(a, AWS, 1);
  copyFileSync(a, cut);
  truncateSync(cut, Math.floor(statSync(cut).size / 2));
  const r = diffTraces(a, cut, 2);
  assert.not.ok(r.equivalent);
  assert.is(r.first_divergence!.b, null);
  assert.is(r.first_divergence!.index, readAll(cut).length);
  assert.ok(r.incomplete.b && !r.incomplete.a);
});

test("a run that failed (in-flight bound) replays identical, failing at the same record", async () => {
  const file = path.join(tmp, "failed.trace");
  const config = makeRunConfig({ topology: loadTopologyFile(AWS), workload: brachaConfig({ messages_per_node: 50 }), seed: 1, until_ns: null, inflight_frames_max: 200 });
  const writer = TraceWriter.create(file, { format: "tapsim-trace", format_version: 1, tapsim_version: "test", created_at: "t", config });
  const { engine } = createInProcessRun(config, writer);
  let error: unknown = null;
  try {
    await engine.run();
  } catch (err) {
    error = err;
    engine.finish("error", (err as Error).message); // as `tapsim run` does
  }
  writer.close();
  assert.instance(error, InputError);
  const records = readAll(file);
  const last = records.at(-1)!;
  assert.equal([last[0], last[2], last[3]], [RecordKind.RunEnd, "error", (error as Error).message], "the error's message is in the trace");
  const outcome = await replayTrace(file);
  assert.ok(outcome.identical, outcome.divergence?.why);
  assert.is(outcome.records_checked, records.length);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));

test("CLI replay of a trace without a complete slice says nothing was checked, exit 3", () => {
  const file = path.join(tmp, "header_only.trace");
  const bytes = readFileSync(path.join(REPO_ROOT, "traces/bracha_3x3.trace"));
  // magic, the header chunk, and the first 100 bytes of the first records chunk
  const header_end = 8 + 36 + bytes.readUInt32LE(8 + 8);
  writeFileSync(file, bytes.subarray(0, header_end + 100));
  const r = tapsim("replay", file);
  assert.is(r.code, 3, r.stdout + r.stderr);
  assert.is(r.stdout.trimEnd(), "replay: INCOMPLETE trace, nothing checked: no complete slice in it (incomplete: ends after its header (no complete chunk of records), no index — the run was killed or is still running)");
  assert.not.match(r.stdout, /identical/);
});

test("CLI replay of a cut trace: consistent so far, what was checked, exit 3", () => {
  const file = path.join(tmp, "cut9.trace");
  writeFileSync(file, readFileSync(path.join(REPO_ROOT, "traces/bracha_aws9.trace")).subarray(0, 300_000));
  const r = tapsim("replay", file);
  assert.is(r.code, 3, r.stdout + r.stderr);
  assert.match(r.stdout, /^replay: INCOMPLETE trace, consistent so far: \d+ complete slices, \d+ records re-derived and identical; incomplete: ends after chunk 1 \/ record 4096, no index/);
});

test("diff ignores host facts: traces differing only in the QEMU pid of lifecycle details are equivalent; replay agrees", () => {
  const src = path.join(REPO_ROOT, "traces/bracha_3x3.trace");
  const withDetail = (name: string, detail: (node: number) => string) =>
    rewriteTrace(src, path.join(tmp, name), null, (records) => {
      for (const r of records) if (r[0] === RecordKind.Lifecycle) r[4] = detail(r[1]);
    });
  const a = withDetail("pid_a.trace", (node) => `qemu pid ${1000 + node}`);
  const b = withDetail("pid_b.trace", (node) => `qemu pid ${2000 + node}`);
  const other = withDetail("pid_c.trace", (node) => `qemu pid ${1000 + node} (second boot)`);
  const same = tapsim("diff", a, b);
  assert.is(same.code, 0, same.stdout + same.stderr);
  assert.match(same.stdout, /^diff: equivalent: \d+ records, identical event by event/m);
  for (const f of [a, b]) assert.is(tapsim("replay", f).code, 0);
  // Only the pid is masked: any other change of the detail is still a difference.
  const differ = tapsim("diff", a, other);
  assert.is(differ.code, 1, differ.stdout);
  assert.match(differ.stdout, /A .*lifecycle node=0 boot \(qemu pid 1000\)/);
});

test.run();
