// What the machine itself gives two threads, measured in the same run as a parallel benchmark.
// These machines are VMs whose two vCPUs are not always two cores: the same CPU-bound loop
// takes 0.2–0.55 s from one second to the next, and two copies at once ran 1.05–2.1x as fast
// as one after the other (measured 2026-11-30). A parallel speed-up means little without that
// figure beside it, so parallel benchmarks interleave this probe with their modes and report
// both, and the speed-up as a share of it.

import { readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { Worker } from "node:worker_threads";

/** Iterations of the probe's loop: ~0.15 s on these machines, short enough to interleave. */
const SPIN_ITERATIONS = 60_000_000;

// The worker waits at a barrier (Atomics.wait on word 0) so that the pair starts together, then
// spins a fixed xorshift loop and reports its own loop time (thread start-up is not counted).
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const flag = new Int32Array(workerData.sab);
Atomics.add(flag, 1, 1);
Atomics.notify(flag, 1);
Atomics.wait(flag, 0, 0);
const t0 = process.hrtime.bigint();
let x = 0x9e3779b9 | 0;
for (let i = 0; i < workerData.iterations; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; }
parentPort.postMessage({ s: Number(process.hrtime.bigint() - t0) / 1e9, x });
`;

/** Runs `threads` spinners at once; the wall seconds until the last one finished its loop. */
async function spin(threads: number): Promise<number> {
  if (threads < 1 || threads > 8) throw new Error(`spin: threads ${threads} out of 1..8`);
  const sab = new SharedArrayBuffer(8);
  const flag = new Int32Array(sab);
  const workers = Array.from({ length: threads }, () => new Worker(WORKER_SOURCE, { eval: true, workerData: { sab, iterations: SPIN_ITERATIONS } }));
  const done = workers.map((w) => new Promise<number>((resolve, reject) => {
    w.once("message", (m: { s: number }) => resolve(m.s));
    w.once("error", reject);
  }));
  for (let waits = 0; Atomics.load(flag, 1) < threads; waits++) {
    if (waits > 10_000) throw new Error("spin: workers did not start");
    await new Promise((r) => setTimeout(r, 1));
  }
  const t0 = process.hrtime.bigint();
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
  const loop_s = await Promise.all(done);
  const wall_s = Number(process.hrtime.bigint() - t0) / 1e9;
  await Promise.all(workers.map((w) => w.terminate()));
  // The pair's wall time is its slower thread's; a thread that started late would show up here.
  return Math.max(wall_s, ...loop_s);
}

/**
 * The machine's two-thread speed-up right now: one spinner alone, then two at once, the same
 * work each; 2 · alone / pair. 2.0 on two free cores, ~1.0 when the host gives this VM one.
 */
export async function twoThreadSpeedup(): Promise<number> {
  const alone_s = await spin(1);
  const pair_s = await spin(2);
  return (2 * alone_s) / pair_s;
}

const CLOCK_TICKS_PER_S = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());

/** CPU seconds (user + system, all threads) a live process has used so far; 0 once it is gone. */
export function processCpuS(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return 0;
  }
  // Fields after the command name (which may hold spaces) start at state; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S;
}

/** CPU seconds this process has used so far (the engine's Node thread and its helpers). */
export function ownCpuS(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}
