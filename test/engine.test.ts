import { test } from "uvu";
import * as assert from "uvu/assert";
import { EventQueue } from "../engine/event_queue.js";
import { InputError } from "../engine/errors.js";
import { brachaConfig } from "../nodes/inprocess/workloads.js";
import { Prng } from "../engine/prng.js";
import { makeRunConfig } from "../engine/run.js";
import { createInProcessRun } from "../nodes/inprocess/run.js";
import { RecordKind, type TraceRecord } from "../engine/trace_records.js";
import { CollectingSink, engineFor, matrixTopology, ScriptedNode, udpTo, uniformTopology } from "./helpers/engine_fixtures.js";

const MS = 1_000_000;

test("event queue pops in (time, kind, seq) order whatever the insertion order", () => {
  const prng = new Prng(7);
  const q = new EventQueue<{ t_ns: number; kind: number; seq: number }>(10_000);
  const all = Array.from({ length: 2000 }, (_, seq) => ({ t_ns: prng.nextBelow(50), kind: prng.nextBelow(3), seq }));
  for (const e of [...all].sort(() => prng.nextFloat() - 0.5)) q.push(e);
  const popped = q.drain();
  const expected = [...all].sort((a, b) => a.t_ns - b.t_ns || a.kind - b.kind || a.seq - b.seq);
  assert.equal(popped, expected);
  assert.throws(() => {
    const small = new EventQueue<{ t_ns: number; kind: number; seq: number }>(1);
    small.push({ t_ns: 0, kind: 0, seq: 0 });
    small.push({ t_ns: 0, kind: 0, seq: 1 });
  }, /full/);
});

test("a frame arrives exactly after the configured one-way latency (m[to][from])", async () => {
  const m = [
    [0, 50, 150],
    [50, 0, 100],
    [150, 100, 0],
  ];
  const sender = new ScriptedNode([
    { at_ns: 3 * MS + 17, frame: udpTo(0, 2, 10) },
    { at_ns: 4 * MS, frame: udpTo(0, 1, 10) },
  ]);
  const n1 = new ScriptedNode();
  const n2 = new ScriptedNode([{ at_ns: 1, frame: udpTo(2, 0, 10) }]);
  const sink = new CollectingSink();
  const summary = await engineFor(matrixTopology(m), [sender, n1, n2], sink).run();
  assert.is(summary.end_reason, "quiescent");
  assert.equal(n2.received, [{ t_ns: 3 * MS + 17 + 150 * MS, from: 0, bytes: 52 }]);
  assert.equal(n1.received, [{ t_ns: 4 * MS + 50 * MS, from: 0, bytes: 52 }]);
  assert.equal(sender.received, [{ t_ns: 1 + 150 * MS, from: 2, bytes: 52 }]);
});

test("conservative schedule: slices per node never overlap and every delivery lies inside its slice", async () => {
  for (const seed of [1, 2, 3]) {
    const prng = new Prng(seed, 99);
    const n = 7;
    const m = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 0 : 1 + prng.nextBelow(80))));
    const spec = matrixTopology(m, [{ to: 1, from: 0, jitter_ns: 500_000, bandwidth_bps: 5e6, loss_rate: 0.05 }]);
    const config = makeRunConfig({ topology: spec, workload: brachaConfig({ messages_per_node: 3 }), seed, until_ns: null });
    const sink = new CollectingSink();
    const { engine } = createInProcessRun(config, sink);
    await engine.run();
    const clock = new Array<number>(n).fill(0);
    let slice: [number, number, number] | null = null;
    for (const r of sink.records) {
      if (r[0] === RecordKind.SliceGrant) {
        assert.ok(r[2] >= clock[r[1]]!, "slice starts where the node stopped");
        assert.ok(r[3] > r[2]);
        slice = [r[1], r[2], r[3]];
      } else if (r[0] === RecordKind.FrameDeliver) {
        assert.ok(slice !== null && r[1] === slice[0] && r[2] >= slice[1] && r[2] < slice[2], `delivery ${r} inside slice ${slice}`);
        assert.ok(r[2] >= r[5] + m[r[1]]![r[4]]! * MS - (r[1] === 1 && r[4] === 0 ? 500_000 : 0), "never faster than the link");
      } else if (r[0] === RecordKind.SliceEnd) {
        clock[r[1]] = r[2];
      }
    }
  }
});

