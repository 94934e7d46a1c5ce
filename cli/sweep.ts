// `tapsim sweep SWEEP.yaml`: a scenario run at every point of a grid (or a list), each
// point its own run directory, all merged into one table and plots. Locally (`--jobs N`
// processes) or as one Slurm job array (`--on slurm`); `status`, `collect` and `resubmit`
// work on the sweep directory either way, since each point records how it went there.

import { hostname } from "node:os";
import path from "node:path";
import type { Command } from "commander";
import { INFLIGHT_FRAMES_MAX_DEFAULT } from "../engine/engine.js";
import { InputError, oneLine, RuntimeFailure } from "../engine/errors.js";
import { readInputText } from "../engine/input_file.js";
import { MEMORY_MIB_DEFAULT, RTC_BASE_DEFAULT, SSH_PORT_BASE_DEFAULT } from "../qmp/vm_cluster.js";
import { parseScenario } from "../scenario/parse.js";
import { clearPointOutputs, POINT_SCENARIO_FILE, readPlanFile, readPointStatus, readSubmissions, SLURM_DIR, writePointStatus, writeSweepDir, type PlanFile, type PlanPoint, type PointStatus, type SweepOn } from "../sweep/dir.js";
import { boundJobs, runLocal } from "../sweep/local.js";
import { formatMergedTable, mergeSweep, MERGED_CSV, writeMerged, type Merged } from "../sweep/merge.js";
import { loadSweepFile } from "../sweep/plan.js";
import { writePlots } from "../sweep/plot.js";
import { queuedTasks, requireSbatch, submitArray, type SlurmOptions } from "../sweep/slurm.js";
import { integerListOption, integerOption } from "./options.js";
import { makeRunDir, runScenario } from "./run_scenario.js";

const DEFAULTS = { memory_mib: MEMORY_MIB_DEFAULT, rtc_base: RTC_BASE_DEFAULT };

interface StartFlags {
  jobs?: number;
  on: string;
  dir?: string;
  partition?: string;
  time?: string;
  progress: boolean;
}

export function registerSweep(program: Command, setExit: (code: number) => void): void {
  const sweep = program
    .command("sweep")
    .description("run a scenario at every point of a grid, locally (--jobs N) or as a Slurm job array (--on slurm), and merge the results");
  sweep
    .command("start", { isDefault: true })
    .description("run a sweep file's points (the default: tapsim sweep SWEEP.yaml [options]); tapsim sweep start --help for the options")
    .argument("<sweep>", "sweep file (.yaml): scenario: FILE, grid: {path: [values]} and/or points: [{path: value}] (scenarios/README.md)")
    .option("--on <where>", "local (points as processes here) or slurm (one sbatch --array job)", "local")
    .option("-j, --jobs <n>", "local: points at once (bounded by cores and free memory; default 1); slurm: tasks at once (%N; default: as Slurm decides)", integerOption("--jobs", 1, 4096))
    .option("-d, --dir <dir>", "sweep directory (new or empty; default runs/<name>, never overwritten); with --on slurm on a filesystem every node sees")
    .option("--partition <p>", "slurm: partition to submit to")
    .option("--time <t>", "slurm: time limit of each task (sbatch --time: 30:00, 1-0)")
    .option("--no-progress", "no progress line on stderr")
    .action(async (file: string, flags: StartFlags) => setExit(await startSweep(file, flags)));
  sweep
    .command("status")
    .description("how far a sweep got: each point pending, running, ok or failed (with its error)")
    .argument("<dir>", "sweep directory")
    .option("--json", "as JSON", false)
    .action((dir: string, flags: { json: boolean }) => setExit(showStatus(dir, flags.json)));
  sweep
    .command("collect")
    .description("merge the finished points' results: sweep.csv, sweep.json, plots/*.svg and a table")
    .argument("<dir>", "sweep directory")
    .option("--json", "print sweep.json instead of the table", false)
    .action(async (dir: string, flags: { json: boolean }) => setExit(await collect(dir, flags.json)));
  sweep
    .command("resubmit")
    .description("run the failed points again (locally also those never started), or those listed, the way the sweep ran: locally or as a new Slurm array")
    .argument("<dir>", "sweep directory")
    .option("--points <list>", "comma-separated point numbers (default: every failed one)", integerListOption("--points"))
    .option("-j, --jobs <n>", "as for a sweep", integerOption("--jobs", 1, 4096))
    .option("--partition <p>", "slurm: partition to submit to")
    .option("--time <t>", "slurm: time limit of each task")
    .option("--no-progress", "no progress line on stderr")
    .action(async (dir: string, flags: Omit<StartFlags, "on" | "dir"> & { points?: number[] }) => setExit(await resubmit(dir, flags)));
  sweep
    .command("run-point", { hidden: true })
    .description("run one point of a sweep directory (what each local process and Slurm task runs)")
    .argument("<dir>", "sweep directory")
    .argument("<point>", "point number", integerOption("<point>", 0))
    .action(async (dir: string, point: number) => setExit(await runPoint(dir, point)));
}

