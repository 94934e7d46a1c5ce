// `tapsim results` and scenario/results.ts: real traces written with the recorder's writer
// from a seeded generator that keeps the ground truth of what it wrote (the values each
// console line carries, each frame's size, receiver, latency or drop reason), so every
// aggregate is checked against a computation of its own, not against numbers fitted to the
// code: percentiles, means, per-node splits, durations, ok flags, timeouts, link latencies
// and drops. Then the files (CSV quoting), and the CLI on a run directory, a trace file, a
// truncated trace, a corrupt one and missing ones.

import { existsSync, mkdirSync, readdirSync, readFileSync, truncateSync, writeFileSync, statSync } from "node:fs";
import path from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { InputError } from "../engine/errors.js";
import { parseMac } from "../engine/net/ethernet.js";
import { Prng } from "../engine/prng.js";
import { DROP_REASONS, type DropReason, type ScenarioCommand, type ScenarioMetric, type ScenarioRunConfig, type TraceHeader, type TraceRecord } from "../engine/trace_records.js";
import { formatVirtualNs } from "../engine/units.js";
import { LineSplitter, nearestRank, ValueSample } from "../scenario/metrics.js";
import { commandsCsv, csvField } from "../scenario/output.js";
import { REPORT_FILE, writeReport } from "../scenario/report.js";
import { computeResults, RESULT_FILES, writeResults, type MetricStats, type RunResults } from "../scenario/results.js";
import { artifactPath, launchChromium } from "./helpers/browser.js";
import { tapsim } from "./helpers/cli.js";
import { chunkLayout, makeHeader, NODES, removeDir, tempDir, writeTrace } from "./helpers/recorder_fixtures.js";

const tmp = tempDir("results");

// ---- the generator and its ground truth ------------------------------------------------

const RTT_PATTERN = String.raw`rtt=(\S+)`;
// Anchored at the end: a "\r" left on a line would make it miss.
const TPUT_PATTERN = String.raw`^\[[^\]]+\] tput (\S+)$`;
const TPUT_NODES = [1, 2];

interface Truth {
  /** Per node: the numbers its rtt lines carry, in order, and its rtt lines that carry none. */
  rtt: number[][];
  rtt_unparsable: number[];
  tput: number[][];
  links: Map<string, { delivered: number; bytes: number; latencies: number[]; drops: Map<string, number> }>;
  unrouted: number;
  faults: [number, number, string, string][];
  end_ns: number;
}

/** The command cases: what the trace says happened, and what the results must make of it. */
interface CommandCase {
  spec: ScenarioCommand;
  start_ns: number | null;
  exit: { t_ns: number; detail: string } | null;
  expect: { status: string; result: string; ok: boolean; timed_out: boolean };
}

const TRICKY_RUN = `echo "a,b" , 'c' "d""e"`;

function commandCases(): CommandCase[] {
  const spec = (id: string, node: number, run: string, ok_exit: number[], timeout_ns: number | null): ScenarioCommand => ({ id, node, run, at_ns: 0, after: null, delay_ns: 0, ok_exit, timeout_ns });
  const ms = 1e6;
  return [
    { spec: spec("n0.server", 0, "iperf3 -s", [0], null), start_ns: 1 * ms, exit: { t_ns: 50 * ms, detail: "0" }, expect: { status: "exited", result: "0", ok: true, timed_out: false } },
    { spec: spec("n1.client", 1, TRICKY_RUN, [0, 3], null), start_ns: 2 * ms, exit: { t_ns: 61 * ms + 7, detail: "3" }, expect: { status: "exited", result: "3", ok: true, timed_out: false } },
    { spec: spec("n2.slow", 2, "sleep 100", [0], 10 * ms), start_ns: 5 * ms, exit: { t_ns: 15 * ms, detail: "signal 9" }, expect: { status: "exited", result: "timeout", ok: false, timed_out: true } },
    { spec: spec("n3.killed", 3, "sleep 100", [0], 100 * ms), start_ns: 5 * ms, exit: { t_ns: 50 * ms, detail: "signal 9" }, expect: { status: "exited", result: "signal 9", ok: false, timed_out: false } },
    { spec: spec("n0.never", 0, "true", [0], null), start_ns: null, exit: null, expect: { status: "not_started", result: "not started", ok: false, timed_out: false } },
    { spec: spec("n1.forever", 1, "sleep inf", [0], null), start_ns: 3 * ms, exit: null, expect: { status: "running", result: "still running at the end", ok: false, timed_out: false } },
    { spec: spec("n2.fails", 2, "false", [0], null), start_ns: 4 * ms, exit: { t_ns: 4 * ms + 999, detail: "1" }, expect: { status: "exited", result: "1", ok: false, timed_out: false } },
    { spec: spec("n3.agent_timeout", 3, "sleep 9", [0], 20 * ms), start_ns: 6 * ms, exit: { t_ns: 26 * ms, detail: "timeout" }, expect: { status: "exited", result: "timeout", ok: false, timed_out: true } },
  ];
}

