// The results of a run, from its trace alone: what each scenario command did, the metrics
// read from the guests' console output, per-link traffic, the faults, how the run ended.
// One pass over the trace in bounded memory (one chunk of records, one partial line per
// node, a bounded sample per metric aggregate, the frames in flight). `output.ts` writes
// and prints them.

import { formatVirtualNs } from "../engine/units.js";
import { setImmediate as yieldToLoop } from "node:timers/promises";
import { DROP_REASONS, RecordKind, type CommandRecord, type FaultRecord, type RunConfig, type ScenarioCommand, type ScenarioMetric, type TraceRecord } from "../engine/trace_records.js";
import { TraceError } from "../recorder/errors.js";
import { TraceReader, type TraceStatus } from "../recorder/reader.js";
import { TraceStats } from "../recorder/stats.js";
import { compilePattern, LineSplitter, lineValue, ValueSample, type ValueStats } from "./metrics.js";
import { checkScenario } from "./scenario_check.js";

export { formatResultsTable, writeResults, RESULT_FILES } from "./output.js";

/** Fault records listed in the results; a plan is finite, but a hand-made trace need not be. */
export const FAULTS_LISTED_MAX = 10_000;
/** Command ids in the trace but not in the scenario, listed (the rest only counted). */
export const UNKNOWN_COMMAND_IDS_MAX = 20;
/** The event loop gets a turn after this many chunks (a long trace does not starve timers and signals). */
const CHUNKS_PER_TURN = 16;

export interface RunResults {
  format: "tapsim-results";
  format_version: 1;
  trace: TraceSummary;
  run: RunSummary;
  commands: CommandResult[];
  metrics: MetricResult[];
  links: LinkResult[];
  link_totals: LinkTotals;
  faults: FaultResult[];
  /** Fault records past FAULTS_LISTED_MAX (not listed). */
  faults_omitted: number;
  /** Command records whose id (on that node) is not in the scenario: the first ids, and how many records. */
  unknown_commands: { ids: string[]; records: number };
  /** Console lines longer than LINE_CHARS_MAX, cut before matching. */
  console_lines_cut: number;
}

export interface TraceSummary {
  path: string;
  /** Closed cleanly; an incomplete trace gives the results of what it holds. */
  complete: boolean;
  status: TraceStatus;
}

export interface RunSummary {
  /** The run_end record's time, or the last record's time when there is none (incomplete trace). */
  end_ns: number;
  end_ms: number;
  /** null: no run_end record (the run was killed or is still running). */
  end_reason: string | null;
  end_detail: string | null;
  node_count: number;
  nodes: { id: number; name: string }[];
  topology_source: string;
  seed: number;
  /** null: not a scenario run. */
  scenario: { source: string; sha256: string } | null;
}

/** not_started: no start record; running: started, no exit record before the trace ends; lost: its node was powered off (a scheduled fault) while it ran. */
export type CommandStatus = "not_started" | "running" | "exited" | "lost";

export interface CommandResult {
  id: string;
  node: number;
  node_name: string;
  /** The command line as the scenario gives it. */
  run: string;
  status: CommandStatus;
  start_ns: number | null;
  start_ms: number | null;
  exit_ns: number | null;
  exit_ms: number | null;
  duration_ns: number | null;
  duration_ms: number | null;
  /** The exit record's detail as recorded ("0", "3", "signal 9", "timeout"); null without one. */
  exit_detail: string | null;
  /** The exit code when the detail is one. */
  exit_code: number | null;
  /** Killed at its timeout: detail "timeout", or SIGKILL at or after start + timeout_ns. */
  timed_out: boolean;
  /** What the table shows: "0", "signal 9", "timeout", "not started", "still running at the end". */
  result: string;
  /** Exited with a code in ok_exit (a signal, a timeout or no exit is not ok). */
  ok: boolean;
  ok_exit: number[];
  timeout_ns: number | null;
  /** Start records for this id (more than 1: it was started again, e.g. after a restart; the first run is reported). */
  starts: number;
}

export interface MetricStats extends ValueStats {
  /** Lines the pattern matched whose first group is not a number. */
  unparsable: number;
}

