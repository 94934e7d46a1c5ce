// Parallel slices on VMs (issue #12 item 1): `--parallel` runs every VM whose slice is safe
// at once concurrently, pipelined: a VM's next slice begins as soon as its own slice is done
// and no peer still running can send into it. It slices time differently (grant sets of
// planned one set ahead), so slice records differ from the one-at-a-time schedule's, but
// what the guests do must not: every frame each node sends, at the same virtual time with
// the same bytes, and the same console text. Two --parallel runs are identical record for
// record, replay re-derives every decision and rerun re-executes the VMs to the same
// records. Real VMs from the snapshot, with ping and TCP traffic.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { RecordKind, type TraceRecord } from "../engine/trace_records.js";
import { tapsim } from "./helpers/cli.js";
import { readAll } from "./helpers/recorder_fixtures.js";

const dir = mkdtempSync(path.join(tmpdir(), "tapsim-par-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** What the guests did, independent of how time was sliced: sends (node, time, bytes) in order, and each console's text. */
function behaviour(rs: TraceRecord[]): { sends: string[]; consoles: string[] } {
  const sends = rs
    .filter((r) => r[0] === RecordKind.FrameEmit)
    .map((r) => `${r[1]} ${r[2]} ${Buffer.from(r[4] as Uint8Array).toString("hex")}`)
    .sort();
  const consoles = [0, 1, 2].map((node) => rs.filter((r) => r[0] === RecordKind.GuestOutput && r[1] === node).map((r) => r[3] as string).join(""));
  return { sends, consoles };
}

test("3 VMs with ping and TCP traffic: --parallel sends the same frames at the same times as one slice at a time, and repeats itself exactly", () => {
  const args = ["--vms", "3", "--snapshot", "--latency", "latency_configs/delays_3x3.txt", "--duration", "5s", "--no-ssh", "--no-progress",
    "--boot-cmd", "2:mkdir -p /tmp/www && head -c 200000 /dev/urandom > /tmp/www/f && httpd -p 8080 -h /tmp/www && ping -c 5 -i 0.1 10.0.0.1",
    "--boot-cmd", "0:sleep 0.5; wget -q -O /tmp/got http://10.0.0.3:8080/f && sha256sum /tmp/got",
    "--boot-cmd", "1:ping -c 10 -i 0.05 10.0.0.1; ping -c 10 -i 0.05 10.0.0.3"];
  const traces = { seq: path.join(dir, "seq.trace"), par: path.join(dir, "par.trace"), par2: path.join(dir, "par2.trace") };
  for (const [mode, trace] of Object.entries(traces)) {
    const r = tapsim("run", ...args, ...(mode === "seq" ? [] : ["--parallel"]), "--trace", trace);
    assert.is(r.code, 0, r.stderr);
    if (mode === "seq") continue;
    const early = /: (\d+) slices \((\d+) begun early, pipelined\)$/m.exec(r.stdout);
    assert.ok(early !== null, r.stdout);
    assert.ok(Number(early[2]) > Number(early[1]) / 2, `most slices began before the set ahead of theirs was collected: ${early[0]}`);
  }
  const seq = readAll(traces.seq).records;
  const par = readAll(traces.par).records;
  const count = (rs: TraceRecord[], kind: number) => rs.filter((r) => r[0] === kind).length;
  assert.ok(count(par, RecordKind.SliceGrant) !== count(seq, RecordKind.SliceGrant), "the two schedules slice time differently");
  const a = behaviour(seq);
  const b = behaviour(par);
  assert.ok(a.sends.length > 150, `traffic crossed the network (${a.sends.length} frames)`);
  assert.equal(b.sends, a.sends);
  for (let node = 0; node < 3; node++) assert.is(b.consoles[node], a.consoles[node], `node ${node}'s console`);
  assert.match(a.consoles[0]!, /\b[0-9a-f]{64} {2}\/tmp\/got\r?$/m, `the TCP transfer finished: ${a.consoles[0]}`);

  const diff = tapsim("diff", traces.par, traces.par2);
  assert.is(diff.code, 0, diff.stdout + diff.stderr);
  assert.match(diff.stdout, /identical event by event/);
  const replay = tapsim("replay", traces.par);
  assert.is(replay.code, 0, replay.stdout + replay.stderr);
  assert.match(replay.stdout, /identical/);
  const rerun = tapsim("rerun", traces.par);
  assert.is(rerun.code, 0, rerun.stdout + rerun.stderr);
  assert.match(rerun.stdout, /identical/);
});

test.run();
