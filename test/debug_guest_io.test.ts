// tapsim debug over a VM-like trace (the real engine with scripted nodes that print on
// their consoles and exchange management frames): `break output`, the console in `info node`,
// management frames under `frame`, and step/next/break over the new record kinds.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { RecordKind, type TraceRecord } from "../engine/trace_records.js";
import { quoteText } from "../recorder/describe.js";
import { runCommand } from "../recorder/debugger/commands.js";
import { DebugSession, involves } from "../recorder/debugger/session.js";
import { decodeFrame } from "../recorder/frame_decode.js";
import { tapsim } from "./helpers/cli.js";
import { MGMT_SYN_ACK, PING_LINE, writeGuestTrace } from "./helpers/guest_trace.js";

const tmp = mkdtempSync(path.join(tmpdir(), "tsD-debug-guest-"));
const TRACE = path.join(tmp, "guest.trace");
let ALL: TraceRecord[] = [];
test.before(async () => {
  ALL = await writeGuestTrace(TRACE);
});
test.after(() => rmSync(tmp, { recursive: true, force: true }));

/** Runs debugger commands on a fresh session; returns each command's output lines. */
async function commands(...lines: string[]): Promise<string[][]> {
  const s = DebugSession.open(TRACE);
  try {
    const out: string[][] = [];
    for (const line of lines) out.push((await runCommand(s, line)).lines);
    return out;
  } finally {
    s.close();
  }
}

function indexOf(pred: (r: TraceRecord) => boolean): number {
  const i = ALL.findIndex(pred);
  assert.ok(i >= 0, "the trace has such a record");
  return i;
}

const isOutput = (node: number, text: string) => (r: TraceRecord) => r[0] === RecordKind.GuestOutput && r[1] === node && r[3].includes(text);

test("break output matches a line printed in two pieces, at the piece that completes it, once", async () => {
  const completes = indexOf(isOutput(2, "ice up"));
  const [set, hit, after] = await commands("break output READY: service up", "continue", "continue");
  assert.equal(set, ["breakpoint 1 (output /READY: service up/) set"]);
  assert.equal(hit, ["breakpoint 1 (output /READY: service up/) hit", `#${completes} 0.006000000s guest_output node=2 "ice up\\r\\nlogin: "`]);
  assert.match(after!.at(-1)!, /^end of trace/, "the line is not matched again");
  // A pattern the first piece already matches stops there, and not again when the line goes on.
  const first = indexOf(isOutput(2, "READY: serv"));
  const [, early, later] = await commands("break output ^READY", "continue", "continue");
  assert.is(early![1], `#${first} 0.004000000s guest_output node=2 "READY: serv"`);
  assert.match(later!.at(-1)!, /^end of trace/);
});

test("break output node N only fires for that node; /RE/i takes flags", async () => {
  const ping = indexOf(isOutput(1, "got ping"));
  const pong = indexOf(isOutput(0, "got pong"));
  assert.ok(ping < pong);
  const [, any] = await commands("break output got p.ng", "continue");
  assert.is(any![1], `#${ping} 0.007500000s guest_output node=1 ${quoteText(PING_LINE)}`);
  const [set, only0] = await commands("break output node 0 /GOT P.NG/i", "continue");
  assert.equal(set, ["breakpoint 1 (output /GOT P.NG/i on node 0) set"]);
  assert.is(only0![1], `#${pong} 0.014000000s guest_output node=0 "got pong from 10.0.0.2\\r\\n"`);
});

test("break output refuses a bad pattern, a missing one and an unknown node", async () => {
  const s = DebugSession.open(TRACE);
  try {
    for (const [line, message] of [
      ["break output (", /break output: "\(" is not a regular expression/],
      ["break output node 1", /break output: usage: break output \[node N\] RE/],
      ["break output", /break: usage: .*\| output \[node N\] RE|break output: usage/],
      ["break output node 7 x", /no node 7 \(the trace has nodes 0\.\.2\)/],
    ] as const) {
      try {
        await runCommand(s, line);
        assert.unreachable(`${line} was accepted`);
      } catch (err) {
        assert.match((err as Error).message, message, line);
      }
    }
    assert.is(s.breakpoints.length, 0);
  } finally {
    s.close();
  }
});

