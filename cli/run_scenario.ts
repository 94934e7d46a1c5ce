// `tapsim run SCENARIO.yaml`: one file says what runs where and when; one command runs it
// into a run directory (trace, a copy of the scenario, collected files, results) and prints
// the results. VM scenarios go through the VM run (cli/run_vms.ts) with the scenario's
// controller around each node; in-process ones through the in-process run. Both use the
// one run lifecycle (cli/run_lifecycle.ts).

import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { RunSummary } from "../engine/engine.js";
import { fsErrorText, InputError } from "../engine/errors.js";
import { makeRunConfig, SLICE_LEN_MAX_DEFAULT_NS } from "../engine/run.js";
import type { RunConfig } from "../engine/trace_records.js";
import { formatVirtualNs } from "../engine/units.js";
import { inProcessBackends } from "../nodes/inprocess/run.js";
import type { Workload } from "../nodes/inprocess/workloads.js";
import { validateWorkload } from "../nodes/inprocess/workloads.js";
import { MEMORY_MIB_DEFAULT, RTC_BASE_DEFAULT } from "../qmp/vm_cluster.js";
import type { VmBackend } from "../qmp/vm_backend.js";
import { ScenarioController, type AgentNode, type CollectedFile } from "../scenario/controller.js";
import { loadScenarioFile, type Scenario } from "../scenario/parse.js";
import { writeReport } from "../scenario/report.js";
import { computeResults, formatResultsTable, writeResults, type RunResults } from "../scenario/results.js";
import { executeRun, runExitCode, type RunOutcome } from "./run_lifecycle.js";
import { prepareVmRun, vmRunOptions, type VmRunFlags } from "./run_vms.js";

export const TRACE_FILE = "trace.tapsim";
const RUN_DIRS_MAX = 10_000;

export interface ScenarioRunFlags {
  out?: string;
  json: boolean;
  progress: boolean;
  sshPortBase: number;
  sshTimeout: number;
  mgmtNet: string;
  pace?: string;
  inflightMax: number;
  parallel?: boolean;
}

export async function runScenarioCommand(file: string, flags: ScenarioRunFlags): Promise<number> {
  const scenario = loadScenarioFile(file, { memory_mib: MEMORY_MIB_DEFAULT, rtc_base: RTC_BASE_DEFAULT });
  const run_dir = makeRunDir(flags.out, scenario.name);
  copyFileSync(scenario.source, path.join(run_dir, "scenario.yaml"));
  return (await runScenario(scenario, run_dir, flags)).code;
}

/** How a scenario run went: its exit code, and why it failed in one line (null: it did not). */
export interface ScenarioRunEnd {
  code: number;
  failure: string | null;
  results: RunResults;
}

/**
 * Runs a parsed scenario into `run_dir` (which exists; scenario.yaml is the caller's to
 * write) and prints its results. A sweep's points run through here too (cli/sweep.ts).
 */
export async function runScenario(scenario: Scenario, run_dir: string, flags: ScenarioRunFlags): Promise<ScenarioRunEnd> {
  const trace_path = path.join(run_dir, TRACE_FILE);
  log(flags, `tapsim run: scenario ${scenario.source} -> ${run_dir}`);
  const { outcome, collected } = scenario.workload !== null ? await runInProcess(scenario, flags, trace_path) : await runVms(scenario, flags, trace_path);
  writeCollected(run_dir, scenario, collected);
  const results = await computeResults(trace_path);
  writeResults(run_dir, results);
  await writeReport(run_dir, results);
  print(flags, outcome.summary, results, run_dir);
  for (const failure of outcome.failures) console.error(`tapsim: ${failure}; run stopped at t=${formatVirtualNs(outcome.summary.end_ns)}, results in ${run_dir}`);
  const code = runExitCode(outcome);
  if (code !== 0) return { code, failure: outcome.failures[0] ?? `interrupted at t=${formatVirtualNs(outcome.summary.end_ns)}`, results };
  // A command lost with its node to a scheduled poweroff did what the scenario asked.
  const failed = results.commands.filter((c) => !c.ok && c.status !== "lost");
  if (failed.length === 0) return { code: 0, failure: null, results };
  console.error(`tapsim: ${failed.length} of ${results.commands.length} commands did not succeed (${path.join(run_dir, "results.txt")})`);
  const which = failed.slice(0, 3).map((c) => `${c.id}: ${c.result}`).join(", ");
  return { code: 1, failure: `${failed.length} of ${results.commands.length} commands did not succeed (${which}${failed.length > 3 ? ", ..." : ""})`, results };
}

/** --out DIR (new or empty), else runs/<name>, runs/<name>-2, ...: a run never overwrites another. */
export function makeRunDir(out: string | undefined, name: string, flag = "--out"): string {
  if (out !== undefined) {
    if (existsSync(out) && readdirSync(out).length > 0) throw new InputError(`${flag} ${out}: not empty (a run never overwrites another's results)`);
    return mkdir(out);
  }
  for (let k = 1; k <= RUN_DIRS_MAX; k++) {
    const dir = path.join("runs", k === 1 ? name : `${name}-${k}`);
    if (!existsSync(dir)) return mkdir(dir);
  }
  throw new InputError(`runs/: ${RUN_DIRS_MAX} runs of ${name} already; give ${flag}`);
}

function mkdir(dir: string): string {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new InputError(`${dir}: cannot create the run directory: ${fsErrorText(err)}`);
  }
  return dir;
}