// ---------------------------------------------------------------------------------------
// start, resubmit

async function startSweep(file: string, flags: StartFlags): Promise<number> {
  const on = parseOn(flags.on);
  // Every point parsed and the submitter found before a file is written.
  const plan = loadSweepFile(file, DEFAULTS);
  if (on === "slurm") requireSbatch();
  const dir = makeRunDir(flags.dir, plan.name, "--dir");
  const plan_file = writeSweepDir(dir, plan, on);
  console.error(`tapsim sweep: ${plan.points.length} point${plan.points.length === 1 ? "" : "s"} of ${plan.scenario_source} -> ${dir}`);
  return await runPoints(dir, plan_file, plan_file.points, flags);
}

async function resubmit(dir: string, flags: Omit<StartFlags, "on" | "dir"> & { points?: number[] }): Promise<number> {
  const plan = readPlanFile(dir);
  let points: PlanPoint[];
  if (flags.points !== undefined) {
    points = flags.points.map((k) => plan.points.find((p) => p.index === k) ?? fail(`--points: no point ${k} (the sweep has 0..${plan.points.length - 1})`));
  } else {
    // Locally, a point without a status never ran (the sweep was interrupted); on Slurm it may still be queued.
    const again = (s: PointStatus | null) => s?.state === "failed" || (s === null && plan.on === "local");
    points = plan.points.filter((p) => again(readPointStatus(dir, p)));
    if (points.length === 0) throw new InputError(`${dir}: no failed points (name others with --points)`);
  }
  if (plan.on === "slurm") requireSbatch();
  for (const p of points) clearPointOutputs(dir, p); // queued again: no stale failure in status
  console.error(`tapsim sweep: resubmitting point${points.length === 1 ? "" : "s"} ${points.map((p) => p.index).join(",")}`);
  return await runPoints(dir, plan, points, { ...flags, on: plan.on });
}

async function runPoints(dir: string, plan: PlanFile, points: PlanPoint[], flags: StartFlags): Promise<number> {
  if (plan.on === "slurm") {
    const o: SlurmOptions = { ...(flags.partition === undefined ? {} : { partition: flags.partition }), ...(flags.time === undefined ? {} : { time: flags.time }), ...(flags.jobs === undefined ? {} : { concurrency: flags.jobs }) };
    const s = submitArray(dir, plan, points.map((p) => p.index), o);
    console.log(`submitted job ${s.job_id}: array of ${points.length} task(s); follow with: tapsim sweep status ${dir}; merge with: tapsim sweep collect ${dir}`);
    return 0;
  }
  if (flags.partition !== undefined || flags.time !== undefined) throw new InputError("--partition and --time apply only to --on slurm");
  const { jobs, why } = boundJobs(flags.jobs ?? 1, plan);
  if (why !== null) console.error(`tapsim sweep: --jobs ${flags.jobs}: ${jobs} at a time (${why})`);
  const { interrupted } = await runLocal({ dir, plan, points, jobs, progress: flags.progress });
  const merged = await mergeAndWrite(dir, plan);
  process.stdout.write(formatMergedTable(merged));
  console.log(`results: ${path.join(dir, MERGED_CSV)} (tapsim sweep collect ${dir})`);
  if (interrupted) {
    console.error(`tapsim: sweep interrupted; finished points kept in ${dir} (tapsim sweep resubmit ${dir} runs the others)`);
    return 130;
  }
  return merged.counts.failed > 0 || merged.counts.pending > 0 ? 1 : 0;
}

function parseOn(text: string): SweepOn {
  if (text !== "local" && text !== "slurm") throw new InputError(`--on ${JSON.stringify(text)}: expected local or slurm`);
  return text;
}

function fail(message: string): never {
  throw new InputError(message);
}

// ---------------------------------------------------------------------------------------
// status, collect

async function mergeAndWrite(dir: string, plan: PlanFile): Promise<Merged> {
  const merged = mergeSweep(dir, plan);
  writeMerged(dir, merged);
  await writePlots(dir, merged);
  return merged;
}

async function collect(dir: string, json: boolean): Promise<number> {
  const plan = readPlanFile(dir);
  const merged = await mergeAndWrite(dir, plan);
  if (json) process.stdout.write(`${JSON.stringify(merged, null, 2)}\n`);
  else process.stdout.write(formatMergedTable(merged));
  return merged.counts.failed > 0 ? 1 : 0;
}

interface PointView {
  point: number;
  dir: string;
  state: string;
  /** The error, the queue's reason, where it runs. */
  detail: string;
  job_id: string | null;
}