test("bandwidth: serialisation delay, FIFO queueing and tail drop at the queue limit", async () => {
  const frames = Array.from({ length: 5 }, (_, i) => ({ at_ns: 0, frame: udpTo(0, 1, 1000 - 42, i) }));
  const spec = uniformTopology(2, 10, [{ to: 1, from: 0, bandwidth_bps: 8_000_000, queue_packets_max: 3 }]);
  const receiver = new ScriptedNode();
  const sink = new CollectingSink();
  await engineFor(spec, [new ScriptedNode(frames), receiver], sink).run();
  // 1000 bytes at 8 Mbit/s = 1 ms each; three fit the queue, the other two are tail-dropped.
  assert.equal(receiver.received.map((r) => r.t_ns), [11 * MS, 12 * MS, 13 * MS]);
  const drops = sink.ofKind(RecordKind.FrameDrop);
  assert.equal(drops.map((d) => d[5]), ["queue_full", "queue_full"]);
});

test("loss and jitter follow the seed: same seed same run, other seed other run, bounds respected", async () => {
  const runOnce = async (seed: number) => {
    const frames = Array.from({ length: 2000 }, (_, i) => ({ at_ns: i * 10_000, frame: udpTo(0, 1, 20) }));
    const spec = uniformTopology(2, 5, [{ to: 1, from: 0, loss_rate: 0.3, jitter_ns: 2 * MS }]);
    const receiver = new ScriptedNode();
    const sink = new CollectingSink();
    await engineFor(spec, [new ScriptedNode(frames), receiver], sink, seed).run();
    return { receiver, sink };
  };
  const a = await runOnce(11);
  const b = await runOnce(11);
  const c = await runOnce(12);
  assert.equal(a.sink.records, b.sink.records);
  assert.not.equal(a.receiver.received, c.receiver.received);
  const lost = 2000 - a.receiver.received.length;
  assert.ok(lost > 500 && lost < 700, `about 30% lost, got ${lost}`);
  let last = 0;
  for (const d of a.sink.ofKind(RecordKind.FrameDeliver)) {
    const delay = d[2] - d[5];
    assert.ok(delay >= 3 * MS, `delay ${delay} >= latency - jitter`);
    assert.ok(d[2] >= last, "the link never reorders");
    last = d[2];
  }
  const delays = a.sink.ofKind(RecordKind.FrameDeliver).map((d) => d[2] - d[5]);
  assert.ok(Math.max(...delays) > 6 * MS, "jitter actually spreads the delay");
});

test("broadcast MAC fans out to every other node; an unknown MAC is dropped as no_route", async () => {
  const bcast = udpTo(0, 1, 8);
  bcast.fill(0xff, 0, 6);
  const unknown = udpTo(0, 1, 8);
  unknown.set([2, 0, 0, 0, 0x7f, 0x7f], 0);
  const nodes = [new ScriptedNode([{ at_ns: 0, frame: bcast }, { at_ns: 1, frame: unknown }]), new ScriptedNode(), new ScriptedNode(), new ScriptedNode()];
  const sink = new CollectingSink();
  await engineFor(uniformTopology(4, 3), nodes, sink).run();
  assert.equal(nodes.slice(1).map((n) => n.received.length), [1, 1, 1]);
  assert.equal(nodes[0]!.received.length, 0);
  const drops = sink.ofKind(RecordKind.FrameDrop);
  assert.equal(drops.length, 1);
  assert.is(drops[0]![1], -1);
  assert.is(drops[0]![5], "no_route");
});

test("a node that exits loses its pending frames and later frames to it are dropped", async () => {
  const frames = [
    { at_ns: 0, frame: udpTo(0, 1, 8) }, // arrives at 10ms, after node 1 exits at 5ms
    { at_ns: 20 * MS, frame: udpTo(0, 1, 8) }, // sent after the exit
  ];
  const exiting = new ScriptedNode([], 5 * MS);
  const sink = new CollectingSink();
  const summary = await engineFor(uniformTopology(2, 10), [new ScriptedNode(frames), exiting], sink).run();
  assert.is(summary.end_reason, "quiescent");
  assert.equal(exiting.received, []);
  assert.equal(sink.ofKind(RecordKind.FrameDrop).map((d) => [d[1], d[5]]), [[1, "node_exited"], [1, "node_exited"]]);
  assert.equal(sink.ofKind(RecordKind.Lifecycle).filter((r) => r[1] === 1).map((r) => r[3]), ["boot", "exit"]);
});

