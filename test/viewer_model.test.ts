// The viewer's generation side: the packed columns agree with the trace (counts per kind as
// TraceStats counts them, frame bytes, protocols, order), survive base64 packing, and the
// page is self-contained and script-safe.

import { copyFileSync, mkdtempSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { RecordKind } from "../engine/trace_records.js";
import { decodeFrame } from "../recorder/frame_decode.js";
import { TraceReader } from "../recorder/reader.js";
import { TraceStats } from "../recorder/stats.js";
import { bundleClient } from "../recorder/viewer/inline.js";
import { buildTraceView, packTrace } from "../recorder/viewer/model.js";
import { ARRAY_KINDS, ARROW_DROP, MGMT_IN, MGMT_OUT, PROTOCOLS, frameBytes, mgmtBytes, unpackTrace, type TraceArrays, type TraceView } from "../recorder/viewer/packed.js";
import { renderPage, viewPage } from "../recorder/viewer/page.js";
import { REPO_ROOT, tapsim } from "./helpers/cli.js";
import { writeGuestTrace } from "./helpers/guest_trace.js";

const tmp = mkdtempSync(path.join(tmpdir(), "tapsim-viewer-"));
const EXAMPLES = ["bracha_3x3", "bracha_aws9", "bracha_aws9_2silent", "bracha_aws9_jitter_seed1"].map((n) => path.join(REPO_ROOT, "traces", `${n}.trace`));

function statsOf(file: string): TraceStats {
  const reader = TraceReader.open(file);
  const stats = new TraceStats();
  for (const r of reader.records()) stats.add(r);
  reader.close();
  return stats;
}

function assertCountsMatch(view: TraceView, file: string): void {
  const k = statsOf(file).kind_counts;
  const c = view.meta.counts;
  const name = path.basename(file);
  assert.is(c.frames_emitted, k.frame_emit ?? 0, `${name}: frames`);
  assert.is(c.deliveries, k.frame_deliver ?? 0, `${name}: deliveries`);
  assert.is(c.drops, k.frame_drop ?? 0, `${name}: drops`);
  assert.is(c.slices, k.slice_grant ?? 0, `${name}: slices`);
  assert.is(c.marks, (k.mark ?? 0) + (k.lifecycle ?? 0), `${name}: marks and lifecycle events`);
  assert.equal([c.outputs, c.mgmt_in, c.mgmt_out], [k.guest_output ?? 0, k.mgmt_in ?? 0, k.mgmt_out ?? 0], `${name}: console outputs and management frames`);
  assert.is(view.arrays.arrow_kind.length, c.deliveries + c.drops + c.inflight, `${name}: one arrow per delivery, drop and frame in flight`);
}

function assertSorted(a: Float64Array, what: string): void {
  for (let i = 1; i < a.length; i++) if (a[i]! < a[i - 1]!) assert.unreachable(`${what} not sorted at ${i}`);
}

test("packed columns match the trace's own statistics, for every example trace", () => {
  for (const file of EXAMPLES) {
    const view = buildTraceView(file, "");
    assertCountsMatch(view, file);
    assert.equal(view.meta.nodes, TraceReader.open(file).header.config.nodes.map((n) => n.name));
    assertSorted(view.arrays.arrow_t_send_ns, "arrows by send time");
    assertSorted(view.arrays.slice_t0_ns, "slices by start");
    assertSorted(view.arrays.mark_t_ns, "marks by time");
  }
});

test("frame bytes (capped), lengths and protocols agree with the emit records and decodeFrame", () => {
  const file = EXAMPLES[0]!;
  const cap = 40;
  const view = buildTraceView(file, "", cap);
  const reader = TraceReader.open(file);
  let k = 0;
  for (const r of reader.records()) {
    if (r[0] !== RecordKind.FrameEmit) continue;
    assert.is(view.arrays.frame_id[k], r[3]);
    assert.is(view.arrays.frame_len[k], r[4].length);
    assert.equal(Array.from(frameBytes(view.arrays, k)), Array.from(r[4].subarray(0, cap)), `frame ${r[3]} bytes`);
    assert.is(PROTOCOLS[view.arrays.frame_proto[k]!], (PROTOCOLS as readonly string[]).includes(decodeFrame(r[4]).protocol) ? decodeFrame(r[4]).protocol : "other");
    k += 1;
  }
  reader.close();
  assert.is(k, view.meta.counts.frames_emitted);
  // Every arrow's send time is its frame's emit time (deliveries carry it; checked against the emit).
  const a = view.arrays;
  for (let i = 0; i < a.arrow_kind.length; i++) assert.ok(a.arrow_t_recv_ns[i]! >= a.arrow_t_send_ns[i]!, `arrow ${i} goes forward in time`);
});

test("base64 packing round-trips every column exactly", () => {
  const view = buildTraceView(EXAMPLES[1]!, "A");
  const packed = JSON.parse(JSON.stringify(packTrace(view))) as ReturnType<typeof packTrace>;
  const back = unpackTrace(packed);
  assert.equal(back.meta, view.meta);
  for (const name of Object.keys(ARRAY_KINDS) as (keyof TraceArrays)[]) {
    assert.equal(Array.from(back.arrays[name]), Array.from(view.arrays[name]), name);
    assert.is(back.arrays[name].constructor, view.arrays[name].constructor, `${name} type`);
  }
});

test("console output and management frames: their own columns, by time, apart from the simulated frames", async () => {
  const trace = path.join(tmp, "guest.trace");
  const records = await writeGuestTrace(trace);
  const cap = 20;
  const view = buildTraceView(trace, "", cap);
  assertCountsMatch(view, trace);
  const a = view.arrays;
  assertSorted(a.out_t_ns, "outputs by time");
  assertSorted(a.mgmt_t_ns, "management frames by time");
  const byTime = <T extends { t: number; record: number }>(xs: T[]) => xs.sort((x, y) => x.t - y.t || x.record - y.record);
  const outputs = byTime(records.flatMap((r, record) => (r[0] === RecordKind.GuestOutput ? [{ t: r[2], record, node: r[1], text: r[3] }] : [])));
  assert.equal(
    Array.from(a.out_t_ns, (t, i) => ({ t, record: a.out_record[i]!, node: a.out_node[i]!, text: view.meta.output_texts[a.out_text[i]!]! })),
    outputs,
  );
  const mgmt = byTime(records.flatMap((r, record) => (r[0] === RecordKind.MgmtIn || r[0] === RecordKind.MgmtOut ? [{ t: r[2], record, node: r[1], dir: r[0] === RecordKind.MgmtIn ? MGMT_IN : MGMT_OUT, bytes: Array.from(r[3].subarray(0, cap)), len: r[3].length, proto: "tcp" }] : [])));
  assert.is(mgmt.length, 2);
  assert.equal(
    Array.from(a.mgmt_t_ns, (t, i) => ({ t, record: a.mgmt_record[i]!, node: a.mgmt_node[i]!, dir: a.mgmt_dir[i]!, bytes: Array.from(mgmtBytes(a, i)), len: a.mgmt_frame_len[a.mgmt_frame[i]!]!, proto: PROTOCOLS[a.mgmt_frame_proto[a.mgmt_frame[i]!]!] })),
    mgmt,
  );
  assert.is(view.meta.counts.frames_emitted, 2, "management frames are not simulated frames");
  assert.is(a.arrow_kind.length, 2, "and get no arrows");
  const back = unpackTrace(JSON.parse(JSON.stringify(packTrace(view))) as ReturnType<typeof packTrace>);
  assert.equal(Array.from(back.arrays.mgmt_frame_bytes), Array.from(a.mgmt_frame_bytes), "management bytes survive packing");
  assert.equal(back.meta.output_texts, view.meta.output_texts);
});

test("drops are counted and keep their reason; a lossy run's counts match its stats", () => {
  const topo = path.join(tmp, "lossy.yaml");
  writeFileSync(topo, "nodes: 4\ndefaults:\n  latency: 10ms\n  loss: 20%\n");
  const trace = path.join(tmp, "lossy.trace");
  const run = tapsim("run", "--latency", topo, "--messages", "3", "--trace", trace, "--no-progress");
  assert.is(run.code, 0, run.stderr);
  const view = buildTraceView(trace, "");
  assertCountsMatch(view, trace);
  assert.ok(view.meta.counts.drops > 0, "20% loss drops something");
  const a = view.arrays;
  for (let i = 0; i < a.arrow_kind.length; i++) if (a.arrow_kind[i] === ARROW_DROP) assert.is(view.meta.drop_reasons[a.arrow_reason[i]!], "loss");
});

test("frames still in flight when a run is stopped get an arrow each, to nowhere", () => {
  const trace = path.join(tmp, "cut.trace");
  const run = tapsim("run", "--latency", "latency_configs/delays_3x3.txt", "--messages", "5", "--duration", "320ms", "--trace", trace, "--no-progress");
  assert.is(run.code, 0, run.stderr);
  const view = buildTraceView(trace, "");
  assertCountsMatch(view, trace);
  const c = view.meta.counts;
  assert.ok(c.inflight > 0, "a run stopped mid-flight leaves frames in flight");
  assert.is(c.deliveries + c.drops + c.inflight, c.frames_emitted, "unicast: every frame is delivered, dropped or in flight");
});

test("a trace cut short (killed run) gives a page of what is readable, marked incomplete", () => {
  const cut = path.join(tmp, "cut_short.trace");
  copyFileSync(EXAMPLES[1]!, cut);
  // Loses the index, the trailer and the end of the last chunk.
  truncateSync(cut, statSync(cut).size - 1000);
  const view = buildTraceView(cut, "");
  assert.is(view.meta.complete, false);
  assertCountsMatch(view, cut);
  assert.ok(view.meta.counts.frames_emitted > 0);
  assert.match(viewPage(cut), /"complete":false/);
});

test("the page is self-contained, its script compiles, and data cannot close the script element", () => {
  const html = viewPage(EXAMPLES[0]!);
  assert.not.match(html, /<script[^>]+src=|<link\b|<img\b|\bfetch\(|XMLHttpRequest|import\(/, "no external resources or fetches");
  assert.not.match(html, /\s(src|href)=/, "no element loads anything");
  // Compiles without running (the script needs a DOM to run).
  new Function(bundleClient());
  const page = renderPage({ title: "</script><script>alert(1)</script>", traces: [], diff: null });
  assert.is(page.match(/<\/script>/g)?.length, 2, "only the page's own two script elements close");
});

test("view and diff --html: bad inputs give one line and exit 2", () => {
  const oneLine = (r: { code: number; stderr: string }, pattern: RegExp) => {
    assert.is(r.code, 2, r.stderr);
    assert.is(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, pattern);
  };
  oneLine(tapsim("view", path.join(tmp, "nope.trace")), /^tapsim: .*nope\.trace: no such file/);
  oneLine(tapsim("view", EXAMPLES[0]!, "--serve", "http"), /--serve "http": expected an integer/);
  oneLine(tapsim("view", EXAMPLES[0]!, "--serve", "0", "-o", path.join(tmp, "x.html")), /-o and --serve/);
  oneLine(tapsim("view", EXAMPLES[0]!, "-o", path.join(tmp, "no/such/dir/x.html")), /x\.html: cannot write: no such file/);
  oneLine(tapsim("diff", EXAMPLES[0]!, EXAMPLES[0]!, "--html", path.join(tmp, "no/dir/d.html")), /d\.html: cannot write/);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));

test.run();
