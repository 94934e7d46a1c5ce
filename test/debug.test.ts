// tapsim debug: the DebugSession model against the trace itself (indices, times, state),
// scripted CLI runs, and the terminal path (history, Tab completion) through tmux.

import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { RecordKind, recordTimeNs, type TraceRecord } from "../engine/trace_records.js";
import { parseDurationNs } from "../engine/units.js";
import { DebugSession, involves } from "../recorder/debugger/session.js";
import { parseFrameFilter } from "../recorder/debugger/filter.js";
import { TraceReader } from "../recorder/reader.js";
import { REPO_ROOT, tapsim } from "./helpers/cli.js";

const TRACE = path.join(REPO_ROOT, "traces/bracha_3x3.trace");
const tmp = mkdtempSync(path.join(tmpdir(), "tapsim-debug-"));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

function records(): TraceRecord[] {
  const reader = TraceReader.open(TRACE);
  try {
    return [...reader.records()];
  } finally {
    reader.close();
  }
}
const ALL = records();

test("step n lands on record n-1, and the records are the trace's", async () => {
  const s = DebugSession.open(TRACE);
  try {
    assert.is(s.position, 0);
    const stop = await s.step(7);
    assert.is(stop.at!.index, 6);
    assert.equal(stop.at!.record, ALL[6]);
    await s.step(1);
    assert.equal(s.at!.record, ALL[7]);
  } finally {
    s.close();
  }
});

test("break node N stops at the first later record about N", async () => {
  const s = DebugSession.open(TRACE);
  try {
    s.addBreakpoint({ kind: "node", node: 2 });
    const first = ALL.findIndex((r) => involves(r, 2));
    const stop = await s.continue();
    assert.is(stop.reason, "breakpoint");
    assert.is(stop.at!.index, first);
    const second = ALL.findIndex((r, i) => i > first && involves(r, 2));
    assert.is((await s.continue()).at!.index, second);
  } finally {
    s.close();
  }
});

test("back 1 after step 5 is the state after step 4 (re-executed, equal engine state)", async () => {
  const a = DebugSession.open(TRACE);
  const b = DebugSession.open(TRACE);
  try {
    await a.step(40);
    await a.back(1);
    await b.step(39);
    assert.is(a.position, 39);
    assert.equal(a.at!.record, b.at!.record);
    assert.equal(a.state(), b.state());
    // And the state does change along the way (the comparison is not vacuous).
    await b.step(100);
    assert.not.equal(a.state().nodes, b.state().nodes);
  } finally {
    a.close();
    b.close();
  }
});

test("goto lands at the first record at or after T, forward and backward", async () => {
  const s = DebugSession.open(TRACE);
  try {
    for (const text of ["0.5s", "150ms", "0.100932133s"]) {
      const t_ns = parseDurationNs(text);
      const want = ALL.findIndex((r) => recordTimeNs(r) >= t_ns);
      assert.is((await s.goto(t_ns)).at!.index, want, text);
    }
  } finally {
    s.close();
  }
});

test("break frame src/dst/proto stops at the first matching frame record; engine state shows the frame in the receiver's inbox", async () => {
  const s = DebugSession.open(TRACE);
  try {
    s.addBreakpoint({ kind: "frame", filter: parseFrameFilter(["src=1", "dst=2", "proto=udp"]), text: "" });
    // frame_emit by node 1 of a frame addressed to node 2 (MAC 02:00:00:00:00:02), or a delivery/drop 1 -> 2.
    const mac2 = [2, 0, 0, 0, 0, 2];
    const want = ALL.findIndex((r) => (r[0] === RecordKind.FrameEmit && r[1] === 1 && mac2.every((b, i) => r[4][i] === b)) || (r[0] === RecordKind.FrameDeliver && r[4] === 1 && r[1] === 2));
    const stop = await s.continue();
    assert.is(stop.at!.index, want);
    const r = stop.at!.record;
    assert.is(r[0], RecordKind.FrameEmit);
    // An emit is routed once its slice ends: after that slice_end the frame is in node 2's inbox.
    const id = r[3] as number;
    while (s.at!.record[0] !== RecordKind.SliceEnd) await s.step(1);
    assert.ok(s.state().inbox[2]!.some((f) => f.frame_id === id && f.from === 1), "in node 2's inbox");
    assert.ok(s.state().nodes[2]!.inbox_ns <= s.state().inbox[2]![0]!.t_ns);
  } finally {
    s.close();
  }
});