export interface MetricResult {
  name: string;
  unit: string;
  pattern: string;
  /** The nodes whose output it reads (null in the scenario: all of them). */
  nodes: number[];
  overall: MetricStats;
  per_node: (MetricStats & { node: number; node_name: string })[];
  /** The values in time order (virtual time of the console record that ended the line), the first SERIES_POINTS_MAX of them: what the report plots. */
  series: { t_ns: number; node: number; value: number }[];
}

/** Points a metric's series keeps (the aggregates count every value). */
export const SERIES_POINTS_MAX = 10_000;

export interface LinkResult {
  from: number;
  from_name: string;
  to: number;
  to_name: string;
  frames_delivered: number;
  bytes_delivered: number;
  latency_ns_min: number | null;
  latency_ns_mean: number | null;
  latency_ns_max: number | null;
  latency_ms_min: number | null;
  latency_ms_mean: number | null;
  latency_ms_max: number | null;
  /** Frames lost on this link by reason (every reason of DROP_REASONS, 0 when none). */
  drops: Record<string, number>;
  drops_total: number;
}

export interface FaultResult {
  t_ns: number;
  t_ms: number;
  /** -1: the network. */
  node: number;
  node_name: string | null;
  action: string;
  detail: string;
}

export interface LinkTotals {
  /** Frames dropped with no receiver (no route): on no link. */
  unrouted_drops: number;
  /** Deliveries whose frame size was not known (not in bytes_delivered). */
  frames_bytes_unknown: number;
}

/** Reads the trace at `trace_path` once and computes everything; a broken trace is its one-line TraceError. */
export async function computeResults(trace_path: string): Promise<RunResults> {
  const reader = TraceReader.open(trace_path);
  try {
    const config = reader.header.config;
    const problem = checkScenario(config);
    if (problem !== null) throw new TraceError(trace_path, `header config.scenario is malformed: ${problem}`);
    const acc = new Accumulator(config);
    let chunks = 0;
    for (const chunk of reader.chunks()) {
      for (const r of chunk.records) acc.add(r);
      if (++chunks % CHUNKS_PER_TURN === 0) await yieldToLoop();
    }
    const status = reader.status();
    return acc.finish({ path: trace_path, complete: status.complete, status });
  } finally {
    reader.close();
  }
}

interface CommandTrack {
  spec: ScenarioCommand;
  starts: number;
  start_ns: number | null;
  exit_ns: number | null;
  exit_detail: string | null;
}

interface MetricTrack {
  spec: ScenarioMetric;
  re: RegExp;
  nodes: number[];
  overall: ValueSample;
  overall_unparsable: number;
  per_node: Map<number, { sample: ValueSample; unparsable: number }>;
  series: { t_ns: number; node: number; value: number }[];
}

/** Everything computeResults keeps while it streams. */
class Accumulator {
  private readonly stats: TraceStats;
  private readonly commands = new Map<string, CommandTrack>();
  private readonly metrics: MetricTrack[] = [];
  /** Per node: its line splitter, only for nodes some metric reads. */
  private readonly splitters: (LineSplitter | undefined)[] = [];
  private readonly faults: FaultResult[] = [];
  private faults_omitted = 0;
  /** Virtual time of the console record being split (lines it completes are dated by it). */
  private line_t_ns = 0;
  /** Per node, when it was powered off (a command running then is lost, not failed). */
  private readonly poweroffs_ns: number[][] = [];
  private readonly unknown_ids = new Set<string>();
  private unknown_command_records = 0;
  private run_end: { t_ns: number; reason: string; detail: string | null } | null = null;

  constructor(private readonly config: RunConfig) {
    this.stats = new TraceStats(config.nodes.length);
    const scenario = config.scenario;
    for (const spec of scenario?.commands ?? []) this.commands.set(spec.id, { spec, starts: 0, start_ns: null, exit_ns: null, exit_detail: null });
    for (const [i, spec] of (scenario?.metrics ?? []).entries()) this.metrics.push(this.metricTrack(spec, i));
    for (const m of this.metrics) for (const node of m.nodes) this.splitters[node] ??= new LineSplitter((line) => this.line(node, line));
  }

