// Scheduled faults (RunConfig.faults) with in-process nodes, written to real trace files:
// partitions, link changes, poweroff, pause/resume; the records they leave, replay of each
// faulted trace, byte-identical reruns, and plans the engine refuses.

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { NodeBackend } from "../engine/backend.js";
import { InputError } from "../engine/errors.js";
import { makeRunConfig, createEngine } from "../engine/run.js";
import { RecordKind, type FaultPlan, type NetworkChange, type RunConfig, type TraceHeader, type TraceRecord } from "../engine/trace_records.js";
import type { NodeId } from "../engine/units.js";
import { InProcessBackend } from "../nodes/inprocess/backend.js";
import { TraceReader } from "../recorder/reader.js";
import { replayTrace } from "../recorder/replay.js";
import { TraceWriter } from "../recorder/writer.js";
import { FORMAT_VERSION } from "../recorder/format.js";
import { matrixTopology, ScriptedNode, udpTo, uniformTopology } from "./helpers/engine_fixtures.js";

const MS = 1_000_000;
const dir = mkdtempSync(path.join(tmpdir(), "tapsim-faults-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** A node that sends one frame to each of `peers` every `period_ms`, from `first_ms` up to (not including) `end_ms`. */
function pinger(self: number, peers: number[], period_ms: number, end_ms: number, first_ms = 0): ScriptedNode {
  const script: { at_ns: number; frame: Uint8Array }[] = [];
  for (let t = first_ms; t < end_ms; t += period_ms) for (const to of peers) script.push({ at_ns: t * MS, frame: udpTo(self, to, 10, t) });
  return new ScriptedNode(script);
}

function others(self: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => i).filter((i) => i !== self);
}

interface Recorded {
  file: string;
  records: TraceRecord[];
  nodes: ScriptedNode[];
}

function header(config: RunConfig): TraceHeader {
  return { format: "tapsim-trace", format_version: FORMAT_VERSION, tapsim_version: "0.0.0-test", created_at: "2024-01-02T03:04:05.678Z", config };
}

/** Runs scripted nodes under `faults` into a trace file; returns its records. */
async function record(name: string, spec: RunConfig["topology"], make: () => ScriptedNode[], faults: FaultPlan, until_ns: number | null = null, rebuild?: (node: number) => ScriptedNode): Promise<Recorded> {
  const config: RunConfig = { ...makeRunConfig({ topology: spec, workload: null, seed: 7, until_ns }), faults };
  const nodes = make();
  const backends: NodeBackend[] = nodes.map((p, i) => new InProcessBackend(i as NodeId, nodes.length, p, config.seed, rebuild ? () => rebuild(i) : null));
  const file = path.join(dir, `${name}.trace`);
  const writer = TraceWriter.create(file, header(config));
  const engine = createEngine(config, backends, writer);
  await engine.run();
  writer.close();
  return { file, records: readAll(file), nodes };
}

function readAll(file: string): TraceRecord[] {
  const reader = TraceReader.open(file);
  try {
    return [...reader.records()];
  } finally {
    reader.close();
  }
}

function ofKind<K extends number>(records: TraceRecord[], kind: K): Extract<TraceRecord, [K, ...unknown[]]>[] {
  return records.filter((r) => r[0] === kind) as Extract<TraceRecord, [K, ...unknown[]]>[];
}

/** Replay re-derives every decision identically, and a second run writes the same bytes. */
async function assertReproducible(name: string, spec: RunConfig["topology"], make: () => ScriptedNode[], faults: FaultPlan, first: Recorded, until_ns: number | null = null, rebuild?: (node: number) => ScriptedNode): Promise<void> {
  const outcome = await replayTrace(first.file);
  assert.ok(outcome.identical, `${name}: replay diverged: ${outcome.divergence?.why} at #${outcome.divergence?.index}`);
  assert.is(outcome.records_checked, first.records.length);
  const again = await record(`${name}-again`, spec, make, faults, until_ns, rebuild);
  assert.ok(readFileSync(first.file).equals(readFileSync(again.file)), `${name}: two runs wrote different traces`);
}

function linksBetween(a: number[], b: number[]): { to: number; from: number }[] {
  const out: { to: number; from: number }[] = [];
  for (const x of a) for (const y of b) out.push({ to: x, from: y }, { to: y, from: x });
  return out;
}

// ---------------------------------------------------------------------------------------

const PARTITION_FROM_NS = 20 * MS;
const PARTITION_TO_NS = 60 * MS;
const GROUP_A = [0, 1];
const GROUP_B = [2, 3];
const partitionPlan = (): FaultPlan => ({
  nodes: [],
  network: [
    { t_ns: PARTITION_FROM_NS, action: "partition", label: "n0,n1 | n2,n3", links: linksBetween(GROUP_A, GROUP_B), set: { down: true } },
    { t_ns: PARTITION_TO_NS, action: "heal", label: "n0,n1 | n2,n3", links: linksBetween(GROUP_A, GROUP_B), set: { down: false } },
  ],
});
const partitionNodes = () => [0, 1, 2, 3].map((i) => pinger(i, others(i, 4), 5, 100));

test("a partition from t1 to t2 drops exactly the cross-group frames sent in [t1, t2) (link_down); every other frame arrives after the matrix latency", async () => {
  const spec = uniformTopology(4, 10);
  const run = await record("partition", spec, partitionNodes, partitionPlan());
  const emits = new Map(ofKind(run.records, RecordKind.FrameEmit).map((r) => [r[3], r]));
  const cross = (a: number, b: number) => GROUP_A.includes(a) !== GROUP_A.includes(b);
  const drops = ofKind(run.records, RecordKind.FrameDrop);
  assert.is(drops.length, 8 * 4 * 2); // 8 rounds in [20, 60) ms, 4 nodes, 2 peers across each
  for (const d of drops) {
    assert.is(d[5], "link_down");
    assert.ok(cross(d[1], d[4]), `drop ${d} is across the partition`);
    assert.ok(d[2] >= PARTITION_FROM_NS && d[2] < PARTITION_TO_NS, `drop ${d} sent inside the partition`);
    assert.is(emits.get(d[3])![2], d[2]);
  }
  const delivers = ofKind(run.records, RecordKind.FrameDeliver);
  assert.is(delivers.length + drops.length, ofKind(run.records, RecordKind.FrameEmit).length);
  for (const r of delivers) assert.is(r[2] - r[5], 10 * MS, `delivery ${r} after the matrix latency`);
  assert.ok(delivers.some((r) => cross(r[1], r[4]) && r[5] >= PARTITION_TO_NS), "frames cross again after the heal");
  const faults = ofKind(run.records, RecordKind.Fault);
  assert.equal(faults, [
    [RecordKind.Fault, -1, PARTITION_FROM_NS, "partition", "n0,n1 | n2,n3"],
    [RecordKind.Fault, -1, PARTITION_TO_NS, "heal", "n0,n1 | n2,n3"],
  ]);
  await assertReproducible("partition", spec, partitionNodes, partitionPlan(), run);
});

test("a network change is recorded just before the first slice grant that ends after its time", async () => {
  const run = await record("partition-where", uniformTopology(4, 10), partitionNodes, partitionPlan());
  run.records.forEach((r, i) => {
    if (r[0] !== RecordKind.Fault) return;
    const next = run.records.slice(i + 1).find((x) => x[0] !== RecordKind.Fault)!;
    assert.is(next[0], RecordKind.SliceGrant);
    assert.ok((next as [1, number, number, number])[3] > r[2], `grant after ${r} ends after it`);
    for (const before of ofKind(run.records.slice(0, i), RecordKind.SliceGrant)) assert.ok(before[3] <= r[2], `grant ${before} before ${r} ends by its time`);
  });
});

test("a latency change at t: frames sent before t keep the old latency, frames from t on take the new one", async () => {
  const spec = uniformTopology(2, 10);
  const make = () => [pinger(0, [1], 5, 100), new ScriptedNode()];
  const plan: FaultPlan = { nodes: [], network: [{ t_ns: 50 * MS, action: "link_change", label: "n0->n1 30ms", links: [{ to: 1, from: 0 }], set: { latency_ns: 30 * MS } }] };
  const run = await record("latency-up", spec, make, plan);
  const delivers = ofKind(run.records, RecordKind.FrameDeliver);
  assert.is(delivers.length, 20);
  for (const r of delivers) assert.is(r[2] - r[5], r[5] < 50 * MS ? 10 * MS : 30 * MS, `delivery ${r}`);
  await assertReproducible("latency-up", spec, make, plan, run);
});

test("a latency decrease runs without a causality violation (the lookahead is the smallest latency the link ever has), and the link stays FIFO", async () => {
  // n1 keeps busy (it pings n0), so without the lowered lookahead it runs ahead of frames
  // that the faster link brings, and the engine throws "causality violation".
  const spec = matrixTopology([
    [0, 30],
    [30, 0],
  ]);
  const make = () => [pinger(0, [1], 5, 100), pinger(1, [0], 1, 100)];
  const plan: FaultPlan = { nodes: [], network: [{ t_ns: 50 * MS, action: "link_change", label: "n0->n1 5ms", links: [{ to: 1, from: 0 }], set: { latency_ns: 5 * MS } }] };
  const run = await record("latency-down", spec, make, plan);
  const to1 = ofKind(run.records, RecordKind.FrameDeliver).filter((r) => r[1] === 1);
  assert.is(to1.length, 20);
  let last = 0;
  for (const r of to1) {
    const sent = r[5];
    const expected = sent < 50 * MS ? sent + 30 * MS : Math.max(sent + 5 * MS, 75 * MS);
    assert.is(r[2], Math.max(expected, last), `delivery ${r}`);
    last = r[2];
  }
  assert.is(to1.find((r) => r[5] === 50 * MS)![2], 75 * MS, "the first faster frame waits for the slower one before it");
  assert.is(to1.find((r) => r[5] === 95 * MS)![2], 100 * MS);
  await assertReproducible("latency-down", spec, make, plan, run);
});

test("bandwidth, loss and queue changes take effect for frames sent from their time on", async () => {
  const spec = uniformTopology(2, 10);
  const burst = () => {
    const script: { at_ns: number; frame: Uint8Array }[] = [];
    for (const at of [0, 50]) for (let k = 0; k < 5; k++) script.push({ at_ns: at * MS, frame: udpTo(0, 1, 1000 - 42, k) });
    return [new ScriptedNode(script), new ScriptedNode()];
  };
  // From 40 ms: 8 Mbit/s (1 ms per 1000-byte frame), at most 3 frames queued.
  const plan: FaultPlan = { nodes: [], network: [{ t_ns: 40 * MS, action: "link_change", label: "slow", links: [{ to: 1, from: 0 }], set: { bandwidth_bps: 8_000_000, queue_packets_max: 3 } }] };
  const run = await record("bandwidth", spec, burst, plan);
  const delivers = ofKind(run.records, RecordKind.FrameDeliver);
  assert.equal(delivers.filter((r) => r[5] === 0).map((r) => r[2]), [10, 10, 10, 10, 10].map((ms) => ms * MS));
  assert.equal(delivers.filter((r) => r[5] === 50 * MS).map((r) => r[2]), [61, 62, 63].map((ms) => ms * MS));
  assert.equal(ofKind(run.records, RecordKind.FrameDrop).map((r) => r[5]), ["queue_full", "queue_full"]);
  await assertReproducible("bandwidth", spec, burst, plan, run);
});

test("poweroff: the node stops; frames due from then on are dropped (node_down); the run still goes quiescent", async () => {
  const spec = uniformTopology(3, 10);
  const make = () => [0, 1, 2].map((i) => pinger(i, others(i, 3), 5, 60));
  const plan: FaultPlan = { nodes: [{ t_ns: 30 * MS, node: 2, action: "poweroff" }], network: [] };
  const run = await record("poweroff", spec, make, plan);
  assert.is(run.records.at(-1)![2], "quiescent");
  assert.equal(ofKind(run.records, RecordKind.Fault), [[RecordKind.Fault, 2, 30 * MS, "poweroff", ""]]);
  const i = run.records.findIndex((r) => r[0] === RecordKind.Fault);
  // The fault comes between two of n2's slices: its last slice ended at 30 ms.
  const n2_slices = run.records.slice(0, i).filter((r): r is [2, number, number, number] => r[0] === RecordKind.SliceEnd && r[1] === 2);
  assert.is(n2_slices.at(-1)![2], 30 * MS);
  assert.not.ok(run.records.slice(i).some((r) => (r[0] === RecordKind.SliceGrant || r[0] === RecordKind.FrameEmit) && r[1] === 2), "n2 runs no more");
  assert.ok(ofKind(run.records, RecordKind.FrameEmit).every((r) => r[1] !== 2 || r[2] < 30 * MS));
  const to2 = run.records.filter((r) => (r[0] === RecordKind.FrameDeliver || r[0] === RecordKind.FrameDrop) && r[1] === 2) as (TraceRecord & unknown[])[];
  for (const r of to2) {
    const sent = r[0] === RecordKind.FrameDeliver ? (r[5] as number) : (ofKind(run.records, RecordKind.FrameEmit).find((e) => e[3] === r[3])![2] as number);
    if (sent + 10 * MS < 30 * MS) assert.is(r[0], RecordKind.FrameDeliver, `frame sent at ${sent} arrives before the poweroff`);
    else assert.equal([r[0], r[5]], [RecordKind.FrameDrop, "node_down"], `frame sent at ${sent} arrives after the poweroff`);
  }
  // Frames already on the way when it went off are dropped at the poweroff; later ones when sent.
  const drops = ofKind(run.records, RecordKind.FrameDrop);
  assert.is(drops.length, 2 * 8); // n0 and n1 each send 12 frames to n2; 4 arrive before 30 ms
  for (const d of drops) {
    const sent = ofKind(run.records, RecordKind.FrameEmit).find((e) => e[3] === d[3])![2];
    assert.ok(d[2] === 30 * MS || d[2] === sent, `drop ${d}: at the poweroff (in flight) or when sent`);
  }
  assert.equal(run.nodes[2]!.received.map((r) => r.t_ns), [10, 10, 15, 15, 20, 20, 25, 25].map((ms) => ms * MS));
  await assertReproducible("poweroff", spec, make, plan, run);
});

test("in-process nodes cannot restart: the plan is refused up front, in one line", async () => {
  const plan: FaultPlan = {
    nodes: [
      { t_ns: 30 * MS, node: 2, action: "poweroff" },
      { t_ns: 60 * MS, node: 2, action: "restart" },
    ],
    network: [],
  };
  try {
    await record("restart", uniformTopology(3, 10), () => [0, 1, 2].map((i) => pinger(i, others(i, 3), 5, 60)), plan);
    assert.unreachable("refused");
  } catch (err) {
    assert.instance(err, InputError);
    assert.match((err as Error).message, /^in-process nodes cannot restart: node fault 1 \(restart node 2 n2 at 0\.060000000s\)/);
    assert.not.match((err as Error).message, /\n/);
  }
});

test("poweroff then restart (a backend that can rebuild its node): frames arriving while off are dropped, those arriving from the restart on wait for it; it boots again at the restart", async () => {
  const spec = uniformTopology(3, 10);
  const make = () => [0, 1, 2].map((i) => pinger(i, others(i, 3), 5, 100));
  const rebuild = (node: number) => pinger(node, others(node, 3), 5, 100, 60);
  const plan: FaultPlan = {
    nodes: [
      { t_ns: 30 * MS, node: 2, action: "poweroff" },
      { t_ns: 60 * MS, node: 2, action: "restart" },
    ],
    network: [],
  };
  const run = await record("restart-ok", spec, make, plan, null, rebuild);
  assert.equal(ofKind(run.records, RecordKind.Fault).map((r) => [r[1], r[2] / MS, r[3]]), [
    [2, 30, "poweroff"],
    [2, 60, "restart"],
  ]);
  assert.equal(ofKind(run.records, RecordKind.Lifecycle).filter((r) => r[1] === 2).map((r) => [r[2] / MS, r[3]]), [
    [0, "boot"],
    [60, "boot"],
  ]);
  const emits = new Map(ofKind(run.records, RecordKind.FrameEmit).map((r) => [r[3], r[2]]));
  for (const r of run.records) {
    if (!((r[0] === RecordKind.FrameDeliver || r[0] === RecordKind.FrameDrop) && r[1] === 2)) continue;
    const arrives = emits.get(r[3])! + 10 * MS;
    if (arrives >= 30 * MS && arrives < 60 * MS) assert.equal([r[0], r[5]], [RecordKind.FrameDrop, "node_down"], `frame ${r[3]} arrives while off`);
    else assert.is(r[0], RecordKind.FrameDeliver, `frame ${r[3]} arrives while on`);
  }
  const n2_sends = ofKind(run.records, RecordKind.FrameEmit).filter((r) => r[1] === 2).map((r) => r[2] / MS);
  assert.ok(n2_sends.every((t) => t < 30 || t >= 60), "silent while off");
  assert.is(n2_sends.filter((t) => t >= 60).length, 2 * 8);
  const first = run.records.find((r): r is [1, number, number, number] => r[0] === RecordKind.SliceGrant && r[1] === 2 && r[2] >= 30 * MS)!;
  assert.is(first[2], 60 * MS, "its clock jumps to the restart");
  await assertReproducible("restart-ok", spec, make, plan, run, null, rebuild);
});

test("pause/resume: no slices in between; frames due meanwhile are delivered at the resume in their order; timers due meanwhile fire at the resume", async () => {
  const spec = uniformTopology(3, 10);
  const make = () => [pinger(0, [1], 4, 80), pinger(1, [2], 5, 80), pinger(2, [1], 7, 80)];
  const plan: FaultPlan = {
    nodes: [
      { t_ns: 30 * MS, node: 1, action: "pause" },
      { t_ns: 50 * MS, node: 1, action: "resume" },
    ],
    network: [],
  };
  const run = await record("pause", spec, make, plan);
  assert.equal(ofKind(run.records, RecordKind.Fault), [
    [RecordKind.Fault, 1, 30 * MS, "pause", ""],
    [RecordKind.Fault, 1, 50 * MS, "resume", ""],
  ]);
  const p = run.records.findIndex((r) => r[0] === RecordKind.Fault && r[3] === "pause");
  const q = run.records.findIndex((r) => r[0] === RecordKind.Fault && r[3] === "resume");
  assert.not.ok(run.records.slice(p, q).some((r) => r[0] === RecordKind.SliceGrant && r[1] === 1), "no slice while paused");
  const first_after = run.records.slice(q).find((r): r is [1, number, number, number] => r[0] === RecordKind.SliceGrant && r[1] === 1)!;
  assert.is(first_after[2], 50 * MS, "it runs again from the resume");
  // Frames to n1 that arrive in [30, 50) ms are handed over at 50 ms, in arrival order.
  const to1 = ofKind(run.records, RecordKind.FrameDeliver).filter((r) => r[1] === 1);
  const held = to1.filter((r) => r[5] + 10 * MS >= 30 * MS && r[5] + 10 * MS < 50 * MS);
  assert.ok(held.length >= 6);
  for (const r of held) assert.is(r[2], 50 * MS, `held frame ${r}`);
  const order = held.map((r) => r[5] + 10 * MS);
  assert.equal(order, [...order].sort((a, b) => a - b));
  for (const r of to1) if (!held.includes(r)) assert.is(r[2], r[5] + 10 * MS);
  // n1's sends due at 30..45 ms (its timers) all happen at 50 ms, in order.
  const n1_sends = ofKind(run.records, RecordKind.FrameEmit).filter((r) => r[1] === 1).map((r) => r[2] / MS);
  assert.equal(n1_sends, [0, 5, 10, 15, 20, 25, 50, 50, 50, 50, 50, 55, 60, 65, 70, 75]);
  assert.equal(run.nodes[1]!.received.filter((r) => r.t_ns === 50 * MS).map((r) => r.from), to1.filter((r) => r[2] === 50 * MS).map((r) => r[4]));
  await assertReproducible("pause", spec, make, plan, run);
});

test("a node fault on an idle node still happens at its time, and a pause at t holds a frame due at t", async () => {
  const spec = uniformTopology(2, 10);
  const make = () => [new ScriptedNode([{ at_ns: 20 * MS, frame: udpTo(0, 1, 10) }]), new ScriptedNode()];
  const plan: FaultPlan = {
    nodes: [
      { t_ns: 30 * MS, node: 1, action: "pause" },
      { t_ns: 45 * MS, node: 1, action: "resume" },
    ],
    network: [],
  };
  const run = await record("idle-pause", spec, make, plan);
  assert.equal(run.nodes[1]!.received, [{ t_ns: 45 * MS, from: 0, bytes: 52 }]);
  assert.equal(ofKind(run.records, RecordKind.Fault).map((r) => r[2]), [30 * MS, 45 * MS]);
  await assertReproducible("idle-pause", spec, make, plan, run);
});

test("a node fault for a backend that takes none is refused, naming the node and the backend kind", () => {
  const config: RunConfig = { ...makeRunConfig({ topology: uniformTopology(2, 10), workload: null, seed: 1, until_ns: null }), faults: { nodes: [{ t_ns: 5 * MS, node: 1, action: "pause" }], network: [] } };
  // A backend without control (as a TAP node is): the engine refuses before any slice runs.
  const bare: NodeBackend = { kind: "tap", runSlice: () => assert.unreachable("no slice runs") as never };
  const backends: NodeBackend[] = [new InProcessBackend(0 as NodeId, 2, new ScriptedNode(), 1), bare];
  assert.throws(
    () => createEngine(config, backends, { write: () => {} }),
    (err: unknown) => err instanceof InputError && err.message === "faults: node fault 0 (pause node 1 n1 at 0.005000000s): tap nodes take no node faults",
  );
});

test("bad plans are refused with one-line InputErrors", async () => {
  const spec = uniformTopology(3, 10);
  const down = (t_ns: number, links = [{ to: 1, from: 0 }]): NetworkChange => ({ t_ns, action: "link_down", label: "x", links, set: { down: true } });
  const cases: [FaultPlan, RegExp][] = [
    [{ nodes: [{ t_ns: -1, node: 0, action: "poweroff" }], network: [] }, /^faults: node fault 0: t_ns must be a non-negative integer, got -1$/],
    [{ nodes: [{ t_ns: 1.5, node: 0, action: "poweroff" }], network: [] }, /t_ns must be a non-negative integer, got 1.5/],
    [{ nodes: [{ t_ns: 5, node: 3, action: "poweroff" }], network: [] }, /^faults: node fault 0: node 3 does not exist \(nodes 0\.\.2\)$/],
    [{ nodes: [{ t_ns: 5, node: 0, action: "explode" as "pause" }], network: [] }, /unknown action "explode"/],
    [{ nodes: [{ t_ns: 9, node: 0, action: "pause" }, { t_ns: 5, node: 1, action: "pause" }], network: [] }, /must be sorted by \(t_ns, node\)/],
    [{ nodes: [{ t_ns: 5, node: 0, action: "resume" }], network: [] }, /^faults: node fault 0 \(resume node 0 n0 at 0\.000000005s\): the node is running then \(resume only follows a pause\)$/],
    [{ nodes: [{ t_ns: 5, node: 0, action: "pause" }, { t_ns: 6, node: 0, action: "poweroff" }], network: [] }, /poweroff node 0 n0 at 0\.000000006s\): the node is paused then \(resume it first\)/],
    [{ nodes: [{ t_ns: 5, node: 0, action: "pause" }, { t_ns: 5, node: 0, action: "resume" }], network: [] }, /already has a pause at that time/],
    [{ nodes: [], network: [down(5, [{ to: 1, from: 1 }])] }, /^faults: network change 0 \(link_down at 0\.000000005s\): link \{"to":1,"from":1\} names no link/],
    [{ nodes: [], network: [down(9), down(5)] }, /network change 1 \(link_down at 0\.000000005s\): network changes must be sorted by t_ns/],
    [{ nodes: [], network: [{ ...down(5), set: { latency_ns: 2 * MS, jitter_ns: 3 * MS } }] }, /^faults: network change 0 \(link_down at 0\.000000005s\): link to 1 from 0: latency 2000000 ns minus jitter 3000000 ns must be > 0/],
    [{ nodes: [], network: [{ ...down(5), set: { loss_rate: 2 } }] }, /loss must be within 0\.\.1, got 2/],
    [{ nodes: [], network: [{ ...down(5), set: { speed: 1 } as object }] }, /set\.speed is no link parameter/],
  ];
  for (const [plan, re] of cases) {
    try {
      await record("bad", spec, () => [0, 1, 2].map(() => new ScriptedNode()), plan);
      assert.unreachable(`refused: ${re}`);
    } catch (err) {
      assert.instance(err, InputError, String(err));
      assert.match((err as Error).message, re);
      assert.not.match((err as Error).message, /\n/);
    }
  }
});

test.run();