test("idle stretches cost no slices, and --duration stops at exactly that virtual time", async () => {
  const far = new ScriptedNode([{ at_ns: 3600e9, frame: udpTo(0, 1, 8) }]);
  const sink = new CollectingSink();
  const summary = await engineFor(uniformTopology(2, 1), [far, new ScriptedNode()], sink).run();
  assert.ok(summary.slices <= 6, `an hour of idle virtual time in ${summary.slices} slices`);
  assert.ok(summary.end_ns > 3600e9 + 1 * MS && summary.end_ns < 3600e9 + 10 * MS, `ends just after the frame: ${summary.end_ns}`);
  const sink2 = new CollectingSink();
  const until = await engineFor(uniformTopology(2, 1), [new ScriptedNode([{ at_ns: 3600e9, frame: udpTo(0, 1, 8) }]), new ScriptedNode()], sink2, 1, 2e9).run();
  assert.is(until.end_reason, "duration");
  assert.is(sink2.records.at(-1)![0], RecordKind.RunEnd);
  assert.ok(sink2.ofKind(RecordKind.SliceGrant).every((g) => g[3] <= 2e9));
});

test("bracha: every correct node delivers every message, also with f silent nodes", async () => {
  for (const [n, silent] of [[4, []], [7, [2, 5]], [10, [0, 4, 9]]] as [number, number[]][]) {
    const config = makeRunConfig({
      topology: uniformTopology(n, 20),
      workload: brachaConfig({ messages_per_node: 4, silent_nodes: silent }),
      seed: 3,
      until_ns: null,
    });
    const sink = new CollectingSink();
    const { engine, workload } = createInProcessRun(config, sink);
    await engine.run();
    const s = workload.summary().json;
    const correct = n - silent.length;
    assert.is(s.deliveries, correct * correct * 4, `n=${n} silent=${silent}`);
    assert.ok(s.all_delivered_at_ns !== null);
    const delivers = sink.ofKind(RecordKind.Mark).filter((r) => r[3].startsWith("bracha deliver"));
    assert.is(delivers.length, correct * correct * 4);
    assert.ok(sink.ofKind(RecordKind.FrameEmit).every((r) => !silent.includes(r[1])), "silent nodes send nothing");
  }
});

test("bracha: a broadcast completes after INITIAL + ECHO + READY hops (3 x latency on a uniform network)", async () => {
  const config = makeRunConfig({
    topology: uniformTopology(4, 20),
    workload: brachaConfig({ messages_per_node: 1, start_spread_ns: 0, broadcasters: 1 }),
    seed: 1,
    until_ns: null,
  });
  const { engine, workload } = createInProcessRun(config, new CollectingSink());
  await engine.run();
  const s = workload.summary().json as { completion_latency_ms: { max: number } };
  assert.is(s.completion_latency_ms.max, 60);
});

test("identical configuration and seed give an identical record stream", async () => {
  const run = async (seed: number) => {
    const spec = uniformTopology(6, 10, [{ to: 2, from: 1, jitter_ns: 3 * MS }]);
    const sink = new CollectingSink();
    const { engine } = createInProcessRun(makeRunConfig({ topology: spec, workload: brachaConfig({ messages_per_node: 3 }), seed, until_ns: null }), sink);
    await engine.run();
    return sink.records;
  };
  const a: TraceRecord[] = await run(5);
  assert.equal(a, await run(5));
  assert.not.equal(a, await run(6));
});

test("more frames in flight than the bound is a clear input error, not an out-of-memory crash", async () => {
  const config = makeRunConfig({ topology: uniformTopology(20, 50), workload: brachaConfig({ messages_per_node: 2 }), seed: 1, until_ns: null, inflight_frames_max: 1000 });
  const { engine } = createInProcessRun(config, new CollectingSink());
  try {
    await engine.run();
    assert.unreachable("the run should have hit the bound");
  } catch (err) {
    assert.instance(err, InputError);
    assert.match((err as Error).message, /more than 1000 frames in flight/);
  }
});

test.run();