  add(r: TraceRecord): void {
    this.stats.add(r);
    switch (r[0]) {
      case RecordKind.GuestOutput:
        this.line_t_ns = r[2];
        this.splitters[r[1]]?.push(r[3]);
        break;
      case RecordKind.Command:
        this.command(r);
        break;
      case RecordKind.Fault:
        this.fault(r);
        break;
      case RecordKind.RunEnd:
        this.run_end = { t_ns: r[1], reason: r[2], detail: r.length > 3 ? r[3]! : null };
        break;
    }
  }

  finish(trace: TraceSummary): RunResults {
    let lines_cut = 0;
    for (const s of this.splitters) {
      s?.end();
      lines_cut += s?.lines_cut ?? 0;
    }
    return {
      format: "tapsim-results",
      format_version: 1,
      trace,
      run: this.runSummary(),
      commands: [...this.commands.values()].map((c) => this.commandResult(c)),
      metrics: this.metrics.map((m) => this.metricResult(m)),
      links: this.linkResults(),
      link_totals: { unrouted_drops: this.stats.unrouted_drops, frames_bytes_unknown: this.stats.frames_bytes_unknown },
      faults: this.faults,
      faults_omitted: this.faults_omitted,
      unknown_commands: { ids: [...this.unknown_ids], records: this.unknown_command_records },
      console_lines_cut: lines_cut,
    };
  }

  private metricTrack(spec: ScenarioMetric, i: number): MetricTrack {
    const nodes = spec.nodes ?? this.config.nodes.map((n) => n.id);
    const per_node = new Map(nodes.map((node, k) => [node, { sample: new ValueSample(i * 65537 + k + 1), unparsable: 0 }]));
    return { spec, re: compilePattern(spec.name, spec.pattern), nodes, overall: new ValueSample(i * 65537), overall_unparsable: 0, per_node, series: [] };
  }

  private line(node: number, line: string): void {
    for (const m of this.metrics) {
      const mine = m.per_node.get(node);
      if (mine === undefined) continue;
      const v = lineValue(m.re, line);
      if (v.kind === "value") {
        mine.sample.add(v.value);
        m.overall.add(v.value);
        if (m.series.length < SERIES_POINTS_MAX) m.series.push({ t_ns: this.line_t_ns, node, value: v.value });
      } else if (v.kind === "unparsable") {
        mine.unparsable += 1;
        m.overall_unparsable += 1;
      }
    }
  }

  /** The first start of an id, and the first exit after it; later runs only count in `starts`. */
  private command(r: CommandRecord): void {
    const [, , t_ns, event, id, detail] = r;
    const c = this.commands.get(id);
    if (c === undefined || c.spec.node !== r[1]) {
      this.unknown_command_records += 1;
      if (this.unknown_ids.size < UNKNOWN_COMMAND_IDS_MAX) this.unknown_ids.add(id);
      return;
    }
    if (event === "start") {
      c.starts += 1;
      if (c.start_ns === null) c.start_ns = t_ns;
    } else if (c.exit_ns === null && c.start_ns !== null) {
      c.exit_ns = t_ns;
      c.exit_detail = detail;
    }
  }

  private fault(r: FaultRecord): void {
    if (r[3] === "poweroff") (this.poweroffs_ns[r[1]] ??= []).push(r[2]);
    if (this.faults.length >= FAULTS_LISTED_MAX) {
      this.faults_omitted += 1;
      return;
    }
    const [, node, t_ns, action, detail] = r;
    this.faults.push({ t_ns, t_ms: ms(t_ns), node, node_name: this.nodeName(node), action, detail });
  }

  private runSummary(): RunSummary {
    const c = this.config;
    const end_ns = this.run_end?.t_ns ?? this.stats.t_ns_max;
    return {
      end_ns,
      end_ms: ms(end_ns),
      end_reason: this.run_end?.reason ?? null,
      end_detail: this.run_end?.detail ?? null,
      node_count: c.nodes.length,
      nodes: c.nodes.map((n) => ({ id: n.id, name: n.name })),
      topology_source: c.topology.source,
      seed: c.seed,
      scenario: c.scenario === undefined ? null : { source: c.scenario.source, sha256: c.scenario.sha256 },
    };
  }

