// `tapsim replay TRACE`: re-execute every engine decision from the recorded inputs. Exit 0
// identical, 1 diverged, 3 consistent as far as an incomplete trace goes.

import type { Command } from "commander";
import { formatVirtualNs } from "../engine/units.js";
import { recordTimeNs, type TraceRecord } from "../engine/trace_records.js";
import { describeRecord } from "../recorder/describe.js";
import { TraceReader } from "../recorder/reader.js";
import { replayTrace, type Divergence, type ReplayOutcome } from "../recorder/replay.js";
import { incompleteText } from "./incomplete.js";
import { hostNowNs } from "../engine/units.js";

export function registerReplay(program: Command, setExit: (code: number) => void): void {
  program
    .command("replay")
    .description("re-run the engine on a trace's recorded inputs and check every decision")
    .argument("<trace>", "trace file")
    .option("--json", "machine-readable result", false)
    .action(async (path: string, flags: { json: boolean }) => {
      const started = hostNowNs();
      const outcome = await replayTrace(path);
      const wall_s = (hostNowNs() - started) / 1e9;
      if (flags.json) {
        const { header, ...rest } = outcome;
        console.log(JSON.stringify({ trace: path, ...rest, wall_s, nodes: header.config.nodes.length }, jsonBytes, 2));
      } else if (outcome.identical && outcome.trace_incomplete) {
        console.log(incompleteLine(path, outcome));
      } else if (outcome.identical) {
        const rate = outcome.records_checked / Math.max(wall_s, 1e-9);
        console.log(`replay: identical: ${outcome.records_checked} records re-derived and checked in ${wall_s.toFixed(2)} s (${(rate / 1e6).toFixed(2)}M records/s)`);
      } else {
        printDivergence("replay", outcome.divergence!);
      }
      setExit(!outcome.identical ? EXIT_DIVERGED : outcome.trace_incomplete ? EXIT_INCOMPLETE : 0);
    });
}

export const EXIT_DIVERGED = 1;
/** Consistent as far as the trace goes, but it stops without a clean end: the rest of the run was never checked. */
export const EXIT_INCOMPLETE = 3;

/** What replay of a killed (or still running) run's trace did and did not check. */
function incompleteLine(path: string, outcome: ReplayOutcome): string {
  const reader = TraceReader.open(path);
  const where = incompleteText(reader.status()) ?? "incomplete";
  reader.close();
  if (outcome.slices_checked === 0) return `replay: INCOMPLETE trace, nothing checked: no complete slice in it (${where})`;
  return `replay: INCOMPLETE trace, consistent so far: ${outcome.slices_checked} complete slices, ${outcome.records_checked} records re-derived and identical; ${where}`;
}

/** The first divergent record, the records before it, and both versions (replay and rerun). */
export function printDivergence(tool: "replay" | "rerun", d: Divergence): void {
  const at = d.expected ?? d.actual;
  console.log(`${tool}: DIVERGED at record #${d.index}${at ? ` (t=${formatVirtualNs(recordTimeNs(at))})` : ""}: ${d.why}`);
  for (const r of d.context) console.log(`  same    ${describeRecord(r)}`);
  console.log(`  trace   ${describe(d.expected)}`);
  console.log(`  ${tool.padEnd(6)}  ${describe(d.actual)}`);
}

function describe(r: TraceRecord | null): string {
  return r === null ? "(no record)" : describeRecord(r);
}

/** JSON replacer: frame bytes as hex. */
export function jsonBytes(_key: string, value: unknown): unknown {
  return value instanceof Uint8Array ? Buffer.from(value).toString("hex") : value;
}
