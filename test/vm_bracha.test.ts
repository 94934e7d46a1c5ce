// Bracha's reliable broadcast on real VMs: our Go program (workloads/bracha, as the
// reference ran it: TCP full mesh, Nagle, its thresholds) on 4 VMs of a 50 ms matrix, with
// M = 3 (the reference's driver used 50; 3 keeps the test near a minute of wall time here).
// Every correct node delivers all values, and each node's "Execution time" lies within the
// bound docs/bracha.md documents for the in-process model's prediction (transport tcp_like,
// rules reference): never faster than the model less 2 % / 20 ms, and slower by at most what
// delayed ACKs (which the model leaves out) were measured to add. Which run meets a delayed
// ACK depends on microsecond races between the nodes' goroutines, so on the seed and on the
// image (its random host key shifts guest timing): seed 1 agreed to 1 ms on one machine's
// image and added 50 ms to a node on CI's, so the bounds cover the measured spread.

import { test } from "uvu";
import * as assert from "uvu/assert";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { RecordKind, type TraceRecord } from "../engine/trace_records.js";
import { TraceReader } from "../recorder/reader.js";
import { REPO_ROOT, tapsimWith } from "./helpers/cli.js";

const tmp = mkdtempSync(path.join(tmpdir(), "tapsim-vm-bracha-"));
const PROGRAM = path.join(REPO_ROOT, ".tapsim/workloads/bracha");
const MATRIX = path.join(REPO_ROOT, "latency_configs/delays_4x4_50ms.txt");
const N = 4;
const M = 3;
/** docs/bracha.md: a VM node is never faster than the tcp_like model less this (fraction or ms). */
const BOUND_FRACTION = 0.02;
const BOUND_MS = 20;
/**
 * docs/bracha.md: how much slower than the model a VM node may be, with all nodes correct
 * (11 variants of seed, image and management addresses: within 1 ms in 8, +50 to +150 ms,
 * +10.3 % at worst, in 3) and with one node silent (fewer replies to carry ACKs: +28 % at worst).
 */
const SLOWER_FRACTION_MAX_CORRECT = 0.2;
const SLOWER_FRACTION_MAX_SILENT = 0.35;

function scenario(name: string, silent: number[]): string {
  const file = path.join(tmp, `${name}.yaml`);
  const silent_flag = silent.length === 0 ? "" : ` --silent ${silent.join(",")}`;
  writeFileSync(
    file,
    [
      `topology: ${MATRIX}`,
      `vm: {add: ["${PROGRAM}:/usr/bin/bracha"]}`,
      "commands:",
      "  - name: bracha",
      "    nodes: all",
      "    at: 3s",
      `    run: /usr/bin/bracha --n ${N} --m ${M}${silent_flag} --t0 $(vclock -r)`,
      "    timeout: 60s",
      "until: {all_exited: true, duration: 90s}",
      "metrics:",
      "  - {name: execution_time, pattern: 'Execution time: ([0-9.]+) seconds', unit: s}",
      "",
    ].join("\n"),
  );
  return file;
}

/** The lines each node's command printed (the agent prefixes them "[id] "). */
function commandLines(dir: string): string[][] {
  const reader = TraceReader.open(path.join(dir, "trace.tapsim"));
  const text: string[] = Array.from({ length: N }, () => "");
  try {
    for (const r of reader.records() as Iterable<TraceRecord>) {
      if (r[0] === RecordKind.GuestOutput) text[r[1] as number] += r[3] as string;
    }
  } finally {
    reader.close();
  }
  return text.map((t, i) => t.split("\n").map((l) => l.replace(/\r$/, "")).filter((l) => l.startsWith(`[n${i}.bracha] `)).map((l) => l.slice(`[n${i}.bracha] `.length)));
}

/** The model's per-node prediction, in seconds. */
function model(silent: number[]): (number | null)[] {
  const args = ["run", "--latency", MATRIX, "--messages", `${M}`, "--start-spread", "0", "--transport", "tcp_like", "--rules", "reference", "--json", "--no-progress", "--trace", path.join(tmp, `model-${silent.join("_")}.trace`)];
  if (silent.length > 0) args.push("--silent", silent.join(","));
  const r = tapsimWith({}, ...args);
  assert.is(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout).workload.done_ms as (number | null)[]).map((t) => (t === null ? null : t / 1e3));
}

function runVms(name: string, silent: number[]): { lines: string[][]; results: { commands: { ok: boolean }[] } } {
  assert.ok(existsSync(PROGRAM), `${PROGRAM} missing: run scripts/bootstrap.sh (it needs Go)`);
  const dir = path.join(tmp, name);
  const r = tapsimWith({ timeout_ms: 300_000 }, "run", scenario(name, silent), "--out", dir, "--no-progress");
  assert.is(r.code, 0, r.stdout + r.stderr);
  return { lines: commandLines(dir), results: JSON.parse(readFileSync(path.join(dir, "results.json"), "utf8")) };
}

function checkRun(silent: number[]): void {
  const { lines, results } = runVms(`silent-${silent.length}`, silent);
  assert.ok(results.commands.every((c) => c.ok), "every node's program exited 0");
  const correct = Array.from({ length: N }, (_, id) => id).filter((id) => !silent.includes(id));
  const values = correct.flatMap((id) => Array.from({ length: M }, (_, k) => (k + 1) * N + id)).sort((a, b) => a - b);
  const predicted = model(silent);
  for (let id = 0; id < N; id++) {
    const delivered = lines[id]!.filter((l) => l.startsWith("Delivered msg ")).map((l) => Number(l.slice("Delivered msg ".length)));
    const time = lines[id]!.map((l) => /^Execution time: ([0-9.]+) seconds$/.exec(l)).find((m) => m !== null);
    if (silent.includes(id)) {
      assert.equal(delivered, [], `silent n${id} delivers nothing`);
      assert.is(time, undefined);
      assert.is(predicted[id], null);
      continue;
    }
    assert.equal([...delivered].sort((a, b) => a - b), values, `n${id} delivers every correct node's ${M} values once`);
    assert.ok(time !== undefined, `n${id} prints its execution time`);
    const vm_s = Number(time![1]);
    const model_s = predicted[id]!;
    const bound_s = Math.max(BOUND_FRACTION * model_s, BOUND_MS / 1e3);
    const above_s = (silent.length === 0 ? SLOWER_FRACTION_MAX_CORRECT : SLOWER_FRACTION_MAX_SILENT) * model_s;
    assert.ok(vm_s >= model_s - bound_s && vm_s <= model_s + above_s, `n${id}: VM ${vm_s} s, tcp_like model ${model_s} s: outside [-${bound_s}, +${above_s}] s`);
  }
}

test(`4 VMs, 50 ms matrix, M = ${M}: every node delivers all ${N * M} values; execution times no faster than the tcp_like model, at most 20 % slower`, () => {
  checkRun([]);
});

test(`4 VMs with node 3 silent (f = 1): the 3 correct nodes deliver all ${(N - 1) * M} values, no faster than the model, at most 35 % slower`, () => {
  checkRun([3]);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