function baseConfig(scenario: Scenario, flags: ScenarioRunFlags, until_ns: number | null): RunConfig {
  const config = makeRunConfig({
    topology: scenario.topology,
    workload: scenario.workload,
    seed: scenario.seed,
    until_ns,
    slice_len_max_ns: scenario.slice_max_ns ?? SLICE_LEN_MAX_DEFAULT_NS,
    inflight_frames_max: flags.inflightMax,
    parallel: flags.parallel,
  });
  config.faults = scenario.faults;
  config.scenario = scenario.run;
  return config;
}

async function runInProcess(scenario: Scenario, flags: ScenarioRunFlags, trace_path: string): Promise<{ outcome: RunOutcome; collected: CollectedFile[] }> {
  const config = baseConfig(scenario, flags, scenario.until_ns);
  validateWorkload(config.workload!, config.nodes.length);
  let workload: Workload | null = null;
  const outcome = await executeRun({
    config,
    trace_path,
    json: flags.json,
    progress: flags.progress,
    start: async () => {
      const built = inProcessBackends(config);
      workload = built.workload;
      return { backends: built.backends, stop: async () => {} };
    },
  });
  if (!flags.json) for (const line of (workload as Workload | null)?.summary().lines ?? []) console.log(line);
  return { outcome, collected: [] };
}

async function runVms(scenario: Scenario, flags: ScenarioRunFlags, trace_path: string): Promise<{ outcome: RunOutcome; collected: CollectedFile[] }> {
  const vm = scenario.vm!;
  const n = scenario.topology.node_names.length;
  // With files to collect the run goes on past its duration until they are in.
  const until_ns = scenario.run.collect.length > 0 ? null : scenario.until_ns;
  const vm_flags: VmRunFlags = {
    vms: n,
    ...(vm.image === null ? {} : { image: vm.image }),
    add: vm.adds,
    ...(vm.packages === null ? {} : { packages: vm.packages.join(",") }),
    memory: vm.memory_mib,
    ...(vm.node_memory_mib.some((m) => m !== null) ? { nodeMemory: vm.node_memory_mib.map((m) => m ?? vm.memory_mib) } : {}),
    ...(vm.node_packages.some((p) => p !== null) ? { nodePackages: vm.node_packages } : {}),
    sshPortBase: flags.sshPortBase,
    sshTimeout: flags.sshTimeout,
    ssh: vm.ssh,
    snapshot: vm.snapshot,
    bootCmd: [],
    rtcBase: vm.rtc_base,
    progress: flags.progress,
    ...(flags.pace === undefined ? {} : { pace: flags.pace }),
    mgmtNet: flags.mgmtNet,
    latency: scenario.topology.source,
    seed: scenario.seed,
    ...(until_ns === null ? {} : { duration: until_ns }),
    sliceMax: scenario.slice_max_ns ?? SLICE_LEN_MAX_DEFAULT_NS,
    inflightMax: flags.inflightMax,
    trace: trace_path,
    json: flags.json,
  };
  const plan = await prepareVmRun(vm_flags, scenario.topology);
  const base = baseConfig(scenario, flags, until_ns);
  plan.config.faults = base.faults;
  plan.config.scenario = base.scenario;
  let controller: ScenarioController | null = null;
  const options = vmRunOptions(plan, {
    wrap: (node, backend, ctx) => {
      controller ??= new ScenarioController(scenario.run, n, {
        stop: (reason, detail) => {
          ctx.control.stop_requested = true;
          ctx.control.stop_reason = reason;
          ctx.control.stop_detail = detail;
        },
        log: (line) => ctx.log(`scenario: ${line}`),
      });
      return controller.wrap(node, backend as VmBackend & AgentNode);
    },
  });
  const outcome = await executeRun(options);
  return { outcome, collected: (controller as ScenarioController | null)?.collected ?? [] };
}

/** collected/<node name>/<guest path>, and a note of what could not be collected. */
function writeCollected(run_dir: string, scenario: Scenario, collected: readonly CollectedFile[]): void {
  if (scenario.run.collect.length === 0) return;
  mkdirSync(path.join(run_dir, "collected"), { recursive: true });
  const missing: string[] = [];
  for (const file of collected) {
    const name = scenario.topology.node_names[file.node]!;
    if (file.bytes === null) {
      missing.push(`${name}:${file.guest_path}: ${file.error ?? "not collected"}`);
      continue;
    }
    const target = path.join(run_dir, "collected", name, file.guest_path.replace(/^\/+/, ""));
    mkdirSync(path.dirname(target), { recursive: true });
    writeFileSync(target, file.bytes);
  }
  const asked = scenario.run.collect.length;
  if (asked > collected.length) missing.push(`${asked - collected.length} file(s) never answered (the run ended first)`);
  if (missing.length > 0) writeFileSync(path.join(run_dir, "collected", "MISSING.txt"), `${missing.join("\n")}\n`);
}

function print(flags: ScenarioRunFlags, s: RunSummary, results: RunResults, run_dir: string): void {
  if (flags.json) {
    console.log(JSON.stringify({ run_dir, end_ns: s.end_ns, end_reason: s.end_reason, wall_s: s.wall_ns / 1e9, results }, null, 2));
    return;
  }
  process.stdout.write(formatResultsTable(results));
  console.log(`wall: ${(s.wall_ns / 1e9).toFixed(2)} s for ${formatVirtualNs(s.end_ns)} virtual; results: ${run_dir} (tapsim results ${run_dir})`);
}

function log(flags: ScenarioRunFlags, line: string): void {
  if (!flags.json) console.error(line);
}