function scenarioConfig(cases: CommandCase[], metrics: ScenarioMetric[]): ScenarioRunConfig {
  return {
    source: "experiments/demo.yaml",
    sha256: "ab".repeat(32),
    commands: cases.map((c) => c.spec),
    until: { duration_ns: null, all_exited: true, output: [] },
    collect: [],
    metrics,
  };
}

const METRICS: ScenarioMetric[] = [
  { name: "rtt", nodes: null, pattern: RTT_PATTERN, unit: "ms" },
  { name: "tput", nodes: TPUT_NODES, pattern: TPUT_PATTERN, unit: "Mbit/s" },
];

interface Timed {
  t: number;
  r: TraceRecord;
}

/** One node's console: lines of known content, joined with "\n" or "\r\n", cut into pieces at random places. */
function consoleRecords(prng: Prng, node: number, truth: Truth, out: Timed[]): void {
  const lines: string[] = [];
  const line_count = 200 + prng.nextBelow(200);
  for (let i = 0; i < line_count; i++) {
    const kind = prng.nextBelow(10);
    if (kind < 4) {
      // Integers, decimals, negatives: String() writes each so that Number() reads it back exactly.
      const value = (prng.nextBelow(2_000_001) - 100_000) / (prng.nextBelow(2) === 0 ? 1000 : 1);
      truth.rtt[node]!.push(value);
      lines.push(prng.nextBelow(3) === 0 ? `[n${node}.ping] 64 bytes: rtt=${value} ms` : `ping: rtt=${value} ms`);
    } else if (kind === 4) {
      truth.rtt_unparsable[node]! += 1;
      lines.push("ping: rtt=timeout");
    } else if (kind < 8) {
      const value = prng.nextBelow(100_000) / 100;
      if (TPUT_NODES.includes(node)) truth.tput[node]!.push(value);
      lines.push(`[n${node}.client] tput ${value}`);
    } else {
      lines.push(kind === 8 ? "" : `kernel: eth0 link up [${i}]`);
    }
  }
  let text = lines.map((l) => l + (prng.nextBelow(2) === 0 ? "\r\n" : "\n")).join("");
  // The last node's console stops mid-line: that line still counts.
  if (node === NODES - 1) text = text.replace(/\r?\n$/, "");
  let t = 1_000 + node;
  for (let at = 0; at < text.length; ) {
    const piece = text.slice(at, at + 1 + prng.nextBelow(40));
    out.push({ t, r: [9, node, t, piece] });
    at += piece.length;
    t += 1 + prng.nextBelow(300_000);
  }
}

function frameRecords(prng: Prng, header: TraceHeader, truth: Truth, out: Timed[]): void {
  const macs = header.config.nodes.map((n) => parseMac(n.mac));
  for (let id = 0; id < 600; id++) {
    const from = prng.nextBelow(NODES);
    const sent = 10_000 + prng.nextBelow(900_000_000);
    const kind = prng.nextBelow(100);
    const size = kind < 3 ? 8 : 60 + prng.nextBelow(1400);
    const frame = new Uint8Array(size);
    let receivers: number[];
    if (kind < 3) {
      receivers = [];
    } else if (kind < 15) {
      frame.fill(0xff, 0, 6);
      receivers = [...Array(NODES).keys()].filter((n) => n !== from);
    } else {
      const to = (from + 1 + prng.nextBelow(NODES - 1)) % NODES;
      writeMac(frame, macs[to]!);
      receivers = [to];
    }
    out.push({ t: sent, r: [3, from, sent, id, frame] });
    if (receivers.length === 0) {
      truth.unrouted += 1;
      out.push({ t: sent, r: [5, -1, sent, id, from, "no_route"] });
    }
    for (const to of receivers) frameOutcome(prng, truth, out, { id, from, to, sent, size });
  }
}