function showStatus(dir: string, json: boolean): number {
  const plan = readPlanFile(dir);
  const views = pointViews(dir, plan);
  const counts: Record<string, number> = {};
  for (const v of views) counts[v.state] = (counts[v.state] ?? 0) + 1;
  if (json) {
    process.stdout.write(`${JSON.stringify({ dir, on: plan.on, counts, points: views }, null, 2)}\n`);
    return 0;
  }
  const summary = Object.entries(counts).map(([state, n]) => `${n} ${state}`).join(", ");
  console.log(`sweep ${plan.name} (${plan.on}): ${views.length} points: ${summary}`);
  for (const v of views) console.log(`  ${String(v.point).padStart(4)}  ${v.state.padEnd(8)}  ${v.dir}${v.detail === "" ? "" : `  ${v.detail}`}`);
  return 0;
}

/** Each point as its status file says, and for those without an end, as the Slurm queue says. */
function pointViews(dir: string, plan: PlanFile): PointView[] {
  const latest = new Map<number, string>();
  for (const s of readSubmissions(dir)) for (const k of s.points) latest.set(k, s.job_id);
  const queue = plan.on === "slurm" ? queuedTasks([...new Set(latest.values())]) : null;
  return plan.points.map((p) => {
    const status = readPointStatus(dir, p);
    const job_id = latest.get(p.index) ?? null;
    const queued = queue?.get(p.index);
    const task = queued !== undefined && queued.job_id === job_id ? queued : undefined;
    return { point: p.index, dir: p.dir, job_id, ...stateOf(status, task, queue !== null, job_id, p) };
  });
}

function stateOf(status: PointStatus | null, task: { state: string; detail: string } | undefined, queue_known: boolean, job_id: string | null, p: PlanPoint): { state: string; detail: string } {
  const log = job_id === null ? "" : ` (see ${path.join(SLURM_DIR, `${job_id}_${p.index}.out`)})`;
  if (status?.state === "ok") return { state: "ok", detail: status.wall_s === null ? "" : `${status.wall_s.toFixed(1)} s on ${status.host}` };
  if (status?.state === "failed") return { state: "failed", detail: status.error ?? `exit ${status.exit_code}` };
  if (status?.state === "running") {
    if (queue_known && task === undefined) return { state: "lost", detail: `its task left the queue while it ran${log}` };
    return { state: "running", detail: `on ${status.host} since ${status.started_at}` };
  }
  if (task !== undefined) return { state: task.state === "RUNNING" ? "starting" : "pending", detail: `${task.state.toLowerCase()} (${task.detail})` };
  if (queue_known) return { state: "lost", detail: `not in the queue and never started${log}` };
  return { state: "pending", detail: job_id === null ? "" : `job ${job_id}` };
}

// ---------------------------------------------------------------------------------------
// one point

/**
 * Runs point `k` into its directory and records how it went in its status.json, whatever
 * happens (an error is recorded, then reported as any command's: one line, exit 2 or 1).
 */
async function runPoint(dir_arg: string, k: number): Promise<number> {
  const dir = path.resolve(dir_arg);
  const plan = readPlanFile(dir);
  const point = plan.points.find((p) => p.index === k) ?? fail(`${dir}: no point ${k} (the sweep has 0..${plan.points.length - 1})`);
  try {
    process.chdir(plan.cwd); // the scenario's relative paths, as when the sweep was made
  } catch (err) {
    throw new RuntimeFailure(`${plan.cwd}: cannot work in the sweep's directory on ${hostname()}: ${(err as Error).message}`);
  }
  clearPointOutputs(dir, point);
  const job = process.env["SLURM_ARRAY_JOB_ID"];
  const base: PointStatus = { state: "running", exit_code: null, error: null, started_at: new Date().toISOString(), ended_at: null, wall_s: null, host: hostname(), slurm: job === undefined ? null : { job_id: job, task_id: k } };
  writePointStatus(dir, point, base);
  const started_ms = Date.now();
  const end = (state: "ok" | "failed", exit_code: number, error: string | null) =>
    writePointStatus(dir, point, { ...base, state, exit_code, error, ended_at: new Date().toISOString(), wall_s: (Date.now() - started_ms) / 1000 });
  try {
    const text = readInputText(path.join(dir, point.dir, POINT_SCENARIO_FILE));
    const scenario = parseScenario(text, plan.scenario_source, DEFAULTS);
    const run = await runScenario(scenario, path.join(dir, point.dir), { json: false, progress: false, sshPortBase: SSH_PORT_BASE_DEFAULT, sshTimeout: 300_000, mgmtNet: "10.254", inflightMax: INFLIGHT_FRAMES_MAX_DEFAULT });
    end(run.code === 0 ? "ok" : "failed", run.code, run.failure);
    return run.code;
  } catch (err) {
    end("failed", err instanceof InputError ? 2 : 1, oneLine(err instanceof Error ? err.message : String(err)));
    throw err;
  }
}
