// Sweep files and local sweeps: points are the product of the grid (and the listed points),
// each point's values land in its scenario by path with everything else kept, every bad
// path or value is one line located in the sweep file (exit 2) before anything runs, and
// the example sweep runs with --jobs 2 into per-point run directories merged into one
// table, a CSV, a JSON file and an SVG plot; `resubmit --points` runs one point again.

import { test } from "uvu";
import * as assert from "uvu/assert";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { InputError } from "../engine/errors.js";
import { parseSweep } from "../sweep/plan.js";
import { REPO_ROOT, tapsim, tapsimWith } from "./helpers/cli.js";

const tmp = mkdtempSync(path.join(tmpdir(), "tapsim-sweep-"));
test.after(() => rmSync(tmp, { recursive: true, force: true }));
const DEFAULTS = { memory_mib: 256, rtc_base: "2025-01-01T00:00:00" };
const SCENARIO = path.join(REPO_ROOT, "scenarios/bracha_partition.yaml");

function plan(body: string) {
  return parseSweep(`scenario: ${SCENARIO}\n${body}`, "w.yaml", DEFAULTS);
}

function errorOf(body: string): string {
  try {
    plan(body);
  } catch (err) {
    assert.instance(err, InputError);
    assert.not.match((err as Error).message, /\n/);
    return (err as Error).message;
  }
  assert.unreachable(`no error for:\n${body}`);
  return "";
}

