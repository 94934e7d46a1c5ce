// Engine throughput: events/s (the engine's `stats.events`, i.e. records produced) of
// in-process Bracha broadcast on an AWS-like three-region topology at 4..1024 nodes, once with
// a null sink (pure engine) and once recording a trace to a temp file. Baseline: a minimal
// discrete-event loop over a plain binary heap, run for the same number of events in the same
// process, so the ratio engine/baseline is comparable across machines and noisy runs.
//
// What a user's `tapsim run` does, measured as such: a run is one process with one sink, so
// each configuration (size x sink) runs in a fresh child process with the CLI's node flags
// (read from bin/tapsim.js), and one configuration's JIT feedback never reaches another's.
// In each child: one cold run of the engine and one of the baseline (reported, not in the
// median: the first run of a process includes JIT warm-up), then REPEATS warm runs, engine
// and baseline alternating. The null sink is one class instance for all of a child's runs.

import { spawn } from "node:child_process";
import { readFileSync, rmSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { traceHeader } from "../cli/version.js";
import { brachaConfig } from "../nodes/inprocess/workloads.js";
import { makeRunConfig } from "../engine/run.js";
import { createInProcessRun } from "../nodes/inprocess/run.js";
import type { RecordSink, RunConfig, TraceRecord } from "../engine/trace_records.js";
import { TraceWriter } from "../recorder/writer.js";
import { awsLikeTopology, fmtM, fmtRatio, median, note, printTable, progress, QUICK, REPEATS, tempDir, timeIt } from "./common.js";

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

/**
 * A full collection before each timed run (outside its timing), so that no run pays for the
 * one before's garbage (the baseline leaves millions of promoted objects, the engine its
 * arena): each starts from a clean heap, as a user's run does in its fresh process. Taken at
 * run time, not with --expose-gc: the children run with the CLI's node flags only.
 */
function collectorOf(): () => void {
  setFlagsFromString("--expose-gc");
  const gc: unknown = runInNewContext("gc");
  if (typeof gc !== "function") throw new Error("engine_bench: no gc() after --expose-gc");
  return gc as () => void;
}

/** Warm runs per configuration (BENCH_REPEATS overrides), each after the cold one. */
const WARM_RUNS = Number(process.env["BENCH_REPEATS"] ?? REPEATS);

type SinkKind = "null" | "traced";
const SINK_KINDS: readonly SinkKind[] = ["null", "traced"];

/** What one child process measured for one configuration (size x sink). */
interface ChildResult {
  nodes: number;
  sink: SinkKind;
  events: number;
  frames: number;
  trace_bytes: number;
  /** First run in the process (JIT warm-up included): reported, not in the median. */
  cold_per_s: number;
  base_cold_per_s: number;
  warm_per_s: number[];
  base_warm_per_s: number[];
}

const RESULT_PREFIX = "engine_bench_result ";

/** The pure engine: one instance for every run of the process, as a user's run has one sink. */
class NullSink implements RecordSink {
  readonly transient_bytes = true;
  readonly transient_records = true;
  write(_record: TraceRecord): void {}
  writeFrameEmitIn(_node: number, _t_ns: number, _frame_id: number, _buf: Uint8Array, _offset: number, _length: number): void {}
}

function configFor(c: Case): RunConfig {
  return makeRunConfig({
    topology: awsLikeTopology(c.nodes),
    workload: brachaConfig({ messages_per_node: c.messages, broadcasters: c.broadcasters }),
    seed: 1,
    until_ns: null,
  });
}

interface RunFigures {
  s: number;
  events: number;
  frames: number;
}

async function engineRun(config: RunConfig, sink: RecordSink, gc: () => void, close?: () => void): Promise<RunFigures> {
  const { engine } = createInProcessRun(config, sink);
  gc();
  const { s, value: summary } = await timeIt(async () => {
    const summary = await engine.run();
    close?.();
    return summary;
  });
  if (summary.end_reason !== "quiescent") throw new Error(`bench run ended ${summary.end_reason}`);
  return { s, events: summary.events, frames: summary.frames_emitted };
}

/** Events per second of `events` baseline events (heap preload included, as before). */
async function baselineRate(nodes: number, events: number, gc: () => void): Promise<number> {
  gc();
  const b = await timeIt(() => baselineLoop(nodes, nodes * (nodes - 1), events));
  if (b.value !== events) throw new Error("baseline checksum");
  return events / b.s;
}

/** One child process: a cold run of each, then WARM_RUNS alternating engine / baseline runs. */
async function measureInChild(c: Case, sink_kind: SinkKind): Promise<ChildResult> {
  const config = configFor(c);
  const tmp = tempDir("tapsim-engine-bench-");
  const null_sink = new NullSink();
  const gc = collectorOf();
  let trace_bytes = 0;
  const run = async (): Promise<RunFigures> => {
    if (sink_kind === "null") return engineRun(config, null_sink, gc);
    // As `tapsim run` records: a TraceWriter to a file, closed (fsync) inside the timing.
    const file = tmp.file(`n${c.nodes}.trace`);
    const writer = TraceWriter.create(file, traceHeader(config));
    const figures = await engineRun(config, writer, gc, () => writer.close());
    trace_bytes = statSync(file).size;
    rmSync(file);
    return figures;
  };
  try {
    const cold = await run();
    const base_cold_per_s = await baselineRate(c.nodes, cold.events, gc);
    const result: ChildResult = {
      nodes: c.nodes,
      sink: sink_kind,
      events: cold.events,
      frames: cold.frames,
      trace_bytes,
      cold_per_s: cold.events / cold.s,
      base_cold_per_s,
      warm_per_s: [],
      base_warm_per_s: [],
    };
    progress(`${c.nodes} nodes ${sink_kind} cold: engine ${fmtM(result.cold_per_s)}, baseline ${fmtM(base_cold_per_s)} Mev/s`);
    for (let rep = 0; rep < WARM_RUNS; rep++) {
      const warm = await run();
      // Deterministic runs: every repetition produces the same records.
      if (warm.events !== cold.events) throw new Error(`run ${rep + 1} produced ${warm.events} events, the first ${cold.events}`);
      result.warm_per_s.push(warm.events / warm.s);
      result.base_warm_per_s.push(await baselineRate(c.nodes, cold.events, gc));
      const engine_per_s = result.warm_per_s.at(-1)!;
      const base_per_s = result.base_warm_per_s.at(-1)!;
      progress(`${c.nodes} nodes ${sink_kind} warm ${rep + 1}: engine ${fmtM(engine_per_s)}, baseline ${fmtM(base_per_s)} Mev/s, engine/base ${fmtRatio(engine_per_s / base_per_s)} (${(cold.events / 1e6).toFixed(2)}M events, ${(cold.events / engine_per_s).toFixed(2)} s)`);
    }
    return result;
  } finally {
    tmp.remove();
  }
}

/**
 * The node flags of the CLI, from bin/tapsim.js's `#!/usr/bin/env -S node <flags>` line: the
 * children run with exactly these, so the benchmark's engine is the one a user's run gets.
 */
function cliNodeFlags(): string[] {
  const bin = fileURLToPath(new URL("../../bin/tapsim.js", import.meta.url));
  const first_line = readFileSync(bin, "utf8").split("\n", 1)[0]!;
  const match = /^#!\/usr\/bin\/env -S node((?: --[\w.=-]+)*)\s*$/.exec(first_line);
  if (match === null) throw new Error(`bin/tapsim.js: unexpected first line ${JSON.stringify(first_line)}`);
  return match[1]!.split(" ").filter((flag) => flag !== "");
}

/** Runs one configuration in a fresh child process (stderr passes through) and returns its figures. */
function spawnChild(flags: readonly string[], c: Case, sink_kind: SinkKind): Promise<ChildResult> {
  const args = [...flags, fileURLToPath(import.meta.url), "child", String(c.nodes), sink_kind, ...(QUICK ? ["quick"] : [])];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => (out += chunk));
    child.on("error", reject);
    child.on("close", (code, signal) => {
      const line = out.split("\n").find((l) => l.startsWith(RESULT_PREFIX));
      if (code !== 0 || line === undefined) {
        reject(new Error(`engine_bench child (${c.nodes} nodes, ${sink_kind} sink) exited ${code ?? signal}: ${out.trim()}`));
        return;
      }
      resolve(JSON.parse(line.slice(RESULT_PREFIX.length)) as ChildResult);
    });
  });
}