function frameOutcome(prng: Prng, truth: Truth, out: Timed[], f: { id: number; from: number; to: number; sent: number; size: number }): void {
  const key = `${f.from}->${f.to}`;
  let link = truth.links.get(key);
  if (link === undefined) {
    link = { delivered: 0, bytes: 0, latencies: [], drops: new Map() };
    truth.links.set(key, link);
  }
  if (prng.nextBelow(5) > 0) {
    const latency = 1_000_000 + prng.nextBelow(5_000_000);
    link.delivered += 1;
    link.bytes += f.size;
    link.latencies.push(latency);
    out.push({ t: f.sent + latency, r: [4, f.to, f.sent + latency, f.id, f.from, f.sent] });
    return;
  }
  const reason = DROP_REASONS[prng.nextBelow(DROP_REASONS.length)]! as DropReason;
  link.drops.set(reason, (link.drops.get(reason) ?? 0) + 1);
  out.push({ t: f.sent, r: [5, f.to, f.sent, f.id, f.from, reason] });
}

function writeMac(frame: Uint8Array, mac: number): void {
  for (let i = 5; i >= 0; i--) {
    frame[i] = mac % 256;
    mac = Math.floor(mac / 256);
  }
}

function commandRecords(cases: CommandCase[], out: Timed[]): void {
  for (const c of cases) {
    if (c.start_ns !== null) out.push({ t: c.start_ns, r: [13, c.spec.node, c.start_ns, "start", c.spec.id, c.spec.run] });
    if (c.exit !== null) out.push({ t: c.exit.t_ns, r: [13, c.spec.node, c.exit.t_ns, "exit", c.spec.id, c.exit.detail] });
  }
  // An id the scenario does not have: counted, not reported as a command.
  out.push({ t: 7_000_000, r: [13, 0, 7_000_000, "start", "n0.stray", "ls"] });
}

interface Generated {
  file: string;
  header: TraceHeader;
  cases: CommandCase[];
  truth: Truth;
}

/** A trace with commands, consoles, frames, faults and a run_end, written in many chunks. */
function generate(file: string, seed: number, metrics: ScenarioMetric[] = METRICS): Generated {
  const prng = new Prng(seed);
  const cases = commandCases();
  const header = makeHeader();
  header.config.scenario = scenarioConfig(cases, metrics);
  const none = () => Array.from({ length: NODES }, () => [] as number[]);
  const truth: Truth = { rtt: none(), rtt_unparsable: Array(NODES).fill(0), tput: none(), links: new Map(), unrouted: 0, faults: [], end_ns: 0 };
  const timed: Timed[] = [];
  for (let node = 0; node < NODES; node++) consoleRecords(prng, node, truth, timed);
  frameRecords(prng, header, truth, timed);
  commandRecords(cases, timed);
  truth.faults = [
    [200_000_000, -1, "link_down", "n0,n1"],
    [300_000_000, 2, "poweroff", ""],
    [400_000_000, 2, "restart", ""],
  ];
  for (const [t, node, action, detail] of truth.faults) timed.push({ t, r: [12, node, t, action, detail] as TraceRecord });
  // Stable: an emit stays before the drops written at its own time.
  timed.sort((a, b) => a.t - b.t);
  truth.end_ns = timed[timed.length - 1]!.t + 1;
  const records = [...timed.map((x) => x.r), [8, truth.end_ns, "condition", "all commands exited"] as TraceRecord];
  writeTrace(file, header, records, prng, 40);
  return { file, header, cases, truth };
}

// ---- independent expectations ---------------------------------------------------------