test("time breakpoint fires once; watch node fires when the node's clock changes", async () => {
  const s = DebugSession.open(TRACE);
  try {
    s.addBreakpoint({ kind: "time", t_ns: parseDurationNs("0.3s") });
    const stop = await s.continue();
    assert.is(stop.at!.index, ALL.findIndex((r) => recordTimeNs(r) >= 3e8));
    s.deleteBreakpoint();
    s.addBreakpoint({ kind: "watch", node: 1 });
    const before = s.state().nodes[1]!.clock_ns;
    const w = await s.continue();
    assert.is(w.reason, "breakpoint");
    assert.is.not(s.state().nodes[1]!.clock_ns, before);
    assert.is(w.at!.record[0], RecordKind.SliceEnd);
    assert.is(w.at!.record[1], 1);
  } finally {
    s.close();
  }
});

test("CLI --commands: echoed commands, breakpoint hit, queues, frame decode, where", () => {
  const script = path.join(tmp, "cmds.txt");
  writeFileSync(script, ["# comment", "break node 2", "continue", "step 3", "info clocks", "info queues", "frame", "where", "back 1", "quit"].join("\n"));
  const r = tapsim("debug", TRACE, "--commands", script);
  assert.is(r.code, 0, r.stderr);
  const lines = r.stdout.split("\n");
  assert.ok(lines.includes("(tapsim) break node 2"));
  assert.ok(lines.includes("breakpoint 1 (node 2) hit"));
  assert.ok(lines.includes("#23 0.000000000s slice_grant node=2 [0.000000000s, 0.200000000s)"));
  assert.ok(lines.includes("#26 0.150693853s frame_deliver to=2 from=0 frame=1 sent=0.000693853s latency=150ms"));
  assert.ok(lines.includes("node 0 n0: clock=0.050000000s wake=never inbox=0.050932133s"));
  assert.ok(lines.includes("  frame 4 from 1: sent 0.000932133s, due 0.050932133s (latency 50ms), 66B"));
  assert.ok(lines.includes("frame 1: sent by node 0 at 0.000693853s, 66 bytes: 10.0.0.1.4000 > 10.0.0.3.4000: UDP, length 24"));
  assert.ok(lines.includes("=> #26 0.150693853s frame_deliver to=2 from=0 frame=1 sent=0.000693853s latency=150ms"));
  assert.ok(lines.includes("#25 0.100932133s frame_deliver to=2 from=1 frame=7 sent=0.000932133s latency=100ms"));
  // Deterministic: the same script prints the same bytes.
  assert.is(tapsim("debug", TRACE, "--commands", script).stdout, r.stdout);
});

test("CLI: a bad command ends the script with one line naming the line, exit 2; continue reaches the end", () => {
  const script = path.join(tmp, "bad.txt");
  writeFileSync(script, "step\n\nbreak kind nonsense\nstep\n");
  const r = tapsim("debug", TRACE, "--commands", script);
  assert.is(r.code, 2);
  assert.is(r.stderr.trimEnd().split("\n").length, 1);
  assert.match(r.stderr, /^tapsim: debug: .*bad\.txt:3: break kind: unknown kind "nonsense"/);
  const end = path.join(tmp, "end.txt");
  writeFileSync(end, "continue\n");
  const e = tapsim("debug", TRACE, "--commands", end);
  assert.is(e.code, 0, e.stderr);
  assert.match(e.stdout, new RegExp(`#${ALL.length - 1} .* run_end quiescent\\nend of trace \\(${ALL.length} records\\)`));
});

function tmux(...args: string[]): string {
  return execFileSync("tmux", args, { encoding: "utf8" });
}

async function waitFor(session: string, pattern: RegExp, tries = 100): Promise<string> {
  let screen = "";
  for (let k = 0; k < tries; k++) {
    screen = tmux("capture-pane", "-p", "-t", session);
    if (pattern.test(screen)) return screen;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`screen never matched ${pattern}:\n${screen}`);
}

test("terminal: Tab completes 'st' to step, Up recalls the last command", async () => {
  const name = `tapsim-debug-${process.pid}`;
  const cmd = `cd ${REPO_ROOT} && node bin/tapsim.js debug traces/bracha_3x3.trace`;
  tmux("new-session", "-d", "-s", name, "-x", "120", "-y", "40", cmd);
  try {
    await waitFor(name, /\(tapsim\)\s*$/m);
    tmux("send-keys", "-t", name, "st", "Tab");
    await waitFor(name, /\(tapsim\) step\s*$/m);
    tmux("send-keys", "-t", name, "2", "Enter");
    await waitFor(name, /^#1 0\.000000000s lifecycle node=0 boot/m);
    tmux("send-keys", "-t", name, "Up");
    await waitFor(name, /\(tapsim\) step 2$/m);
    tmux("send-keys", "-t", name, "Enter");
    const screen = await waitFor(name, /^#3 0\.000693853s frame_emit node=0 frame=0 66B/m);
    assert.match(screen, /\(tapsim\) step 2\n#3 /);
  } finally {
    try {
      tmux("kill-session", "-t", name);
    } catch {
      // already gone (the debugger quit)
    }
  }
});

test.run();
