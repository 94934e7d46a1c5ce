// What the machine itself gives two threads, measured in the same run as a parallel benchmark.
// These machines are VMs whose two vCPUs are not always two cores: the same CPU-bound loop
// takes 0.2–0.55 s from one second to the next, and two copies at once ran 1.05–2.1x as fast
// as one after the other (measured 2026-11-30). A parallel speed-up means little without that
// figure beside it, so parallel benchmarks interleave this probe with their modes and report
// both, and the speed-up as a share of it.

import { readdirSync, readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { Worker } from "node:worker_threads";

/** Iterations of each probe's loop: ~0.15 s on these machines, short enough to interleave. */
const SPIN_ITERATIONS = { alu: 60_000_000, memory: 8_000_000 } as const;

/**
 * What the probe's threads do. alu: a register-only xorshift chain (what a core gives when
 * nothing is shared but the core itself). memory: dependent loads and data-dependent stores
 * over a 2 MiB table per thread (about the L2 size here), branching on the loaded values, like
 * an emulator's TB lookups and guest RAM: what two cores give when they share caches and memory.
 */
export type ProbeKind = keyof typeof SPIN_ITERATIONS;

// The worker waits at a barrier (Atomics.wait on word 0) so that the pair starts together, then
// spins a fixed xorshift loop and reports its own loop time (thread start-up is not counted).
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const flag = new Int32Array(workerData.sab);
// The memory probe's table, filled before the barrier (not timed): a multiplicative permutation of 2 MiB.
const table = new Int32Array(workerData.kind === "memory" ? 1 << 19 : 1);
for (let i = 0; i < table.length; i++) table[i] = Math.imul(i, 0x9e3779b1) & (table.length - 1);
Atomics.add(flag, 1, 1);
Atomics.notify(flag, 1);
Atomics.wait(flag, 0, 0);
const t0 = process.hrtime.bigint();
let x = 0x9e3779b9 | 0;
if (workerData.kind === "alu") {
  for (let i = 0; i < workerData.iterations; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; }
} else {
  const mask = table.length - 1;
  let sum = 0;
  x = 1;
  for (let i = 0; i < workerData.iterations; i++) {
    x = table[x];
    if (x & 1) sum = (sum + x) | 0; else table[Math.imul(x, 7) & mask] ^= sum;
    x = (x + i) & mask;
  }
  x ^= sum;
}
parentPort.postMessage({ s: Number(process.hrtime.bigint() - t0) / 1e9, x });
`;

/** Runs `threads` spinners at once; the wall seconds until the last one finished its loop. */
async function spin(threads: number, kind: ProbeKind): Promise<number> {
  if (threads < 1 || threads > 8) throw new Error(`spin: threads ${threads} out of 1..8`);
  const sab = new SharedArrayBuffer(8);
  const flag = new Int32Array(sab);
  const workers = Array.from({ length: threads }, () => new Worker(WORKER_SOURCE, { eval: true, workerData: { sab, kind, iterations: SPIN_ITERATIONS[kind] } }));
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
export async function twoThreadSpeedup(kind: ProbeKind = "alu"): Promise<number> {
  const alone_s = await spin(1, kind);
  const pair_s = await spin(2, kind);
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

/**
 * Seconds a live process's threads have spent runnable but waiting for a CPU (the second
 * field of each /proc/<pid>/task/<tid>/schedstat); 0 once it is gone. Waiting while a core
 * idles means the kernel placed threads badly; no waiting while a core idles means nothing
 * was runnable (the schedule, not the kernel, left the core idle).
 */
export function processRunDelayS(pid: number): number {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0;
  }
  let delay_ns = 0;
  for (const tid of tids) {
    try {
      delay_ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[1]);
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return delay_ns / 1e9;
}

/** Idle seconds of all CPUs together so far (/proc/stat's idle and iowait columns). */
export function machineIdleS(): number {
  const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/);
  if (cpu[0] !== "cpu") throw new Error("/proc/stat: no cpu line first");
  return (Number(cpu[4]) + Number(cpu[5])) / CLOCK_TICKS_PER_S;
}
