// The tools over a trace with scheduled faults (test/helpers/fault_trace.ts): dump, info,
// the Perfetto export, the viewer's model and the debugger each show the fault records.

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { runCommand } from "../recorder/debugger/commands.js";
import { DebugSession } from "../recorder/debugger/session.js";
import { exportPerfetto } from "../recorder/export_perfetto.js";
import { buildTraceView } from "../recorder/viewer/model.js";
import { MARK_FAULT } from "../recorder/viewer/packed.js";
import { tapsim } from "./helpers/cli.js";
import { writeFaultTrace } from "./helpers/fault_trace.js";

const MS = 1_000_000;
const dir = mkdtempSync(path.join(tmpdir(), "tapsim-rec-faults-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test("dump, info, the Perfetto export, the viewer model and the debugger show the faults", async () => {
  const run = { file: path.join(dir, "faults.trace") };
  await writeFaultTrace(run.file);

  const dump = tapsim("dump", run.file, "--kind", "fault");
  assert.is(dump.code, 0, dump.stderr);
  assert.equal(dump.stdout.trim().split("\n"), [
    '0.020000000s fault network partition "n0,n1 | n2,n3"',
    '0.060000000s fault network heal "n0,n1 | n2,n3"',
    "0.070000000s fault node=3 poweroff",
  ]);
  const dump_node = tapsim("dump", run.file, "--kind", "fault,command", "--node", "3");
  assert.is(dump_node.stdout.trim().split("\n").length, 3, "network changes concern every node");

  const info = tapsim("info", run.file);
  assert.is(info.code, 0, info.stderr);
  assert.match(info.stdout, /fault 3/);
  assert.match(info.stdout, /faults \(3\):\n  0\.020000000s network: partition "n0,n1 \| n2,n3"\n  0\.060000000s network: heal "n0,n1 \| n2,n3"\n  0\.070000000s node 3 n3: poweroff\n/);
  assert.match(info.stdout, /drops by reason: link_down 64, node_down \d+/);
  const json = JSON.parse(tapsim("info", run.file, "--json").stdout) as { faults: unknown[]; drops_by_reason: Record<string, number> };
  assert.is(json.faults.length, 3);
  assert.is(json.drops_by_reason["link_down"], 64);

  const perfetto = path.join(dir, "tools.json");
  const stats = exportPerfetto(run.file, perfetto);
  assert.is(stats.faults, 3);
  const events = (JSON.parse(readFileSync(perfetto, "utf8")) as { traceEvents: { name: string; cat?: string; ph: string; s?: string; tid?: number; ts?: number }[] }).traceEvents;
  assert.equal(
    events.filter((e) => e.cat === "fault").map((e) => [e.name, e.ph, e.s, e.tid, e.ts]),
    [
      ["network: partition n0,n1 | n2,n3", "i", "g", 0, 20_000],
      ["network: heal n0,n1 | n2,n3", "i", "g", 0, 60_000],
      ["fault: poweroff", "i", "t", 3, 70_000],
    ],
  );

  const view = buildTraceView(run.file, "t");
  assert.is(view.meta.counts.faults, 3);
  const faults = [...view.arrays.mark_kind.keys()].filter((i) => view.arrays.mark_kind[i] === MARK_FAULT);
  assert.equal(
    faults.map((i) => [view.arrays.mark_node[i], view.arrays.mark_t_ns[i], view.meta.mark_texts[view.arrays.mark_text[i]!]]),
    [
      [-1, 20 * MS, "network partition: n0,n1 | n2,n3"],
      [-1, 60 * MS, "network heal: n0,n1 | n2,n3"],
      [3, 70 * MS, "fault: poweroff"],
    ],
  );

  const session = DebugSession.open(run.file);
  try {
    assert.equal((await runCommand(session, "break fault node 3")).lines, ["breakpoint 1 (fault on node 3) set"]);
    const hit = (await runCommand(session, "continue")).lines;
    assert.is(hit[0], "breakpoint 1 (fault on node 3) hit");
    assert.match(hit[1]!, /^#\d+ 0\.070000000s fault node=3 poweroff$/);
    assert.match((await runCommand(session, "info node 3")).lines[0]!, /^node 3 n3: clock=0\.070000000s .* powered off$/);
    await runCommand(session, "delete");
    await runCommand(session, "goto 0");
    await runCommand(session, "break fault");
    assert.match((await runCommand(session, "continue")).lines[1]!, /fault network partition "n0,n1 \| n2,n3"$/);
  } finally {
    session.close();
  }
});

test.run();