/** Nearest rank, computed another way: the first sorted value with at least p% of all values at or below it. */
function percentileOf(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  for (let i = 0; i < sorted.length; i++) if ((i + 1) * 100 >= p * sorted.length) return sorted[i]!;
  throw new Error("no values");
}

function assertClose(actual: number | null, expected: number, what: string): void {
  assert.ok(actual !== null && Math.abs(actual - expected) <= 1e-9 * Math.max(1, Math.abs(expected)), `${what}: ${actual} vs ${expected}`);
}

function assertStats(s: MetricStats, values: number[], unparsable: number, what: string): void {
  assert.is(s.count, values.length, `${what} count`);
  assert.is(s.unparsable, unparsable, `${what} unparsable`);
  assert.ok(values.length > 10, `${what}: the generator made enough values to mean something`);
  assertClose(s.mean, values.reduce((a, b) => a + b, 0) / values.length, `${what} mean`);
  assert.is(s.p50, percentileOf(values, 50), `${what} p50`);
  assert.is(s.p99, percentileOf(values, 99), `${what} p99`);
  assert.is(s.min, Math.min(...values), `${what} min`);
  assert.is(s.max, Math.max(...values), `${what} max`);
  assert.is(s.percentiles_exact, true);
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

// ---- computeResults ---------------------------------------------------------------------

test("metrics: every aggregate, overall and per node, from console lines split across records", async () => {
  const g = generate(path.join(tmp, "metrics.tapsim"), 11);
  assert.ok(chunkLayout(readFileSync(g.file)).chunks.length > 5, "the trace spans many chunks");
  const r = await computeResults(g.file);
  const [rtt, tput] = r.metrics;
  assert.is(rtt!.name, "rtt");
  assert.equal(rtt!.nodes, [0, 1, 2, 3]);
  assertStats(rtt!.overall, g.truth.rtt.flat(), sum(g.truth.rtt_unparsable), "rtt overall");
  for (const n of rtt!.per_node) assertStats(n, g.truth.rtt[n.node]!, g.truth.rtt_unparsable[n.node]!, `rtt node ${n.node}`);
  assert.equal(rtt!.per_node.map((n) => n.node_name), ["n0", "n1", "n2", "n3"]);
  assert.is(tput!.unit, "Mbit/s");
  assert.equal(tput!.per_node.map((n) => n.node), TPUT_NODES);
  assertStats(tput!.overall, TPUT_NODES.flatMap((n) => g.truth.tput[n]!), 0, "tput overall");
  for (const n of tput!.per_node) assertStats(n, g.truth.tput[n.node]!, 0, `tput node ${n.node}`);
  assert.is(r.console_lines_cut, 0);
});

test("commands: times, durations, results, ok flags and timeouts; unknown ids counted", async () => {
  const g = generate(path.join(tmp, "commands.tapsim"), 12);
  const r = await computeResults(g.file);
  assert.is(r.commands.length, g.cases.length, "every command of the scenario, started or not");
  for (const [i, c] of g.cases.entries()) {
    const got = r.commands[i]!;
    const what = c.spec.id;
    assert.is(got.id, c.spec.id);
    assert.is(got.node, c.spec.node);
    assert.is(got.node_name, `n${c.spec.node}`);
    assert.is(got.run, c.spec.run);
    assert.is(got.status, c.expect.status, `${what} status`);
    assert.is(got.result, c.expect.result, `${what} result`);
    assert.is(got.ok, c.expect.ok, `${what} ok`);
    assert.is(got.timed_out, c.expect.timed_out, `${what} timed_out`);
    assert.is(got.start_ns, c.start_ns, `${what} start`);
    assert.is(got.exit_ns, c.exit?.t_ns ?? null, `${what} exit`);
    assert.is(got.exit_detail, c.exit?.detail ?? null);
    const duration = c.exit === null ? null : c.exit.t_ns - c.start_ns!;
    assert.is(got.duration_ns, duration, `${what} duration`);
    assert.is(got.duration_ms, duration === null ? null : duration / 1e6);
    assert.is(got.starts, c.start_ns === null ? 0 : 1);
  }
  assert.equal(r.unknown_commands, { ids: ["n0.stray"], records: 1 });
});

test("links: frames, bytes, latency min/mean/max and drops by reason per directed link; faults; run end", async () => {
  const g = generate(path.join(tmp, "links.tapsim"), 13);
  const r = await computeResults(g.file);
  const truth = g.truth;
  assert.is(r.links.length, truth.links.size);
  for (const l of r.links) {
    const t = truth.links.get(`${l.from}->${l.to}`);
    assert.ok(t !== undefined, `link ${l.from}->${l.to} was generated`);
    assert.is(l.from_name, `n${l.from}`);
    assert.is(l.frames_delivered, t!.delivered);
    assert.is(l.bytes_delivered, t!.bytes);
    assert.is(l.latency_ns_min, Math.min(...t!.latencies));
    assert.is(l.latency_ns_max, Math.max(...t!.latencies));
    assertClose(l.latency_ns_mean, sum(t!.latencies) / t!.latencies.length, `link ${l.from}->${l.to} mean latency`);
    assert.equal(Object.keys(l.drops), [...DROP_REASONS], "every reason, in a fixed order");
    for (const reason of DROP_REASONS) assert.is(l.drops[reason], t!.drops.get(reason) ?? 0, `${l.from}->${l.to} ${reason}`);
    assert.is(l.drops_total, sum([...t!.drops.values()]));
  }
  const all_reasons = new Set(r.links.flatMap((l) => Object.entries(l.drops).filter(([, n]) => n > 0).map(([reason]) => reason)));
  for (const reason of ["link_down", "node_down"]) assert.ok(all_reasons.has(reason), `the generator dropped for ${reason}`);
  assert.equal(r.link_totals, { unrouted_drops: truth.unrouted, frames_bytes_unknown: 0 });
  assert.equal(
    r.faults.map((f) => [f.t_ns, f.node, f.action, f.detail]),
    truth.faults,
  );
  assert.equal(r.faults.map((f) => f.node_name), [null, "n2", "n2"]);
  assert.is(r.run.end_ns, truth.end_ns);
  assert.is(r.run.end_reason, "condition");
  assert.is(r.run.end_detail, "all commands exited");
  assert.is(r.run.node_count, NODES);
  assert.equal(r.run.scenario, { source: "experiments/demo.yaml", sha256: "ab".repeat(32) });
  assert.is(r.trace.complete, true);
});

test("a trace without a scenario still gets run, link and fault results", async () => {
  const file = path.join(tmp, "plain.tapsim");
  const records: TraceRecord[] = [
    [3, 0, 100, 0, new Uint8Array(64).fill(0xff)],
    [4, 1, 1100, 0, 0, 100],
    [5, 2, 100, 0, 0, "loss"],
    [4, 3, 2100, 0, 0, 100],
    [12, -1, 3000, "partition", "n0 | n1"],
    [8, 5000, "quiescent"],
  ];
  writeTrace(file, makeHeader(), records);
  const r = await computeResults(file);
  assert.equal(r.commands, []);
  assert.equal(r.metrics, []);
  assert.is(r.run.scenario, null);
  assert.equal(r.links.map((l) => [l.from, l.to, l.frames_delivered, l.bytes_delivered, l.drops_total]), [[0, 1, 1, 64, 0], [0, 2, 0, 0, 1], [0, 3, 1, 64, 0]]);
  assert.is(r.links[1]!.latency_ns_mean, null);
  assert.is(r.faults.length, 1);
});

test("an invalid pattern, or one without a capture group, is a one-line InputError", async () => {
  for (const [pattern, why] of [["rtt=(\\d+", /invalid pattern/], ["rtt=\\d+", /no capture group/]] as const) {
    const file = path.join(tmp, "bad_pattern.tapsim");
    generate(file, 14, [{ name: "rtt", nodes: null, pattern, unit: "ms" }]);
    try {
      await computeResults(file);
      assert.unreachable("should throw");
    } catch (err) {
      assert.instance(err, InputError);
      assert.match((err as Error).message, why);
      assert.not.match((err as Error).message, /\n/);
    }
  }
});

// ---- the building blocks ----------------------------------------------------------------

test("lines: split across pieces, \\r\\n and \\n, a last line without newline, over-long lines cut", () => {
  const lines: string[] = [];
  const s = new LineSplitter((l) => lines.push(l));
  for (const piece of ["a", "b\r", "\nc\n", "\r\n", "d\r\r\n", "tail"]) s.push(piece);
  s.end();
  assert.equal(lines, ["ab", "c", "", "d", "tail"]);
  const long: string[] = [];
  const s2 = new LineSplitter((l) => long.push(l));
  for (let i = 0; i < 100; i++) s2.push("x".repeat(1000));
  s2.push("\nok\n");
  s2.end();
  assert.equal(long.map((l) => l.length), [64 * 1024, 2]);
  assert.is(s2.lines_cut, 1);
});

test("nearest-rank percentiles as documented, and a bounded sample that keeps count/mean/min/max exact", () => {
  const sorted = (xs: number[]) => Float64Array.from(xs).sort();
  assert.is(nearestRank(sorted([1, 2, 3, 4]), 50), 2);
  assert.is(nearestRank(sorted([1, 2, 3, 4, 5]), 50), 3);
  assert.is(nearestRank(sorted([7]), 99), 7);
  const hundred = Array.from({ length: 100 }, (_, i) => 100 - i);
  assert.is(nearestRank(sorted(hundred), 99), 99);
  assert.is(nearestRank(sorted([...hundred, 1000]), 99), 100);
  const sample = new ValueSample(1, 50);
  const values = Array.from({ length: 5000 }, (_, i) => (i * 7919) % 5003);
  for (const v of values) sample.add(v);
  const st = sample.stats();
  assert.is(st.count, 5000);
  assert.is(st.min, Math.min(...values));
  assert.is(st.max, Math.max(...values));
  assertClose(st.mean, sum(values) / values.length, "sampled mean");
  assert.is(st.percentiles_exact, false);
  assert.ok(values.includes(st.p50!) && values.includes(st.p99!));
});

/** RFC 4180 read back independently of the writer: quoted fields, doubled quotes, CRLF rows. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') (field += '"'), i++;
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") row.push(field), (field = "");
    else if (ch === "\r" && text[i + 1] === "\n") row.push(field), rows.push(row), (row = []), (field = ""), i++;
    else field += ch;
  }
  assert.is(field + row.join(""), "", "the text ends with CRLF");
  return rows;
}

test("files: all five written whole, CSV quoting of a command line with commas and quotes, JSON equal to the results", async () => {
  const g = generate(path.join(tmp, "files.tapsim"), 15);
  const r = await computeResults(g.file);
  const dir = path.join(tmp, "files_out");
  mkdirSync(dir, { recursive: true });
  writeResults(dir, r);
  assert.equal(readdirSync(dir).sort(), [...RESULT_FILES].sort(), "no temporary files left");
  assert.equal(JSON.parse(readFileSync(path.join(dir, "results.json"), "utf8")), JSON.parse(JSON.stringify(r)));
  const csv = readFileSync(path.join(dir, "commands.csv"), "utf8");
  assert.is(csv, commandsCsv(r));
  assert.ok(csv.includes(`"echo ""a,b"" , 'c' ""d""""e"""`), "quoted, quotes doubled");
  const rows = parseCsv(csv);
  assert.is(rows.length, 1 + g.cases.length);
  const header = rows[0]!;
  const col = (name: string) => header.indexOf(name);
  assert.is(rows[2]![col("command")], TRICKY_RUN);
  assert.is(rows[3]![col("result")], "timeout");
  assert.is(rows[1]![col("ok")], "true");
  assert.ok(rows.every((row) => row.length === header.length));
  const metric_rows = parseCsv(readFileSync(path.join(dir, "metrics.csv"), "utf8"));
  assert.is(metric_rows.length, 1 + (1 + 4) + (1 + 2), "a row for all nodes, then one per node, per metric");
  assert.is(Number(metric_rows[1]![metric_rows[0]!.indexOf("p99")]), r.metrics[0]!.overall.p99);
  const link_rows = parseCsv(readFileSync(path.join(dir, "links.csv"), "utf8"));
  assert.is(link_rows.length, 1 + r.links.length);
  assert.ok(link_rows[0]!.includes("drops_node_down"));
  assert.equal([csvField(null), csvField("a\nb"), csvField(3.5), csvField(false)], ["", '"a\nb"', "3.5", "false"]);
  const txt = readFileSync(path.join(dir, "results.txt"), "utf8");
  assert.match(txt, /commands: 2 of 8 ok/);
  assert.match(txt, new RegExp(`n2\\s+n2\\.slow\\s+sleep 100\\s+${formatVirtualNs(5e6).replace(".", "\\.")}`));
  assert.match(txt, /still running at the end/);
  assert.match(txt, /rtt: \d+ matching lines did not parse as numbers/);
});

// ---- the CLI ----------------------------------------------------------------------------

function oneLineError(r: { code: number; stderr: string }, code: number, pattern: RegExp): void {
  assert.is(r.code, code, `exit code ${code}, stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split("\n");
  assert.is(lines.length, 1, `one line: ${r.stderr}`);
  assert.match(lines[0]!, /^tapsim: /);
  assert.match(lines[0]!, pattern);
  assert.not.match(r.stderr, /\bat .*\.js:\d+/, "no stack trace");
}

test("cli: a run directory gets its files and the table; --json; a trace file writes nothing", () => {
  const run_dir = path.join(tmp, "run1");
  mkdirSync(run_dir);
  const g = generate(path.join(run_dir, "trace.tapsim"), 16);
  const table = tapsim("results", run_dir);
  assert.is(table.code, 0, table.stderr);
  assert.is(table.stderr, "");
  assert.match(table.stdout, /^run: ended at \d+\.\d{9}s virtual \(condition: all commands exited\), 4 nodes/);
  assert.match(table.stdout, /commands: 2 of 8 ok/);
  for (const name of RESULT_FILES) assert.ok(existsSync(path.join(run_dir, name)), name);
  assert.is(readFileSync(path.join(run_dir, "results.txt"), "utf8"), table.stdout);
  const json = tapsim("results", run_dir, "--json");
  assert.is(json.code, 0);
  const parsed = JSON.parse(json.stdout) as RunResults;
  assert.is(parsed.commands.length, g.cases.length);
  assert.is(json.stdout, readFileSync(path.join(run_dir, "results.json"), "utf8"));
  const trace_only = path.join(tmp, "trace_only");
  mkdirSync(trace_only);
  const copy = path.join(trace_only, "t.tapsim");
  writeFileSync(copy, readFileSync(g.file));
  assert.is(tapsim("results", copy).code, 0);
  assert.equal(readdirSync(trace_only), ["t.tapsim"], "a trace named directly writes nothing");
  const out = path.join(tmp, "out_dir", "nested");
  assert.is(tapsim("results", copy, "--out", out).code, 0);
  assert.equal(readdirSync(out).sort(), [...RESULT_FILES, REPORT_FILE].sort());
});

test("report.html: self-contained, shows the run, every command, each metric's table and plot over virtual time with the faults, links and faults (headless Chromium)", async () => {
  const dir = path.join(tmp, "report");
  mkdirSync(dir);
  const g = generate(path.join(dir, "trace.tapsim"), 23);
  const results = await computeResults(g.file);
  const file = await writeReport(dir, results);
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const requests: string[] = [];
    page.on("request", (req) => requests.push(req.url()));
    await page.goto(`file://${file}`);
    assert.equal(requests, [`file://${file}`], "the page loads nothing but itself");
    assert.is(await page.locator("table.commands tbody tr").count(), g.cases.length);
    const metric_rows = results.metrics.reduce((n, m) => n + 1 + m.per_node.length, 0);
    assert.is(await page.locator("table.metrics tbody tr").count(), metric_rows);
    // A plot per metric that has values: its points, one mark per value, and a rule per fault.
    const plotted = results.metrics.filter((m) => m.series.length > 0);
    assert.ok(plotted.length >= 2);
    assert.is(await page.locator("figure.plot svg").count(), plotted.length);
    const first = page.locator("figure.plot").first();
    assert.is(await first.locator("svg .mark-symbol.role-mark path").count(), plotted[0]!.series.length, "one point per value");
    assert.is(await first.locator("svg .mark-rule.role-mark line").count(), g.truth.faults.length, "one rule per fault");
    assert.is(await page.locator("table.faults tbody tr").count(), g.truth.faults.length);
    assert.is(await page.locator("table.links tbody tr").count(), Math.min(results.links.length, 200));
    const box = await first.locator("svg").boundingBox();
    assert.ok(box !== null && box.width > 300 && box.height > 150, "the plot is drawn at a readable size");
    await page.screenshot({ path: artifactPath("report.png"), fullPage: true });
  } finally {
    await browser.close();
  }
});

test("cli: a truncated trace gives the results of what it holds, with one warning", () => {
  const g = generate(path.join(tmp, "full.tapsim"), 17);
  const cut = path.join(tmp, "cut.tapsim");
  writeFileSync(cut, readFileSync(g.file));
  const layout = chunkLayout(readFileSync(cut));
  const keep = layout.chunks[Math.floor(layout.chunks.length / 2)]!;
  truncateSync(cut, keep.end + 10);
  const r = tapsim("results", cut, "--json");
  assert.is(r.code, 0, r.stderr);
  const lines = r.stderr.trimEnd().split("\n");
  assert.is(lines.length, 1);
  assert.match(lines[0]!, /^tapsim: warning: .*cut\.tapsim: incomplete: ends after chunk \d+/);
  const parsed = JSON.parse(r.stdout) as RunResults;
  assert.is(parsed.trace.complete, false);
  assert.is(parsed.run.end_reason, null);
  assert.ok(parsed.run.end_ns < g.truth.end_ns);
  assert.ok(parsed.metrics[0]!.overall.count < g.truth.rtt.flat().length);
  const table = tapsim("results", cut);
  assert.match(table.stdout, /INCOMPLETE/);
  assert.match(table.stdout, /no run_end record/);
});

test("cli: missing or wrong inputs and an unwritable target are one line with the right exit code", () => {
  oneLineError(tapsim("results", path.join(tmp, "no_such_dir")), 2, /no_such_dir: no such file/);
  const empty = path.join(tmp, "empty_run");
  mkdirSync(empty);
  oneLineError(tapsim("results", empty), 2, /empty_run: not a run directory \(no trace\.tapsim in it\)/);
  const g = generate(path.join(tmp, "to_corrupt.tapsim"), 18);
  const bad = path.join(tmp, "corrupt.tapsim");
  const bytes = readFileSync(g.file);
  const chunk = chunkLayout(bytes).chunks[2]!;
  bytes[chunk.offset + 40] = bytes[chunk.offset + 40]! ^ 0xff;
  writeFileSync(bad, bytes);
  oneLineError(tapsim("results", bad), 2, /corrupt\.tapsim: chunk \d+ at byte \d+ is corrupt \(checksum mismatch\)/);
  const not_trace = path.join(tmp, "not_a_trace.txt");
  writeFileSync(not_trace, "hello\n");
  oneLineError(tapsim("results", not_trace), 2, /not a tapsim trace/);
  // Root writes anywhere, so "unwritable" is a directory where a result file must go.
  const blocked = path.join(tmp, "blocked_run");
  mkdirSync(path.join(blocked, "results.json"), { recursive: true });
  writeFileSync(path.join(blocked, "trace.tapsim"), readFileSync(g.file));
  oneLineError(tapsim("results", blocked), 2, /results\.json: cannot write: is a directory/);
  assert.ok(statSync(path.join(blocked, "results.json")).isDirectory());
  assert.equal(readdirSync(blocked).filter((n) => n.endsWith(".tmp")), [], "no temporary file left");
  const bad_pattern = path.join(tmp, "bad_pattern_run");
  mkdirSync(bad_pattern);
  generate(path.join(bad_pattern, "trace.tapsim"), 19, [{ name: "rtt", nodes: null, pattern: "(", unit: "ms" }]);
  oneLineError(tapsim("results", bad_pattern), 2, /metric "rtt": invalid pattern/);
});

test.after(() => removeDir(tmp));

test.run();