test("points: each listed point at every grid combination, the grid's first path slowest; values set by path, the rest of the scenario kept", () => {
  const p = plan("points:\n  - {seed: 3}\n  - {seed: 4, workload.payload_bytes: 100}\ngrid:\n  workload.messages: [2, 7]\n  faults[1].at: [600ms]\n");
  assert.equal(p.params.map((x) => x.path), ["seed", "workload.payload_bytes", "workload.messages", "faults[1].at"]);
  assert.equal(p.points.map((x) => x.dir), ["points/0-seed3-messages2-at600ms", "points/1-seed3-messages7-at600ms", "points/2-seed4-payload_bytes100-messages2-at600ms", "points/3-seed4-payload_bytes100-messages7-at600ms"]);
  assert.equal(p.points[2]!.values, { seed: 4, "workload.payload_bytes": 100, "workload.messages": 2, "faults[1].at": "600ms" });
  assert.equal(p.points[0]!.values["workload.payload_bytes"], null, "a path a point does not set: empty");
  const text = p.points[3]!.text;
  assert.match(text, /^# In-process Bracha broadcast/, "comments kept");
  assert.match(text, /seed: 4\n/);
  assert.match(text, /messages: 7\n\s+payload_bytes: 100\n/);
  assert.match(text, /- at: 600ms\n\s+heal: true/);
  assert.is(p.scenario_source, SCENARIO);
});

test("errors: one line, located at the sweep's key or value, before any point runs", () => {
  assert.match(errorOf("grid:\n  workload.messages: [2, 0]\n"), /^w\.yaml:3:26: point 1 \(workload\.messages=0\): scenario line \d+:\d+: workload\.messages: expected an integer within 1\.\.1000000, got 0$/);
  assert.match(errorOf("grid:\n  workload.mesages: [1]\n"), /^w\.yaml:3:22: point 0 .*unknown field "mesages" \(did you mean "messages"\?\)/);
  assert.match(errorOf("grid:\n  until.duration: [1s]\n"), /^w\.yaml:3:20: until\.duration: until is "1s" in the scenario, not a mapping/);
  assert.match(errorOf("grid:\n  faults[5].at: [1s]\n"), /^w\.yaml:3:18: faults\[5\]\.at: faults has 2 item\(s\)/);
  assert.match(errorOf("grid:\n  faults[0].at: [100ms, 900ms]\n"), /^w\.yaml:3:25: point 1 \(faults\[0\]\.at=900ms\): .*heal at 0\.8s but no partition is in effect/);
  assert.match(errorOf("grid:\n  work..x: [1]\n"), /^w\.yaml:3:3: "work\.\.x": not a value path/);
  assert.match(errorOf("grid:\n  seed: []\n"), /^w\.yaml:3:9: grid\.seed: expected a non-empty list/);
  assert.match(errorOf("points:\n  - {seed: 1}\ngrid:\n  seed: [2]\n"), /^w\.yaml:5:10: "seed" is set by both points: and grid:/);
  assert.match(errorOf("gird: {seed: [1]}\n"), /^w\.yaml:2:1: top level: unknown field "gird" \(did you mean "grid"\?\)/);
  assert.match(errorOf(""), /^w\.yaml:1:1: top level: give grid:/);
  const missing = tapsim("sweep", path.join(tmp, "nope.yaml"));
  assert.is(missing.code, 2);
  assert.match(missing.stderr, /^tapsim: .*nope\.yaml: .*no such file\n$/);
  // Nothing to submit to: one line, exit 2, no sweep directory.
  const dir = path.join(tmp, "never");
  const r = tapsimWith({ env: { ...process.env, PATH: "/nonexistent" } }, "sweep", "scenarios/bracha_sweep.yaml", "--on", "slurm", "--dir", dir);
  assert.is(r.code, 2);
  assert.is(r.stderr, "tapsim: --on slurm: no sbatch on PATH (run where Slurm's client commands are installed, or --on local)\n");
  assert.not.ok(existsSync(dir));
});

test("the example sweep with --jobs 2: a run directory per point, merged CSV/JSON, a plot, status; resubmit --points reruns one point", () => {
  const dir = path.join(tmp, "bracha");
  const r = tapsimWith({ timeout_ms: 300_000 }, "sweep", "scenarios/bracha_sweep.yaml", "--jobs", "2", "--dir", dir, "--no-progress");
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^sweep bracha_sweep: 6 points: 6 ok, 0 failed, 0 running, 0 pending\n\s+point\s+workload\.messages\s+faults\[1\]\.at\s+state/);
  const points = readdirSync(path.join(dir, "points")).sort();
  assert.equal(points, ["0-messages2-at400ms", "1-messages2-at800ms", "2-messages5-at400ms", "3-messages5-at800ms", "4-messages10-at400ms", "5-messages10-at800ms"]);
  for (const p of points) for (const f of ["scenario.yaml", "trace.tapsim", "results.json", "status.json", "log.txt"]) assert.ok(existsSync(path.join(dir, "points", p, f)), `${p}/${f}`);
  const csv = readFileSync(path.join(dir, "sweep.csv"), "utf8");
  const rows = csv.trim().split("\r\n").map((l) => l.split(","));
  assert.equal(rows[0], ["point", "dir", "workload.messages", "faults[1].at", "state", "exit_code", "error", "end_reason", "end_ms", "commands_ok", "commands_total", "frames_delivered", "bytes_delivered", "drops_total"]);
  assert.is(rows.length, 7);
  const frames = rows.slice(1).map((row) => Number(row[11]));
  // More messages, more frames; a longer partition loses more of them.
  assert.ok(frames[0]! < frames[2]! && frames[2]! < frames[4]!, `frames ${frames}`);
  assert.ok(frames[5]! < frames[4]!, `frames ${frames}`);
  const json = JSON.parse(readFileSync(path.join(dir, "sweep.json"), "utf8"));
  assert.equal(json.counts, { pending: 0, running: 0, ok: 6, failed: 0 });
  assert.is(json.rows[3].values["faults[1].at"], "800ms");
  const svg = readFileSync(path.join(dir, "plots/frames_delivered.svg"), "utf8");
  assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.match(svg, /workload\.messages/);
  const status = tapsim("sweep", "status", dir);
  assert.is(status.code, 0, status.stderr);
  assert.match(status.stdout, /^sweep bracha_sweep \(local\): 6 points: 6 ok\n/);
  const trace3 = readFileSync(path.join(dir, "points", points[3]!, "trace.tapsim"));
  const again = tapsimWith({ timeout_ms: 120_000 }, "sweep", "resubmit", dir, "--points", "3", "--no-progress");
  assert.is(again.code, 0, again.stderr);
  assert.match(again.stderr, /resubmitting point 3\n/);
  assert.is(readFileSync(path.join(dir, "sweep.csv"), "utf8"), csv, "the same numbers again");
  assert.ok(readFileSync(path.join(dir, "points", points[3]!, "trace.tapsim")).length === trace3.length);
  const none = tapsim("sweep", "resubmit", dir);
  assert.is(none.code, 2);
  assert.match(none.stderr, /no failed points \(name others with --points\)\n$/);
});

test.run();
