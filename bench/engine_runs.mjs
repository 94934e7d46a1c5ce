// Usage: node --max-semi-space-size=32 bench/engine_runs.mjs [ROOT] [RUNS] [NODES] [MESSAGES]
// RUNS runs of the engine_bench case (in-process Bracha, AWS-like topology, one NullSink
// instance) in one process, each run's wall and CPU rate printed: for profilers
// (`--cpu-prof`; `valgrind --tool=callgrind node --single-threaded ...` with RUNS=1 for
// instruction counts) and for steady-state figures (the third and later runs). ROOT: a
// checkout with dist/ built (default: this one), so an older commit runs the same script.
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = process.argv[2] ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const runs = Number(process.argv[3] ?? 5);
const n = Number(process.argv[4] ?? 4);
const m = Number(process.argv[5] ?? 12000);
const w = await import(`${root}/dist/nodes/inprocess/workloads.js`);
const r = await import(`${root}/dist/engine/run.js`);
const ip = await import(`${root}/dist/nodes/inprocess/run.js`);
const c = await import(`${root}/dist/bench/common.js`);
class NullSink { transient_bytes = true; transient_records = true; write() {} writeFrameEmitIn() {} }
const sink = new NullSink();
for (let i = 0; i < runs; i++) {
  const config = r.makeRunConfig({ topology: c.awsLikeTopology(n), workload: w.brachaConfig({ messages_per_node: m, broadcasters: null }), seed: 1, until_ns: null });
  const { engine } = ip.createInProcessRun(config, sink);
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  const s = await engine.run();
  const wall_s = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const cpu_s = (cpu.user + cpu.system) / 1e6;
  console.log(`run ${i}: ${(s.events / wall_s / 1e6).toFixed(2)} Mev/s wall, ${(s.events / cpu_s / 1e6).toFixed(2)} Mev/s cpu, ${s.events} events`);
}
