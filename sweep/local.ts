// Runs a sweep's points on this machine, at most `jobs` at a time, each as its own
// `tapsim sweep run-point DIR K` process (as a Slurm task runs it): a VM point owns its
// signal handling and its QEMUs, and a point that dies takes nothing else with it. A
// progress line on a terminal; Ctrl+C stops the running points (each finalises its trace)
// and keeps what finished.

import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { availableParallelism, freemem } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { RuntimeFailure } from "../engine/errors.js";
import { POINT_LOG_FILE, readPointStatus, writePointStatus, type PlanFile, type PlanPoint } from "./dir.js";

export const TAPSIM_BIN = fileURLToPath(new URL("../../bin/tapsim.js", import.meta.url));
/** A VM's resident memory in a run (guest memory is its ceiling, QEMU adds to it). */
const VM_RSS_MIB_MIN = 300;
const VM_RSS_OVERHEAD_MIB = 64;
/** The engine process of a point, beside its VMs. */
const POINT_PROCESS_MIB = 200;
const PROGRESS_INTERVAL_MS = 500;
const MIB = 1024 * 1024;

/** Memory one point needs at most: its VMs and its engine process. */
export function pointMemoryMib(plan: PlanFile): number {
  if (plan.kind !== "vm") return POINT_PROCESS_MIB;
  return plan.node_count * Math.max(VM_RSS_MIB_MIN, (plan.vm_memory_mib ?? 0) + VM_RSS_OVERHEAD_MIB) + POINT_PROCESS_MIB;
}

/** --jobs bounded by the cores and, for VM points, by the memory free now. */
export function boundJobs(asked: number, plan: PlanFile): { jobs: number; why: string | null } {
  const cores = availableParallelism();
  const by_memory = Math.max(1, Math.floor(freemem() / MIB / pointMemoryMib(plan)));
  const jobs = Math.max(1, Math.min(asked, cores, by_memory, plan.points.length));
  if (jobs >= Math.min(asked, plan.points.length)) return { jobs, why: null };
  const why = jobs === by_memory && by_memory < cores ? `${Math.floor(freemem() / MIB)} MiB free, ${pointMemoryMib(plan)} MiB a point` : `${cores} cores`;
  return { jobs, why };
}

export interface LocalOptions {
  dir: string;
  plan: PlanFile;
  points: readonly PlanPoint[];
  jobs: number;
  progress: boolean;
}

interface Running {
  point: PlanPoint;
  child: ChildProcess;
  log_fd: number;
  started_ms: number;
}

/** Runs the points; resolves when all have ended, or the running ones after Ctrl+C (interrupted: true). */
export async function runLocal(o: LocalOptions): Promise<{ interrupted: boolean }> {
  const queue = [...o.points];
  const running = new Map<number, Running>();
  const stats = { done: 0, failed: 0, wall_ms_sum: 0 };
  const tty = o.progress && process.stderr.isTTY === true;
  let interrupted = false;
  const ended: Running[] = [];
  let wake: (() => void) | null = null;
  const onEnd = (r: Running) => {
    ended.push(r);
    wake?.();
  };
  const onSignal = () => {
    interrupted = true;
    queue.length = 0;
    for (const r of running.values()) r.child.kill("SIGTERM");
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const draw = () => process.stderr.write(`\r\x1b[K${progressText(o.points.length, stats, running.size, o.jobs)}`);
  const timer = tty ? setInterval(draw, PROGRESS_INTERVAL_MS) : null;
  try {
    // Each turn starts points up to `jobs`, then takes one that ended: points.length + 1 turns at most.
    for (let turn = 0; turn <= o.points.length + 1; turn++) {
      while (running.size < o.jobs && queue.length > 0) {
        const r = start(o, queue.shift()!, onEnd);
        running.set(r.point.index, r);
      }
      if (running.size === 0) break;
      while (ended.length === 0) await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
      const done = ended.shift()!;
      running.delete(done.point.index);
      const ok = finish(o, done);
      stats.done += 1;
      stats.failed += ok ? 0 : 1;
      stats.wall_ms_sum += Date.now() - done.started_ms;
      if (tty) draw();
      else if (!ok || !o.progress) continue;
      else process.stderr.write(`sweep: point ${done.point.index} ok (${((Date.now() - done.started_ms) / 1000).toFixed(1)} s), ${stats.done}/${o.points.length} done\n`);
    }
  } finally {
    if (timer !== null) clearInterval(timer);
    if (tty) process.stderr.write("\r\x1b[K");
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  return { interrupted };
}

function start(o: LocalOptions, point: PlanPoint, onEnd: (r: Running) => void): Running {
  const log = path.join(o.dir, point.dir, POINT_LOG_FILE);
  let log_fd: number;
  try {
    log_fd = openSync(log, "w");
  } catch (err) {
    throw new RuntimeFailure(`${log}: cannot write the point's log: ${(err as Error).message}`);
  }
  // In this process group: Ctrl+C at the terminal reaches the points too; a SIGTERM to this
  // process is passed on (onSignal). A point asked twice to stop still finalises its trace.
  const child = spawn(process.execPath, ["--max-semi-space-size=32", TAPSIM_BIN, "sweep", "run-point", path.resolve(o.dir), String(point.index)], {
    cwd: o.plan.cwd,
    stdio: ["ignore", log_fd, log_fd],
  });
  child.on("error", () => {}); // reported through 'close' and the missing status
  const r: Running = { point, child, log_fd, started_ms: Date.now() };
  child.once("close", () => onEnd(r));
  return r;
}

/** The point's status (written by the point; written here when it died without one); true when ok. */
function finish(o: LocalOptions, r: Running): boolean {
  closeSync(r.log_fd);
  const status = readPointStatus(o.dir, r.point);
  if (status !== null && status.state !== "running") {
    if (status.state === "failed" && o.progress) process.stderr.write(`${process.stderr.isTTY ? "\r\x1b[K" : ""}sweep: point ${r.point.index} failed: ${status.error}\n`);
    return status.state === "ok";
  }
  const how = r.child.exitCode !== null ? `exit code ${r.child.exitCode}` : `signal ${r.child.signalCode}`;
  const error = `the point's process ended (${how}) without recording how it went (log: ${path.join(r.point.dir, POINT_LOG_FILE)})`;
  writePointStatus(o.dir, r.point, { state: "failed", exit_code: r.child.exitCode, error, started_at: status?.started_at ?? "", ended_at: new Date().toISOString(), wall_s: (Date.now() - r.started_ms) / 1000, host: status?.host ?? "", slurm: null });
  if (o.progress) process.stderr.write(`sweep: point ${r.point.index} failed: ${error}\n`);
  return false;
}

function progressText(total: number, s: { done: number; failed: number; wall_ms_sum: number }, running: number, jobs: number): string {
  const width = 20;
  const filled = Math.round((s.done / Math.max(1, total)) * width);
  const bar = `${"#".repeat(filled)}${"-".repeat(width - filled)}`;
  const left = total - s.done;
  const eta = s.done === 0 ? "?" : formatSeconds(((s.wall_ms_sum / s.done) * left) / jobs / 1000);
  return `sweep [${bar}] ${s.done}/${total} done, ${s.failed} failed, ${running} running, ETA ${eta}`;
}

function formatSeconds(s: number): string {
  if (s < 60) return `${Math.ceil(s)}s`;
  return `${Math.floor(s / 60)}m${String(Math.ceil(s % 60)).padStart(2, "0")}s`;
}
