// A sweep on Slurm: the points go in as one job array (`sbatch --array`), each task runs
// `tapsim sweep run-point DIR $SLURM_ARRAY_TASK_ID` into the shared sweep directory, and
// Slurm decides where and when. The queue is read with `squeue` (no accounting needed):
// what is pending or running there; what is done, each point's status.json says.

import { spawnSync } from "node:child_process";
import { accessSync, constants, chmodSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { InputError, RuntimeFailure } from "../engine/errors.js";
import { addSubmission, SLURM_DIR, type PlanFile, type Submission } from "./dir.js";
import { pointMemoryMib, TAPSIM_BIN } from "./local.js";

export const BATCH_SCRIPT = "run_point.sh";
/** How long sbatch and squeue may take (a busy controller answers within seconds). */
const SLURM_COMMAND_TIMEOUT_MS = 60_000;
/** Queue lines read back; more are ignored (a sweep has at most POINTS_MAX points). */
const QUEUE_LINES_MAX = 100_000;

export interface SlurmOptions {
  partition?: string;
  time?: string;
  /** At most this many tasks of the array at once (the %M of --array), or none. */
  concurrency?: number;
}

/** The path of `command` on PATH, or null. */
export function findOnPath(command: string): string | null {
  for (const dir of (process.env["PATH"] ?? "").split(path.delimiter)) {
    if (dir === "") continue;
    const file = path.join(dir, command);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return null;
}

/** Checked before the sweep directory is made: a sweep that cannot be submitted leaves nothing. */
export function requireSbatch(): void {
  if (findOnPath("sbatch") === null) throw new InputError("--on slurm: no sbatch on PATH (run where Slurm's client commands are installed, or --on local)");
}

/** Submits `points` as one array job; records it in slurm/jobs.json. */
export function submitArray(dir: string, plan: PlanFile, points: readonly number[], o: SlurmOptions): Submission {
  if (points.length === 0) throw new Error("submitArray: no points");
  const abs = path.resolve(dir);
  const slurm_dir = path.join(abs, SLURM_DIR);
  mkdirSync(slurm_dir, { recursive: true });
  const script = path.join(slurm_dir, BATCH_SCRIPT);
  writeFileSync(script, batchScript(abs, plan));
  chmodSync(script, 0o755);
  const array = `${arraySpec(points)}${o.concurrency === undefined ? "" : `%${o.concurrency}`}`;
  const args = [
    "--parsable",
    `--array=${array}`,
    `--job-name=tapsim-${plan.name}`,
    `--output=${path.join(slurm_dir, "%A_%a.out")}`,
    `--chdir=${plan.cwd}`,
    "--cpus-per-task=1",
    `--mem=${pointMemoryMib(plan)}M`,
    ...(o.partition === undefined ? [] : [`--partition=${o.partition}`]),
    ...(o.time === undefined ? [] : [`--time=${o.time}`]),
    script,
  ];
  const r = spawnSync("sbatch", args, { encoding: "utf8", timeout: SLURM_COMMAND_TIMEOUT_MS });
  if (r.error !== undefined) throw new RuntimeFailure(`sbatch: ${(r.error as NodeJS.ErrnoException).code === "ENOENT" ? "not on PATH" : r.error.message}`);
  if (r.status !== 0) throw new RuntimeFailure(`sbatch failed (exit ${r.status ?? r.signal}): ${lastLine(r.stderr) || lastLine(r.stdout) || "no message"}`);
  // --parsable: "jobid" or "jobid;cluster".
  const job_id = /^(\d+)(;\S+)?\s*$/.exec(r.stdout.trim())?.[1];
  if (job_id === undefined) throw new RuntimeFailure(`sbatch: unexpected answer ${JSON.stringify(r.stdout.trim().slice(0, 200))} (expected a job id)`);
  const submission: Submission = { job_id, points: [...points], at: new Date().toISOString() };
  addSubmission(abs, submission);
  return submission;
}

/** One task: cd where the sweep was made (relative paths in the scenario), then run the point. */
function batchScript(dir: string, plan: PlanFile): string {
  return [
    "#!/bin/sh",
    `# tapsim sweep ${plan.name}: array task K runs point K into ${dir} (a shared filesystem).`,
    `cd ${shellQuote(plan.cwd)} || exit 1`,
    `exec ${shellQuote(process.execPath)} --max-semi-space-size=32 ${shellQuote(TAPSIM_BIN)} sweep run-point ${shellQuote(dir)} "$SLURM_ARRAY_TASK_ID"`,
    "",
  ].join("\n");
}

/** 0,1,2,3,5,7,8 -> "0-3,5,7-8". */
export function arraySpec(points: readonly number[]): string {
  const sorted = [...new Set(points)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let k = 0; k < sorted.length; ) {
    let end = k;
    while (end + 1 < sorted.length && sorted[end + 1] === sorted[end]! + 1) end++;
    parts.push(end === k ? `${sorted[k]}` : `${sorted[k]}-${sorted[end]}`);
    k = end + 1;
  }
  return parts.join(",");
}

export interface QueuedTask {
  job_id: string;
  state: string;
  /** Why it waits (Priority, Resources), or the node it runs on. */
  detail: string;
}

/** The sweep's tasks still in the queue, by point; null when squeue cannot be asked. */
export function queuedTasks(job_ids: readonly string[]): Map<number, QueuedTask> | null {
  if (job_ids.length === 0 || findOnPath("squeue") === null) return null;
  const r = spawnSync("squeue", ["--noheader", "--array", `--jobs=${job_ids.join(",")}`, "--format=%F|%K|%T|%R"], { encoding: "utf8", timeout: SLURM_COMMAND_TIMEOUT_MS });
  // A job that left the queue makes squeue fail ("Invalid job id") on older versions: nothing queued.
  if (r.error !== undefined) return null;
  if (r.status !== 0) return /invalid job id/i.test(r.stderr) ? new Map() : null;
  const out = new Map<number, QueuedTask>();
  for (const line of r.stdout.split("\n").slice(0, QUEUE_LINES_MAX)) {
    const [job_id, task, state, detail] = line.trim().split("|");
    if (job_id === undefined || task === undefined || state === undefined) continue;
    // A pending array not yet split shows its tasks as a range ("0-5%2"): each is pending.
    for (const k of expandTasks(task)) out.set(k, { job_id, state, detail: detail ?? "" });
  }
  return out;
}

function expandTasks(text: string): number[] {
  const out: number[] = [];
  for (const part of text.replace(/%\d+$/, "").split(",")) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (m === null) continue;
    const from = Number(m[1]);
    const to = Number(m[2] ?? m[1]);
    for (let k = from; k <= to && out.length < QUEUE_LINES_MAX; k++) out.push(k);
  }
  return out;
}

function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

function lastLine(text: string): string {
  return text.trim().split("\n").pop()?.trim() ?? "";
}
