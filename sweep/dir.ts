// A sweep directory, the one thing local runs, Slurm tasks, `status` and `collect` share
// (on a shared filesystem for Slurm):
//   plan.json                    what to run: the points, their values, where from
//   sweep.yaml                   a copy of the sweep file
//   points/<k>-<slug>/           one scenario run directory per point:
//     scenario.yaml              the point's concrete scenario (values applied)
//     status.json                running / ok / failed, with the error in one line
//     trace.tapsim, results.*    as `tapsim run` writes them
//   slurm/jobs.json, *.out       submissions (job ids, which points) and the tasks' output
//   sweep.csv, sweep.json, plots/  the merged results (`tapsim sweep collect`)

import { existsSync, readFileSync, rmSync, writeFileSync, mkdirSync, copyFileSync } from "node:fs";
import path from "node:path";
import { fsErrorText, InputError } from "../engine/errors.js";
import { writeOutput } from "../recorder/output_file.js";
import { RESULT_FILES } from "../scenario/output.js";
import type { SweepPlan } from "./plan.js";

export const PLAN_FILE = "plan.json";
export const STATUS_FILE = "status.json";
export const POINT_SCENARIO_FILE = "scenario.yaml";
export const POINT_LOG_FILE = "log.txt";
export const SLURM_DIR = "slurm";
export const JOBS_FILE = "jobs.json";
/** Submissions kept in jobs.json: each resubmission adds one. */
const SUBMISSIONS_MAX = 1000;

export type SweepOn = "local" | "slurm";

export interface PlanPoint {
  index: number;
  dir: string;
  values: Record<string, unknown>;
}

export interface PlanFile {
  format: "tapsim-sweep-plan";
  format_version: 1;
  name: string;
  sweep_source: string;
  /** As the points parse it, from `cwd`: relative paths in it resolve against its folder. */
  scenario_source: string;
  cwd: string;
  on: SweepOn;
  kind: "vm" | "inprocess";
  node_count: number;
  vm_memory_mib: number | null;
  params: string[];
  points: PlanPoint[];
}

export type PointState = "running" | "ok" | "failed";

export interface PointStatus {
  state: PointState;
  exit_code: number | null;
  /** One line: why it failed. */
  error: string | null;
  started_at: string;
  ended_at: string | null;
  wall_s: number | null;
  host: string;
  slurm: { job_id: string; task_id: number } | null;
}

export interface Submission {
  job_id: string;
  points: number[];
  at: string;
}

/** Writes plan.json, a copy of the sweep file and each point's scenario into `dir` (new or empty). */
export function writeSweepDir(dir: string, plan: SweepPlan, on: SweepOn): PlanFile {
  const file: PlanFile = {
    format: "tapsim-sweep-plan",
    format_version: 1,
    name: plan.name,
    sweep_source: path.resolve(plan.source),
    scenario_source: plan.scenario_source,
    cwd: process.cwd(),
    on,
    kind: plan.first.workload === null ? "vm" : "inprocess",
    node_count: plan.first.topology.node_names.length,
    vm_memory_mib: plan.first.vm?.memory_mib ?? null,
    params: plan.params.map((p) => p.path),
    points: plan.points.map((p) => ({ index: p.index, dir: p.dir, values: p.values })),
  };
  try {
    copyFileSync(plan.source, path.join(dir, "sweep.yaml"));
    for (const p of plan.points) {
      mkdirSync(path.join(dir, p.dir), { recursive: true });
      writeFileSync(path.join(dir, p.dir, POINT_SCENARIO_FILE), p.text);
    }
  } catch (err) {
    throw new InputError(`${dir}: cannot write the sweep directory: ${fsErrorText(err)}`);
  }
  writeJson(path.join(dir, PLAN_FILE), file);
  return file;
}

export function readPlanFile(dir: string): PlanFile {
  const file = path.join(dir, PLAN_FILE);
  if (!existsSync(file)) throw new InputError(`${dir}: not a sweep directory (no ${PLAN_FILE}; tapsim sweep SWEEP.yaml makes one)`);
  const plan = readJson(file) as PlanFile;
  if (plan?.format !== "tapsim-sweep-plan" || plan.format_version !== 1 || !Array.isArray(plan.points)) throw new InputError(`${file}: not a tapsim sweep plan (format_version 1)`);
  return plan;
}

/** The point's status, or null when it has none (not run yet, or queued again). */
export function readPointStatus(dir: string, point: PlanPoint): PointStatus | null {
  const file = path.join(dir, point.dir, STATUS_FILE);
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, "utf8")) as PointStatus;
  } catch {
    // Written whole through a rename: unreadable only when someone else wrote it.
    return { state: "failed", exit_code: null, error: `${file}: unreadable status file`, started_at: "", ended_at: null, wall_s: null, host: "", slurm: null };
  }
}

export function writePointStatus(dir: string, point: PlanPoint, status: PointStatus): void {
  writeJson(path.join(dir, point.dir, STATUS_FILE), status);
}

/** What an earlier run of the point left (trace, results, status): a run starts from its scenario alone. */
export function clearPointOutputs(dir: string, point: PlanPoint): void {
  const base = path.join(dir, point.dir);
  for (const name of ["trace.tapsim", STATUS_FILE, ...RESULT_FILES]) rmSync(path.join(base, name), { force: true });
  rmSync(path.join(base, "collected"), { recursive: true, force: true });
}

export function readSubmissions(dir: string): Submission[] {
  const file = path.join(dir, SLURM_DIR, JOBS_FILE);
  if (!existsSync(file)) return [];
  const jobs = readJson(file) as { submissions?: Submission[] };
  return Array.isArray(jobs.submissions) ? jobs.submissions : [];
}

export function addSubmission(dir: string, submission: Submission): void {
  const submissions = [...readSubmissions(dir), submission].slice(-SUBMISSIONS_MAX);
  writeJson(path.join(dir, SLURM_DIR, JOBS_FILE), { submissions });
}

export function writeJson(file: string, value: unknown): void {
  writeOutput(file, (out) => out.write(`${JSON.stringify(value, null, 2)}\n`));
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new InputError(`${file}: ${err instanceof SyntaxError ? "not JSON" : fsErrorText(err)}`);
  }
}
