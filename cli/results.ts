// `tapsim results RUN_DIR|TRACE`: the results of a run (scenario commands, metrics, links,
// faults) as a table or as JSON. A run directory gets the result files written into it (or
// into --out DIR); a trace named directly writes nothing unless --out says where. An
// incomplete trace gives the results of what it holds, with a warning on stderr.

import { mkdirSync, statSync } from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import { InputError, fsErrorText } from "../engine/errors.js";
import { writeReport } from "../scenario/report.js";
import { computeResults, formatResultsTable, writeResults } from "../scenario/results.js";
import { resultsJson } from "../scenario/output.js";
import { incompleteText } from "./incomplete.js";

/** The trace's name inside a run directory. */
export const RUN_TRACE_NAME = "trace.tapsim";

interface ResultsFlags {
  out?: string;
  json: boolean;
}

export function registerResults(program: Command, setExit: (code: number) => void): void {
  program
    .command("results")
    .description("a run's results: scenario commands, metrics, per-link traffic, faults (written into the run directory, with report.html)")
    .argument("<run>", `run directory (holding ${RUN_TRACE_NAME}) or a trace file`)
    .option("--out <dir>", "write the result files here instead (a trace file named directly: only then are files written)")
    .option("--json", "print results.json instead of the table", false)
    .action(async (target: string, flags: ResultsFlags) => {
      const { trace_path, out_dir } = resolveTarget(target, flags.out);
      const results = await computeResults(trace_path);
      const incomplete = incompleteText(results.trace.status);
      if (incomplete !== null) process.stderr.write(`tapsim: warning: ${trace_path}: ${incomplete}\n`);
      if (out_dir !== null) {
        ensureDir(out_dir);
        writeResults(out_dir, results);
        await writeReport(out_dir, results);
      }
      process.stdout.write(flags.json ? resultsJson(results) : formatResultsTable(results));
      setExit(0);
    });
}

/** Where the trace is and where the files go (null: nowhere). */
function resolveTarget(target: string, out: string | undefined): { trace_path: string; out_dir: string | null } {
  let stat;
  try {
    stat = statSync(target);
  } catch (err) {
    throw new InputError(`${target}: ${fsErrorText(err)}`);
  }
  if (!stat.isDirectory()) return { trace_path: target, out_dir: out ?? null };
  const trace_path = path.join(target, RUN_TRACE_NAME);
  if (statSync(trace_path, { throwIfNoEntry: false }) === undefined) throw new InputError(`${target}: not a run directory (no ${RUN_TRACE_NAME} in it)`);
  return { trace_path, out_dir: out ?? target };
}

/** --out may name a directory still to be made. */
function ensureDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new InputError(`${dir}: cannot make the output directory: ${fsErrorText(err)}`);
  }
}