async function childMain(argv: readonly string[]): Promise<void> {
  const nodes = Number(argv[0]);
  const sink_kind = argv[1] as SinkKind;
  const c = ALL_CASES.find((k) => k.nodes === nodes);
  if (c === undefined || !SINK_KINDS.includes(sink_kind)) throw new Error(`engine_bench child: bad arguments ${argv.join(" ")}`);
  const result = await measureInChild(c, sink_kind);
  process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(result)}\n`);
}

function tableRow(c: Case, pure: ChildResult, traced: ChildResult): string[] {
  if (pure.events !== traced.events) throw new Error(`${c.nodes} nodes: traced run produced ${traced.events} events, untraced ${pure.events}`);
  const p = median(pure.warm_per_s);
  const t = median(traced.warm_per_s);
  const b = median(pure.base_warm_per_s);
  const bt = median(traced.base_warm_per_s);
  return [
    String(c.nodes),
    `${c.broadcasters ?? c.nodes}x${c.messages}`,
    (pure.events / 1e6).toFixed(2),
    (pure.frames / 1e6).toFixed(2),
    (traced.trace_bytes / 2 ** 20).toFixed(0),
    fmtM(pure.cold_per_s),
    fmtM(p),
    fmtM(traced.cold_per_s),
    fmtM(t),
    fmtM(pure.base_cold_per_s),
    fmtM(b),
    fmtM(bt),
    fmtRatio(p / b),
    fmtRatio(t / bt),
    fmtRatio(t / p),
  ];
}

async function main(): Promise<void> {
  const flags = cliNodeFlags();
  note(
    `engine_bench (${QUICK ? "quick" : "full"}): in-process Bracha, AWS-like 3-region topology; Mev/s = million engine events (records) per second. ` +
      `Each size x sink in its own child process (node ${flags.join(" ")}, the CLI's flags): one cold run of engine and baseline (the "cold" columns, not in the medians), ` +
      `then the median of ${WARM_RUNS} warm runs, engine and baseline alternating`,
  );
  const rows: string[][] = [];
  for (const c of CASES) {
    const pure = await spawnChild(flags, c, "null");
    const traced = await spawnChild(flags, c, "traced");
    rows.push(tableRow(c, pure, traced));
  }
  printTable(
    [
      "nodes",
      "bcast x msgs",
      "Mevents",
      "Mframes",
      "trace MiB",
      "engine cold Mev/s",
      "engine Mev/s",
      "traced cold Mev/s",
      "traced Mev/s",
      "heap-DES cold Mev/s",
      "heap-DES Mev/s",
      "heap-DES (traced proc) Mev/s",
      "engine/base",
      "traced/base",
      "traced/engine",
    ],
    rows,
    2,
  );
  note("baseline (heap-DES): binary heap of {t,seq,node} objects preloaded with N*(N-1) events; each popped event pushes one at a random delay; same event count");
  note("engine/base: medians of the null-sink process; traced/base: medians of the traced process (each ratio within one process)");
}

const CHILD_AT = process.argv.indexOf("child");
if (CHILD_AT >= 0) await childMain(process.argv.slice(CHILD_AT + 1));
else await main();