test("info node N shows the node's last console lines up to the cursor, escaped", async () => {
  const ping = indexOf(isOutput(1, "got ping"));
  const [, before, , after, node2] = await commands(`step ${ping}`, "info node 1", "step 1", "info node 1", "info node 2");
  assert.equal(before!.slice(-2), ["console of node 1 (last 1 line(s)):", '  "Booting n1"'], "the ping line is not printed yet");
  assert.equal(after!.slice(-3), ["console of node 1 (last 2 line(s)):", '  "Booting n1"', `  ${quoteText(PING_LINE.replace("\r\n", ""))}`]);
  assert.ok(after!.at(-1)!.includes("\\u001b[1mok\\u001b[0m\\u007f"), "control characters escaped");
  // Node 2 printed everything by then: its unfinished "login: " line shows too.
  assert.equal(node2!.slice(-4), ["console of node 2 (last 3 line(s)):", '  "Booting n2"', '  "READY: service up"', '  "login: "']);
  const [, fresh] = await commands("step 1", "info node 2");
  assert.is(fresh!.at(-1), "console of node 2: nothing printed yet");
});

test("step visits every record in trace order; next and break node/kind treat console and management records like others", async () => {
  const s = DebugSession.open(TRACE);
  try {
    for (let i = 0; i < ALL.length; i++) assert.equal((await s.step(1)).at!.record, ALL[i], `record ${i}`);
  } finally {
    s.close();
  }
  const mgmt_in = indexOf((r) => r[0] === RecordKind.MgmtIn);
  const after_in = ALL.findIndex((r, i) => i > mgmt_in && involves(r, 1));
  assert.is(ALL[after_in]![0], RecordKind.MgmtOut, "node 1's next record is its answer");
  const [, at_in, next] = await commands("break kind mgmt_in", "continue", "next");
  assert.match(at_in![1]!, new RegExp(`^#${mgmt_in} 0\\.003000000s mgmt_in node=1 54B 10\\.0\\.2\\.2\\.40000 > 10\\.0\\.2\\.15\\.22: Flags \\[S\\]`));
  assert.match(next![0]!, new RegExp(`^#${after_in} 0\\.003200000s mgmt_out node=1 54B `));
  const first_1 = indexOf((r) => involves(r, 1));
  const [, hit] = await commands("break node 1", "continue", "continue", "continue");
  assert.match(hit![1]!, new RegExp(`^#${first_1} `));
  const outputs_1 = ALL.map((r, i) => [r, i] as const).filter(([r]) => r[0] === RecordKind.GuestOutput && r[1] === 1);
  const [, a, b] = await commands("break output node 1 .", "continue", "continue");
  assert.equal([a![1], b![1]].map((l) => Number(/^#(\d+)/.exec(l!)![1])), outputs_1.map(([, i]) => i));
});

test("frame on a management record decodes it (no frame id needed)", async () => {
  const out = await commands("break kind mgmt_out", "continue", "frame");
  const lines = out[2]!;
  assert.is(lines[0], `management frame (node 1 -> host) at 0.003200000s, 54 bytes: ${decodeFrame(MGMT_SYN_ACK).summary}`);
  assert.ok(lines.some((l) => /^ {2}TCP: source port=22 destination port=40000 /.test(l)), lines.join("\n"));
  assert.ok(lines.some((l) => l.startsWith("0000  52 54 00 12 35 02 52 54 00 12 34 56 08 00")), "hex dump");
});

test("CLI: a --commands script with break output and info node", () => {
  const script = path.join(tmp, "cmds.txt");
  writeFileSync(script, "break output node 1 ping from 10\\.0\\.0\\.1\ncontinue\ninfo node 1\nhelp\n");
  const r = tapsim("debug", TRACE, "--commands", script);
  assert.is(r.code, 0, r.stderr);
  const lines = r.stdout.split("\n");
  assert.ok(lines.includes("breakpoint 1 (output /ping from 10\\.0\\.0\\.1/ on node 1) hit"), r.stdout);
  assert.ok(lines.includes(`  ${quoteText(PING_LINE.replace("\r\n", ""))}`));
  assert.ok(lines.some((l) => l.startsWith("break output RE ")), "help lists break output");
});

test.run();
