// `tapsim sweep --on slurm` against a real Slurm (Debian's slurmctld, slurmd and munge, a
// single-node cluster in a temporary directory, test/helpers/slurm.ts): the example sweep
// of 6 in-process points and a sweep of 2 small VM points go in as job arrays; status
// follows them to the end; collect merges them into the same sweep.csv as `--jobs 1` runs
// of the same sweeps, and every point's trace is identical to its local twin (tapsim diff).
// One VM point fails at run time on purpose (a host folder its scenario adds is missing on
// the node side): status reports it with its error, and once the folder is back,
// `resubmit` runs that point alone, as a new array, to success.

import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { REPO_ROOT, tapsimWith, type CliResult } from "./helpers/cli.js";
import { slurmMissing, startSlurm, type SlurmCluster } from "./helpers/slurm.js";

const tmp = mkdtempSync(path.join(tmpdir(), "tapsim-sweep-slurm-"));
const SWEEP_WAIT_MS = 300_000;
const POLL_MS = 2_000;
let cluster: SlurmCluster | null = null;

test.before(async () => {
  const missing = slurmMissing();
  if (missing !== null) throw new Error(`slurm: ${missing}`);
  cluster = await startSlurm();
});

test.after(async () => {
  await cluster?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

function cli(timeout_ms: number, ...args: string[]): CliResult {
  return tapsimWith({ timeout_ms, env: cluster!.env }, ...args);
}

interface StatusJson {
  counts: Record<string, number>;
  points: { point: number; state: string; detail: string; job_id: string | null }[];
}

function status(dir: string): StatusJson {
  const r = cli(30_000, "sweep", "status", dir, "--json");
  assert.is(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as StatusJson;
}

/** Polls `tapsim sweep status` until no point is pending, starting or running. */
async function settled(dir: string): Promise<StatusJson> {
  const deadline = Date.now() + SWEEP_WAIT_MS;
  for (;;) {
    const s = status(dir);
    if (s.points.every((p) => p.state === "ok" || p.state === "failed" || p.state === "lost")) return s;
    if (Date.now() > deadline) throw new Error(`sweep ${dir} not done after ${SWEEP_WAIT_MS / 1000} s: ${JSON.stringify(s.counts)}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** A 2-VM scenario: n0 reads a file the host adds, then pings n1 three times. */
function writeVmSweep(): string {
  writeFileSync(
    path.join(tmp, "pair.yaml"),
    `topology: ${path.join(REPO_ROOT, "latency_configs/delays_2x2.txt")}
vm:
  add: ["in1:/srv/in"]
commands:
  - name: ping
    node: n0
    at: 500ms
    run: cat /srv/in/value && ping -c 3 -i 0.2 10.0.0.2
until: {all_exited: true, duration: 30s}
metrics:
  - {name: rtt, node: n0, pattern: 'time=([0-9.]+) ms', unit: ms}
`,
  );
  for (const name of ["in1", "in2"]) {
    mkdirSync(path.join(tmp, name), { recursive: true });
    writeFileSync(path.join(tmp, name, "value"), `${name}\n`);
  }
  const file = path.join(tmp, "pair_sweep.yaml");
  writeFileSync(file, `scenario: pair.yaml\npoints:\n  - {seed: 1, vm.add: ["in1:/srv/in"]}\n  - {seed: 2, vm.add: ["in2:/srv/in"]}\n`);
  return file;
}

function csv(dir: string): string {
  return readFileSync(path.join(dir, "sweep.csv"), "utf8");
}

function pointDirs(dir: string): string[] {
  const plan = JSON.parse(readFileSync(path.join(dir, "plan.json"), "utf8")) as { points: { dir: string }[] };
  return plan.points.map((p) => p.dir);
}

function assertSameRuns(local: string, slurm: string): void {
  assert.is(csv(slurm), csv(local), "merged tables equal");
  for (const p of pointDirs(local)) {
    const d = cli(60_000, "diff", path.join(local, p, "trace.tapsim"), path.join(slurm, p, "trace.tapsim"));
    assert.is(d.code, 0, `${p}: traces differ:\n${d.stdout}${d.stderr}`);
  }
}

test("a sweep on Slurm merges to what --jobs 1 gives; a point that fails at run time is reported and resubmitted alone", async () => {
  const t0 = Date.now();
  const bracha = path.join(REPO_ROOT, "scenarios/bracha_sweep.yaml");
  const vm_sweep = writeVmSweep();
  const local_b = path.join(tmp, "local_b");
  const local_v = path.join(tmp, "local_v");
  const slurm_b = path.join(tmp, "slurm_b");
  const slurm_v = path.join(tmp, "slurm_v");
  let r = cli(120_000, "sweep", bracha, "--jobs", "1", "--dir", local_b, "--no-progress");
  assert.is(r.code, 0, r.stderr);
  r = cli(300_000, "sweep", vm_sweep, "--jobs", "1", "--dir", local_v, "--no-progress");
  assert.is(r.code, 0, r.stderr + r.stdout);
  const t_local = Date.now();

  // On the node side point 1's input is missing: it fails when it runs, not when it is parsed.
  renameSync(path.join(tmp, "in2"), path.join(tmp, "in2.away"));
  r = cli(60_000, "sweep", bracha, "--on", "slurm", "--dir", slurm_b);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^submitted job \d+: array of 6 task\(s\)/);
  r = cli(60_000, "sweep", vm_sweep, "--on", "slurm", "--dir", slurm_v);
  assert.is(r.code, 0, r.stderr);
  const sb = await settled(slurm_b);
  assert.equal(sb.counts, { ok: 6 });
  const sv = await settled(slurm_v);
  assert.is(sv.points[0]!.state, "ok", JSON.stringify(sv));
  assert.is(sv.points[1]!.state, "failed");
  assert.match(sv.points[1]!.detail, /in2/, "the error names the missing folder");
  assert.not.match(sv.points[1]!.detail, /\n/);
  r = cli(60_000, "sweep", "collect", slurm_v);
  assert.is(r.code, 1, "collect: a point failed");
  assert.match(r.stdout, /1 ok, 1 failed/);
  assert.match(r.stdout, /failed: point 1 \(points\/1-seed2-add1\): .*in2/);
  const status0 = readFileSync(path.join(slurm_v, pointDirs(slurm_v)[0]!, "status.json"), "utf8");

  // Fixed, and only the failed point goes in again, as a new array.
  renameSync(path.join(tmp, "in2.away"), path.join(tmp, "in2"));
  r = cli(60_000, "sweep", "resubmit", slurm_v);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, /resubmitting point 1\b/);
  const jobs = JSON.parse(readFileSync(path.join(slurm_v, "slurm/jobs.json"), "utf8")) as { submissions: { job_id: string; points: number[] }[] };
  assert.equal(jobs.submissions.map((s) => s.points), [[0, 1], [1]]);
  const sv2 = await settled(slurm_v);
  assert.equal(sv2.counts, { ok: 2 });
  assert.is(sv2.points[1]!.job_id, jobs.submissions[1]!.job_id);
  assert.is(readFileSync(path.join(slurm_v, pointDirs(slurm_v)[0]!, "status.json"), "utf8"), status0, "point 0 untouched");

  for (const dir of [slurm_b, slurm_v]) {
    r = cli(60_000, "sweep", "collect", dir);
    assert.is(r.code, 0, r.stderr + r.stdout);
  }
  assertSameRuns(local_b, slurm_b);
  assertSameRuns(local_v, slurm_v);
  assert.match(csv(slurm_v), /^point,dir,seed,vm\.add,state,.*,rtt_count,rtt_mean,rtt_p50,rtt_p99,rtt_max\r\n/);
  console.log(`sweep_slurm: local ${((t_local - t0) / 1000).toFixed(1)} s, slurm ${((Date.now() - t_local) / 1000).toFixed(1)} s`);
});

test.run();
