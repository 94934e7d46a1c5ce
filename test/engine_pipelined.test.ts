// The pipelined grant-set schedule (RunConfig.pipelined, what `tapsim run --parallel` uses on
// VMs): each set is computed from the planned ends of the set before it, and a node's next
// slice may begin while the set before is still being collected. Whether slices begin early,
// late or one at a time, and in whatever order they finish, the record stream is the same;
// the trace replays; the nodes do what they do under the one-slice schedule. Nodes here are
// in-process protocols behind a VM-like interface: always awake at their slice end, their
// request's frames copied when the slice begins (as the VM backend encodes its RUN), and run
// after a random number of event-loop turns.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { InputError } from "../engine/errors.js";
import { createEngine, pipelinedSliceLenMaxNs } from "../engine/run.js";
import { RecordKind, type RunConfig, type TraceHeader } from "../engine/trace_records.js";
import { inProcessBackends } from "../nodes/inprocess/run.js";
import { FORMAT_VERSION } from "../recorder/format.js";
import { replayTrace } from "../recorder/replay.js";
import { validateHeader } from "../recorder/validate.js";
import { TraceWriter } from "../recorder/writer.js";
import { Prng } from "../engine/prng.js";
import { delayedBackends, ShuffledFinish, type DelayedBackend } from "./helpers/delayed_backend.js";
import { GOLDEN_CASES, HashingSink, type GoldenCase } from "./helpers/golden_cases.js";

