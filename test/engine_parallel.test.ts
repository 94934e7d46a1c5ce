// Parallel slices (RunConfig.parallel, the grant-set schedule): the record stream is a
// function of the configuration and the backends' outputs only. Running a set's slices
// concurrently (beginSlice, results arriving in shuffled order), one at a time, or on the
// in-process batch path gives the same records; a parallel trace replays; sets really hold
// several slices.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { createEngine } from "../engine/run.js";
import { RecordKind, type RunConfig, type TraceHeader } from "../engine/trace_records.js";
import { inProcessBackends } from "../nodes/inprocess/run.js";
import { FORMAT_VERSION } from "../recorder/format.js";
import { replayTrace } from "../recorder/replay.js";
import { TraceWriter } from "../recorder/writer.js";
import { delayedBackends } from "./helpers/delayed_backend.js";
import { GOLDEN_CASES, HashingSink, runGolden, type GoldenCase } from "./helpers/golden_cases.js";

const dir = mkdtempSync(path.join(tmpdir(), "tapsim-parallel-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

async function parallelHash(c: GoldenCase, mode: "batch" | "one-at-a-time" | "concurrent", seed = 1): Promise<{ sha256: string; records: number; shuffled: boolean; begun: number }> {
  const sink = new HashingSink();
  if (mode === "batch") {
    await runGolden(c, sink, { parallel: true });
    return { sha256: sink.digest(), records: sink.count, shuffled: false, begun: 0 };
  }
  const config = c.config();
  config.parallel = true;
  const log: number[] = [];
  const backends = delayedBackends(c, config, seed, log);
  await createEngine(config, backends, sink, { concurrent: mode === "concurrent" }).run();
  // Within a set, nodes are begun (and collected) in ascending order: a decrease in the
  // completion log means a later node finished first.
  const shuffled = log.some((node, k) => k > 0 && node < log[k - 1]!);
  return { sha256: sink.digest(), records: sink.count, shuffled, begun: backends.reduce((s, b) => s + b.begun, 0) };
}

for (const c of GOLDEN_CASES) {
  test(`parallel: concurrent, one at a time and batch path give the same records: ${c.name}`, async () => {
    const batch = await parallelHash(c, "batch");
    const one = await parallelHash(c, "one-at-a-time");
    assert.equal(one.sha256, batch.sha256, "one at a time (object path) vs batch path");
    assert.is(one.begun, 0, "one at a time never begins a slice early");
    for (const seed of [1, 2]) {
      const conc = await parallelHash(c, "concurrent", seed);
      assert.equal({ sha256: conc.sha256, records: conc.records }, { sha256: batch.sha256, records: batch.records }, `concurrent (seed ${seed}) vs batch path`);
      assert.ok(conc.begun > 0, "slices were begun concurrently");
      assert.ok(conc.shuffled, "results arrived out of order at least once");
    }
  });
}

test("parallel: a set holds several slices (fewer steps than slices) and the first node always runs", async () => {
  const c = GOLDEN_CASES.find((g) => g.name.startsWith("bracha 70"))!;
  const config = c.config();
  config.parallel = true;
  const sink = new HashingSink();
  const engine = createEngine(config, inProcessBackends(config).backends, sink);
  let steps = 0;
  while (await engine.step()) steps += 1;
  assert.is(engine.end_reason, "quiescent");
  assert.ok(engine.stats.slices > 2 * steps, `${engine.stats.slices} slices in ${steps} steps`);
});

test("parallel: a parallel trace records the flag in its header and replays identically (faults, jitter, loss)", async () => {
  for (const c of GOLDEN_CASES) {
    const config = c.config();
    config.parallel = true;
    const file = path.join(dir, `${c.name.replace(/[^a-z0-9]+/gi, "_")}.trace`);
    const header: TraceHeader = { format: "tapsim-trace", format_version: FORMAT_VERSION, tapsim_version: "0.0.0-test", created_at: "2024-01-02T03:04:05.678Z", config };
    const writer = TraceWriter.create(file, header);
    const backends = c.backends ? c.backends(config) : inProcessBackends(config).backends;
    await createEngine(config, backends, writer).run();
    writer.close();
    const outcome = await replayTrace(file);
    assert.ok(outcome.identical, `${c.name}: replay diverged: ${outcome.divergence?.why} at #${outcome.divergence?.index}`);
    assert.is(outcome.header.config.parallel, true);
    assert.ok(outcome.records_checked > 1000);
  }
});

test("parallel: the grant-set schedule changes when slices run, not what happens: same marks at the same times as the one-slice schedule", async () => {
  // Links draw their randomness per frame in their sender's time order, which both schedules
  // keep, so every frame arrives at the same time and the nodes do the same things; only the
  // slicing, frame ids and record order differ.
  for (const c of GOLDEN_CASES) {
    const marks = async (parallel: boolean) => {
      const out: string[] = [];
      const config = c.config();
      if (parallel) config.parallel = true;
      const backends = c.backends ? c.backends(config) : inProcessBackends(config).backends;
      let grants = 0;
      await createEngine(config, backends, {
        write(r) {
          if (r[0] === RecordKind.Mark || r[0] === RecordKind.Lifecycle || r[0] === RecordKind.Fault) out.push(JSON.stringify(r));
          if (r[0] === RecordKind.SliceGrant) grants += 1;
        },
      }).run();
      return { marks: out.sort(), grants };
    };
    const legacy = await marks(false);
    const parallel = await marks(true);
    assert.ok(legacy.marks.length > 0);
    assert.equal(parallel.marks, legacy.marks, c.name);
  }
});

test.run();