  private commandResult(c: CommandTrack): CommandResult {
    const spec = c.spec;
    const exited = c.exit_ns !== null;
    const exit_code = exited && /^\d+$/.test(c.exit_detail!) ? Number(c.exit_detail) : null;
    const timed_out = exited && isTimeout(c.exit_detail!, c.start_ns!, c.exit_ns!, spec.timeout_ns);
    const duration_ns = exited ? c.exit_ns! - c.start_ns! : null;
    const lost_ns = !exited && c.start_ns !== null ? (this.poweroffs_ns[spec.node] ?? []).find((t) => t >= c.start_ns!) ?? null : null;
    const status: CommandStatus = c.start_ns === null ? "not_started" : exited ? "exited" : lost_ns !== null ? "lost" : "running";
    return {
      id: spec.id,
      node: spec.node,
      node_name: this.nodeName(spec.node)!,
      run: spec.run,
      status,
      start_ns: c.start_ns,
      start_ms: msOrNull(c.start_ns),
      exit_ns: c.exit_ns,
      exit_ms: msOrNull(c.exit_ns),
      duration_ns,
      duration_ms: msOrNull(duration_ns),
      exit_detail: c.exit_detail,
      exit_code,
      timed_out,
      result: status === "not_started" ? "not started" : status === "running" ? "still running at the end" : status === "lost" ? `lost: node powered off at ${formatVirtualNs(lost_ns!)}` : timed_out ? "timeout" : c.exit_detail!,
      ok: exit_code !== null && !timed_out && spec.ok_exit.includes(exit_code),
      ok_exit: spec.ok_exit,
      timeout_ns: spec.timeout_ns,
      starts: c.starts,
    };
  }

  private metricResult(m: MetricTrack): MetricResult {
    return {
      name: m.spec.name,
      unit: m.spec.unit,
      pattern: m.spec.pattern,
      nodes: m.nodes,
      overall: { ...m.overall.stats(), unparsable: m.overall_unparsable },
      per_node: [...m.per_node].map(([node, { sample, unparsable }]) => ({ node, node_name: this.nodeName(node)!, ...sample.stats(), unparsable })),
      series: m.series,
    };
  }

  private linkResults(): LinkResult[] {
    return this.stats.linkList().map((l) => {
      const delivered = l.frames_delivered > 0;
      const mean = delivered ? l.latency_ns_sum / l.frames_delivered : null;
      const drops: Record<string, number> = Object.fromEntries(DROP_REASON_LIST.map((reason) => [reason, l.drops[reason] ?? 0]));
      return {
        from: l.from,
        from_name: this.nodeName(l.from)!,
        to: l.to,
        to_name: this.nodeName(l.to)!,
        frames_delivered: l.frames_delivered,
        bytes_delivered: l.bytes_delivered ?? 0,
        latency_ns_min: delivered ? l.latency_ns_min : null,
        latency_ns_mean: mean,
        latency_ns_max: delivered ? l.latency_ns_max : null,
        latency_ms_min: delivered ? ms(l.latency_ns_min) : null,
        latency_ms_mean: msOrNull(mean),
        latency_ms_max: delivered ? ms(l.latency_ns_max) : null,
        drops,
        drops_total: Object.values(l.drops).reduce((a, b) => a + b, 0),
      };
    });
  }

  private nodeName(node: number): string | null {
    return this.config.nodes[node]?.name ?? null;
  }
}

const DROP_REASON_LIST: readonly string[] = DROP_REASONS;

/** "timeout", or SIGKILL (the agent's kill at the timeout) at or after start + timeout_ns. */
export function isTimeout(detail: string, start_ns: number, exit_ns: number, timeout_ns: number | null): boolean {
  if (detail === "timeout") return true;
  return detail === "signal 9" && timeout_ns !== null && exit_ns >= start_ns + timeout_ns;
}

function ms(ns: number): number {
  return ns / 1e6;
}

function msOrNull(ns: number | null): number | null {
  return ns === null ? null : ns / 1e6;
}
