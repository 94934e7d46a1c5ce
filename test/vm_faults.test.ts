// Failures of VM runs as a user meets them: a gate that misses its deadline (a deliberately
// broken build, tapsim-gate-fault.so, arms every deadline 143 ns late from its 50th slice),
// and tapsim itself SIGKILLed mid-run. Each must end in one line, a trace that holds what
// happened (and replays identical), and nothing left running or on disk.

import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { RecordKind, type TraceRecord } from "../engine/trace_records.js";
import { gateVariantPath } from "../qmp/launcher.js";
import { TraceReader } from "../recorder/reader.js";
import { tapsim } from "./helpers/cli.js";
import { isAlive, leftovers, runResources, startRun, stopRun } from "./helpers/vm.js";

const dir = mkdtempSync(path.join(tmpdir(), "tapsim-vmfaults-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const FAULT_GATE = gateVariantPath("fault");
const BOOT_TIMEOUT_MS = 300_000;

function readAll(trace: string): { records: TraceRecord[]; complete: boolean } {
  const reader = TraceReader.open(trace);
  try {
    const records = [...reader.records()];
    return { records, complete: reader.status().complete };
  } finally {
    reader.close();
  }
}

test("a gate that stops 143 ns late is caught: one line naming the node, exit 1, the error recorded in run_end, replay identical, nothing left", async () => {
  assert.ok(existsSync(FAULT_GATE), `${FAULT_GATE} (built by scripts/build_gate.sh)`);
  const trace = path.join(dir, "fault.trace");
  const run = startRun(["run", "--vms", "3", "--no-ssh", "--duration", "20s", "--trace", trace, "--ssh-port-base", "25322", "--no-progress"], { TAPSIM_GATE_PLUGIN: FAULT_GATE });
  try {
    await run.waitFor(/run dir \S+; pids/, BOOT_TIMEOUT_MS);
    const resources = runResources(run.stderr());
    const exit = await run.done;
    assert.is(exit.code, 1, run.stderr());
    const errors = run.stderr().split("\n").filter((l) => l.startsWith("tapsim: n"));
    assert.is(errors.length, 1, run.stderr());
    assert.match(errors[0]!, /^tapsim: n\d: the slice gate stopped 143 ns after its deadline \(at [\d.]+s, deadline [\d.]+s\); run stopped at t=[\d.]+s, trace finalised: /);
    assert.not.match(run.stderr(), /^\s+at /m, "no stack trace");
    assert.match(run.stdout(), /worst \|virtual clock - deadline\| = 143 ns/);
    assert.equal(leftovers(resources), []);
    const { records, complete } = readAll(trace);
    assert.ok(complete, "the trace was finalised (index written)");
    const last = records.at(-1)!;
    assert.is(last[0], RecordKind.RunEnd);
    assert.is(last[2], "error");
    assert.match(String(last[3]), /the slice gate stopped 143 ns after its deadline/);
    assert.ok(records.some((r) => r[0] === RecordKind.Lifecycle && r[3] === "crash" && /143 ns after/.test(r[4])), "a crash lifecycle record for the node");
    const replay = tapsim("replay", trace);
    assert.is(replay.code, 0, replay.stdout + replay.stderr);
    assert.match(replay.stdout, /identical/);
  } finally {
    await stopRun(run);
  }
});

test("tapsim SIGKILLed mid-run: the records of the run so far are on disk, no QEMU outlives it, its run dir is gone", async () => {
  const trace = path.join(dir, "killed.trace");
  const run = startRun(["run", "--vms", "3", "--no-ssh", "--trace", trace, "--ssh-port-base", "25422", "--no-progress"]);
  try {
    await run.waitFor(/run dir \S+; pids/, BOOT_TIMEOUT_MS);
    const resources = runResources(run.stderr());
    await sleep(4000);
    run.child.kill("SIGKILL");
    await run.done;
    // The QEMUs notice at once (parent-death signal, or EOF at the gate); allow for a busy host.
    const gone = await eventually(() => leftovers(resources).length === 0, 30_000);
    assert.ok(gone, leftovers(resources).join("; "));
    const { records, complete } = readAll(trace);
    assert.not.ok(complete, "a killed run has no index");
    const slices = records.filter((r) => r[0] === RecordKind.SliceEnd).length;
    assert.ok(slices > 0, `slices of the 4 s before the kill are in the trace (${records.length} records)`);
    for (const pid of resources.pids) assert.not.ok(isAlive(pid), `QEMU ${pid}`);
  } finally {
    run.child.kill("SIGKILL");
  }
});


async function eventually(ok: () => boolean, timeout_ms: number): Promise<boolean> {
  const deadline = Date.now() + timeout_ms;
  while (!ok()) {
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

test.run();