const dir = mkdtempSync(path.join(tmpdir(), "tapsim-pipelined-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const MS = 1_000_000;
/** Cases without faults (the pipelined schedule refuses them): jitter, loss, queues, an exit mid-run. */
const CASES = GOLDEN_CASES.filter((c) => c.config().faults === undefined);

/** capped: slices of half the smallest lookahead (pipelinedSliceLenMaxNs); else as long as each node's lookahead allows (as the CLI runs), so most next slices must wait. */
function pipelinedConfig(c: GoldenCase, pipelined: boolean, capped = true): RunConfig {
  const config = c.config();
  config.until_ns ??= 400 * MS; // busy nodes never go quiet
  if (pipelined) {
    config.parallel = true;
    config.pipelined = true;
    if (capped) config.slice_len_max_ns = pipelinedSliceLenMaxNs(config.topology);
  }
  return config;
}

/** VM-like nodes: awake at every slice end, frames copied at begin, finishing after random event-loop turns (or, with `finish`, in the order it picks). */
function busyBackends(c: GoldenCase, config: RunConfig, seed: number, log: number[], finish: ShuffledFinish | null = null): DelayedBackend[] {
  return delayedBackends(c, config, seed, log, true, finish);
}

/**
 * A pipelined run of busy nodes; `finish_order`: the nodes say when their slices are done (as
 * VMs on the blocking gate) and finish in an order picked by `seed` (out_of_order counts it).
 */
async function pipelinedRun(c: GoldenCase, concurrent: boolean, seed = 1, capped = true, finish_order = false): Promise<{ sha256: string; records: number; early: number; shuffled: boolean; out_of_order: number }> {
  const config = pipelinedConfig(c, true, capped);
  const sink = new HashingSink();
  const log: number[] = [];
  const finish = finish_order ? new ShuffledFinish(new Prng(seed, 11)) : null;
  const engine = createEngine(config, busyBackends(c, config, seed, log, finish), sink, { concurrent });
  await engine.run();
  assert.is(engine.end_reason, "duration");
  return { sha256: sink.digest(), records: sink.count, early: engine.slices_begun_early, shuffled: log.some((node, k) => k > 0 && node < log[k - 1]!), out_of_order: finish?.out_of_order ?? 0 };
}

for (const c of CASES) {
  test(`pipelined: slices begun early, concurrently and out of order, or one at a time: the same records: ${c.name}`, async () => {
    const one = await pipelinedRun(c, false);
    assert.is(one.early, 0, "one at a time begins nothing early");
    for (const seed of [1, 2]) {
      const conc = await pipelinedRun(c, true, seed);
      assert.equal({ sha256: conc.sha256, records: conc.records }, { sha256: one.sha256, records: one.records }, `concurrent (seed ${seed}) vs one at a time`);
      assert.ok(conc.early > one.records / 100, `slices were begun early (${conc.early})`);
      assert.ok(conc.shuffled, "results arrived out of order at least once");
    }
    // Slices as long as the lookahead: a next slice may begin early only where no peer still
    // running can reach it before its end; begun any sooner, it would miss their frames.
    const long_one = await pipelinedRun(c, false, 1, false);
    const long_conc = await pipelinedRun(c, true, 1, false);
    assert.equal({ sha256: long_conc.sha256, records: long_conc.records }, { sha256: long_one.sha256, records: long_one.records }, "uncapped slices: concurrent vs one at a time");
  });
}

for (const c of CASES) {
  test(`pipelined: slices collected in the order they finish (the next begun before the set's earlier slices are in), recorded in set order: the same records: ${c.name}`, async () => {
    for (const capped of [true, false]) {
      const one = await pipelinedRun(c, false, 1, capped);
      for (const seed of [1, 2, 3]) {
        const run = await pipelinedRun(c, true, seed, capped, true);
        assert.equal({ sha256: run.sha256, records: run.records }, { sha256: one.sha256, records: one.records }, `finish order (seed ${seed}, ${capped ? "half-lookahead" : "lookahead-long"} slices) vs one at a time`);
        assert.ok(run.out_of_order > 10, `slices finished out of set order (${run.out_of_order})`);
        if (capped) assert.ok(run.early > one.records / 100, `slices were begun early (${run.early})`);
      }
    }
  });
}

test("pipelined: a trace records the schedule in its header and replays identically", async () => {
  for (const c of CASES) {
    const config = pipelinedConfig(c, true);
    const file = path.join(dir, `${c.name.replace(/[^a-z0-9]+/gi, "_")}.trace`);
    const header: TraceHeader = { format: "tapsim-trace", format_version: FORMAT_VERSION, tapsim_version: "0.0.0-test", created_at: "2024-01-02T03:04:05.678Z", config };
    const writer = TraceWriter.create(file, header);
    await createEngine(config, busyBackends(c, config, 3, []), writer).run();
    writer.close();
    const outcome = await replayTrace(file);
    assert.ok(outcome.identical, `${c.name}: replay diverged: ${outcome.divergence?.why} at #${outcome.divergence?.index}`);
    assert.equal([outcome.header.config.parallel, outcome.header.config.pipelined], [true, true]);
    assert.ok(outcome.records_checked > 1000);
  }
});

test("pipelined: changes when slices run, not what happens: the same marks and lifecycle events at the same times as the one-slice schedule", async () => {
  for (const c of CASES) {
    const events = async (pipelined: boolean) => {
      const out: string[] = [];
      const config = pipelinedConfig(c, pipelined);
      await createEngine(config, busyBackends(c, config, 4, []), {
        write(r) {
          if (r[0] === RecordKind.Mark || r[0] === RecordKind.Lifecycle) out.push(JSON.stringify(r));
        },
      }).run();
      return out.sort();
    };
    const a = await events(false);
    assert.ok(a.length > 5, `${c.name}: the nodes did something`);
    assert.equal(await events(true), a, c.name);
  }
});

test("pipelined: refused with faults (one line), without parallel, and by the trace validator without parallel", () => {
  const faulted = GOLDEN_CASES.find((c) => c.config().faults !== undefined)!;
  const config = faulted.config();
  config.parallel = true;
  config.pipelined = true;
  assert.throws(() => createEngine(config, inProcessBackends(config).backends, new HashingSink()), (err: unknown) => err instanceof InputError && /does not take faults/.test((err as Error).message));
  const plain = CASES[0]!.config();
  plain.pipelined = true;
  assert.throws(() => createEngine(plain, inProcessBackends(plain).backends, new HashingSink()), /needs parallel/);
  const header: TraceHeader = { format: "tapsim-trace", format_version: FORMAT_VERSION, tapsim_version: "0.0.0-test", created_at: "2024-01-02T03:04:05.678Z", config: plain };
  assert.match(validateHeader(header) ?? "", /config\.pipelined needs config\.parallel/);
});

test("pipelinedSliceLenMaxNs: half the smallest lookahead (latency less jitter), never above the given maximum", () => {
  const config = CASES[0]!.config(); // 1 ms inside a region, 600 us of jitter on some links
  const half_ns = pipelinedSliceLenMaxNs(config.topology);
  assert.is(half_ns, 200_000);
  assert.is(pipelinedSliceLenMaxNs(config.topology, 150_000), 150_000);
});

test.run();
