// A VM run's console output and management frames in the text tools: dump shows them
// (escaped, decoded, filtered by node and kind), info and diff count them per node apart from
// the simulated frames. The trace comes from the real engine with scripted nodes.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { RecordKind, type TraceRecord } from "../engine/trace_records.js";
import { describeRecord, quoteText } from "../recorder/describe.js";
import { decodeFrame } from "../recorder/frame_decode.js";
import { tapsim } from "./helpers/cli.js";
import { MGMT_SYN, MGMT_SYN_ACK, PING_LINE, writeGuestTrace } from "./helpers/guest_trace.js";

const tmp = mkdtempSync(path.join(tmpdir(), "tsD-guest-io-"));
const TRACE = path.join(tmp, "guest.trace");
const LATE = path.join(tmp, "late.trace");
let records: TraceRecord[] = [];
test.before(async () => {
  records = await writeGuestTrace(TRACE);
  await writeGuestTrace(LATE, " (late)");
});
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const GUEST_KINDS: number[] = [RecordKind.GuestOutput, RecordKind.MgmtIn, RecordKind.MgmtOut];
/** Control characters a terminal would act on (tab and newline between lines are fine). */
const RAW_CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]/;

function lines(stdout: string): string[] {
  return stdout.trimEnd().split("\n");
}

test("quoteText escapes what JSON leaves raw: DEL, C1 controls, line separators", () => {
  assert.is(quoteText("a\u007fb\u0085c\u2028d"), '"a\\u007fb\\u0085c\\u2028d"');
  assert.is(quoteText("\u001b[1mok\r\n"), '"\\u001b[1mok\\r\\n"');
  assert.is(quoteText("plain ✓"), '"plain ✓"');
});

test("dump shows console output escaped on one line and management frames decoded, in trace order", () => {
  const r = tapsim("dump", TRACE, "--limit", "1000");
  assert.is(r.code, 0, r.stderr);
  const out = lines(r.stdout);
  assert.is(out.length, records.length, "one line per record");
  assert.not.match(r.stdout, RAW_CONTROLS, "no raw control character reaches the terminal");
  const ping = out.find((l) => l.includes("guest_output node=1 \"got ping"));
  assert.is(ping, `0.007500000s guest_output node=1 ${quoteText(PING_LINE)}`);
  assert.ok(ping!.includes("\\u001b[1mok\\u001b[0m\\u007f\\r\\n"), ping);
  assert.ok(out.includes(`0.003000000s mgmt_in node=1 54B ${decodeFrame(MGMT_SYN).summary}`), "mgmt_in decoded");
  assert.ok(out.includes(`0.003200000s mgmt_out node=1 54B ${decodeFrame(MGMT_SYN_ACK).summary}`), "mgmt_out decoded");
  assert.match(decodeFrame(MGMT_SYN).summary, /^10\.0\.2\.2\.40000 > 10\.0\.2\.15\.22: Flags \[S\]/);
});

test("dump --node N keeps that node's console and management records; --kind picks kinds", () => {
  const node1 = lines(tapsim("dump", TRACE, "--node", "1", "--kind", "guest_output,mgmt_in,mgmt_out").stdout);
  const want1 = records.filter((r) => GUEST_KINDS.includes(r[0]) && r[1] === 1).map(describeRecord);
  assert.is(want1.length, 4, "two outputs, one frame in, one out");
  assert.equal(node1, want1);
  const outputs = lines(tapsim("dump", TRACE, "--kind", "guest_output").stdout);
  assert.equal(outputs, records.filter((r) => r[0] === RecordKind.GuestOutput).map(describeRecord));
  assert.is(outputs.length, 7);
  const node2 = lines(tapsim("dump", TRACE, "--node", "2").stdout);
  assert.ok(node2.every((l) => /node=2 |run_end/.test(l)), node2.join("\n"));
  assert.ok(node2.some((l) => l.includes('guest_output node=2 "READY: serv"')));
  const bad = tapsim("dump", TRACE, "--kind", "guest_output,console");
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /^tapsim: --kind "guest_output,console": unknown record kind "console" \(slice_grant, .*mgmt_out, fault, command\)\n$/);
});

test("info counts console bytes and management frames per node, apart from simulated frames and links", () => {
  const text = tapsim("info", TRACE);
  assert.is(text.code, 0, text.stderr);
  // n1: one simulated frame each way; its management SYN/SYN-ACK are not among them.
  assert.match(text.stdout, /\n\s+1 n1\s+slices 2, busy 17ms, sent 1 \(58 B\), received 1, dropped 0, marks 0; console 48 B in 2 outputs, mgmt in 1 \(54 B\), mgmt out 1 \(54 B\)\n/);
  assert.match(text.stdout, /\n\s+2 n2 .*; console 38 B in 3 outputs, mgmt in 0 \(0 B\), mgmt out 0 \(0 B\)\n/);
  assert.match(text.stdout, /links \(2 used\):\n {2}0->1: 1 delivered.*\n {2}1->0: 1 delivered/);
  type Node = { node: number; frames_sent: number; console_records: number; console_bytes: number; mgmt_in_frames: number; mgmt_in_bytes: number; mgmt_out_frames: number; mgmt_out_bytes: number };
  const json = JSON.parse(tapsim("info", TRACE, "--json").stdout) as { nodes: Node[]; links: unknown[] };
  for (const n of json.nodes) {
    const mine = records.filter((r) => r[1] === n.node && r[0] !== RecordKind.RunEnd);
    const outputs = mine.filter((r) => r[0] === RecordKind.GuestOutput).map((r) => r[3] as string);
    const ins = mine.filter((r) => r[0] === RecordKind.MgmtIn).map((r) => (r[3] as Uint8Array).length);
    const outs = mine.filter((r) => r[0] === RecordKind.MgmtOut).map((r) => (r[3] as Uint8Array).length);
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    assert.equal(
      [n.console_records, n.console_bytes, n.mgmt_in_frames, n.mgmt_in_bytes, n.mgmt_out_frames, n.mgmt_out_bytes],
      [outputs.length, sum(outputs.map((t) => Buffer.byteLength(t))), ins.length, sum(ins), outs.length, sum(outs)],
      `node ${n.node}`,
    );
    assert.is(n.frames_sent, mine.filter((r) => r[0] === RecordKind.FrameEmit).length, `node ${n.node}: simulated frames only`);
  }
  assert.is(json.links.length, 2);
});

test("info of a trace without console output or management frames says nothing about them", () => {
  const r = tapsim("info", "traces/bracha_3x3.trace");
  assert.is(r.code, 0);
  assert.not.match(r.stdout, /console|mgmt/);
});

test("diff: a different console line is the first divergence, and the node's summary shows its console", () => {
  const r = tapsim("diff", TRACE, LATE);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stdout, /\n {2}A {5}0\.014000000s guest_output node=0 "got pong from 10\.0\.0\.2\\r\\n"\n {2}B {5}0\.014000000s guest_output node=0 "got pong from 10\.0\.0\.2 \(late\)\\r\\n"\n/);
  assert.match(r.stdout, /nodes that differ \(1\):.*\n {2}node 0: sent 1, .*, console 36 B in 2 outputs, mgmt in 0 \(0 B\), mgmt out 0 \(0 B\) {2}-> {2}sent 1, .*, console 43 B in 2 outputs, mgmt in 0 \(0 B\), mgmt out 0 \(0 B\)\n/);
  assert.not.match(r.stdout, /links that differ/);
  assert.is(tapsim("diff", TRACE, TRACE).code, 0);
});

test.run();
