// Engine throughput: events/s (the engine's `stats.events`, i.e. records produced) of
// in-process Bracha broadcast on an AWS-like three-region topology at 4..1024 nodes, once with
// a null sink (pure engine) and once recording a trace to a temp file. Baseline: a minimal
// discrete-event loop over a plain binary heap, run for the same number of events in the same
// process, so the ratio engine/baseline is comparable across machines and noisy runs.

import { rmSync, statSync } from "node:fs";
import { traceHeader } from "../cli/version.js";
import { brachaConfig } from "../nodes/inprocess/workloads.js";
import { makeRunConfig } from "../engine/run.js";
import { createInProcessRun } from "../nodes/inprocess/run.js";
import type { RecordSink, RunConfig } from "../engine/trace_records.js";
import { TraceWriter } from "../recorder/writer.js";
import { awsLikeTopology, collectGarbage, fmtM, fmtRatio, median, note, printTable, progress, QUICK, REPEATS, tempDir, timeIt } from "./common.js";

interface Case {
  nodes: number;
  messages: number;
  broadcasters: number | null;
}

/** BENCH_NODES=64,1024 runs only those sizes. */
const ONLY = process.env["BENCH_NODES"]?.split(",").map(Number) ?? null;

const ALL_CASES: Case[] = QUICK
  ? [
      { nodes: 4, messages: 300, broadcasters: null },
      { nodes: 16, messages: 10, broadcasters: null },
      { nodes: 64, messages: 1, broadcasters: 8 },
      { nodes: 256, messages: 1, broadcasters: 1 },
      { nodes: 512, messages: 1, broadcasters: 1 },
    ]
  : [
      { nodes: 4, messages: 12000, broadcasters: null },
      { nodes: 16, messages: 200, broadcasters: null },
      { nodes: 64, messages: 3, broadcasters: null },
      { nodes: 256, messages: 1, broadcasters: 8 },
      { nodes: 1024, messages: 1, broadcasters: 1 },
    ];
const CASES = ONLY === null ? ALL_CASES : ALL_CASES.filter((c) => ONLY.includes(c.nodes));

// ---------------------------------------------------------------------------------------
// Baseline: array-based binary heap of {t, seq, node}; each event's handler schedules one
// new event at a pseudo-random delay.

interface Ev {
  t: number;
  seq: number;
  node: number;
}

const before = (a: Ev, b: Ev): boolean => a.t < b.t || (a.t === b.t && a.seq < b.seq);

class BinaryHeap {
  private readonly a: Ev[] = [];

  get size(): number {
    return this.a.length;
  }

  push(e: Ev): void {
    const a = this.a;
    let i = a.length;
    a.push(e);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(e, a[p]!)) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = e;
  }

  pop(): Ev | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (top === undefined || last === undefined || a.length === 0) return top;
    const n = a.length;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && before(a[r]!, a[l]!) ? r : l;
      if (!before(a[c]!, last)) break;
      a[i] = a[c]!;
      i = c;
    }
    a[i] = last;
    return top;
  }
}

/** Runs `events` events with `population` pending at any time; returns a checksum. */
function baselineLoop(nodes: number, population: number, events: number): number {
  let x = 0x9e3779b9 | 0;
  const rand = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  const heap = new BinaryHeap();
  const handled = new Float64Array(nodes);
  let seq = 0;
  for (let i = 0; i < population; i++) heap.push({ t: rand() % 100_000_000, seq: seq++, node: i % nodes });
  for (let k = 0; k < events; k++) {
    const ev = heap.pop()!;
    handled[ev.node]! += 1;
    heap.push({ t: ev.t + 1_000_000 + (rand() % 100_000_000), seq: seq++, node: rand() % nodes });
  }
  return handled.reduce((s, v) => s + v, 0);
}

// ---------------------------------------------------------------------------------------

function configFor(c: Case): RunConfig {
  return makeRunConfig({
    topology: awsLikeTopology(c.nodes),
    workload: brachaConfig({ messages_per_node: c.messages, broadcasters: c.broadcasters }),
    seed: 1,
    until_ns: null,
  });
}

async function engineRun(config: RunConfig, sink: RecordSink, close?: () => void): Promise<{ s: number; events: number; frames: number }> {
  const { engine } = createInProcessRun(config, sink);
  const { s, value: summary } = await timeIt(async () => {
    const summary = await engine.run();
    close?.();
    return summary;
  });
  if (summary.end_reason !== "quiescent") throw new Error(`bench run ended ${summary.end_reason}`);
  return { s, events: summary.events, frames: summary.frames_emitted };
}

async function main(): Promise<void> {
  note(`engine_bench (${QUICK ? "quick" : "full"}): in-process Bracha, AWS-like 3-region topology, median of ${REPEATS}; Mev/s = million engine events (records) per second`);
  const tmp = tempDir("tapsim-engine-bench-");
  const rows: string[][] = [];
  try {
    for (const c of CASES) {
      const config = configFor(c);
      const population = c.nodes * (c.nodes - 1);
      const pure: number[] = [];
      const traced: number[] = [];
      const base: number[] = [];
      let events = 0;
      let frames = 0;
      let trace_bytes = 0;
      for (let rep = 0; rep < REPEATS; rep++) {
        collectGarbage();
        const a = await engineRun(config, { write() {}, writeFrameEmitIn() {}, transient_bytes: true, transient_records: true });
        events = a.events;
        frames = a.frames;
        pure.push(a.events / a.s);
        collectGarbage();
        const b = await timeIt(() => baselineLoop(c.nodes, population, events));
        if (b.value !== events) throw new Error("baseline checksum");
        base.push(events / b.s);
        collectGarbage();
        const file = tmp.file(`n${c.nodes}.trace`);
        const header = traceHeader(config);
        const writer = TraceWriter.create(file, header);
        const t = await engineRun(config, writer, () => writer.close());
        if (t.events !== events) throw new Error(`traced run produced ${t.events} events, untraced ${events}`);
        traced.push(t.events / t.s);
        trace_bytes = statSync(file).size;
        rmSync(file);
        progress(`${c.nodes} nodes rep ${rep + 1}: engine ${fmtM(pure.at(-1)!)}, traced ${fmtM(traced.at(-1)!)}, baseline ${fmtM(base.at(-1)!)} Mev/s, engine/base ${fmtRatio(pure.at(-1)! / base.at(-1)!)} (${(events / 1e6).toFixed(2)}M events, ${(a.s).toFixed(2)} s)`);
      }
      const p = median(pure);
      const t = median(traced);
      const b = median(base);
      rows.push([
        String(c.nodes),
        `${c.broadcasters ?? c.nodes}x${c.messages}`,
        (events / 1e6).toFixed(2),
        (frames / 1e6).toFixed(2),
        (trace_bytes / 2 ** 20).toFixed(0),
        fmtM(p),
        fmtM(t),
        fmtM(b),
        fmtRatio(p / b),
        fmtRatio(t / b),
        fmtRatio(t / p),
      ]);
    }
  } finally {
    tmp.remove();
  }
  printTable(
    ["nodes", "bcast x msgs", "Mevents", "Mframes", "trace MiB", "engine Mev/s", "traced Mev/s", "heap-DES Mev/s", "engine/base", "traced/base", "traced/engine"],
    rows,
    2,
  );
  note("baseline (heap-DES): binary heap of {t,seq,node} objects preloaded with N*(N-1) events; each popped event pushes one at a random delay; same event count");
}

await main();
