// Soak: a `tapsim run --vms N` with SSH sessions open and traffic for a bounded stretch of
// wall time, then Ctrl+C; prints the slices the gate checked and the worst |virtual clock -
// deadline|. What it exercises is what broke the gate before (issue #8, qmp/README.md):
// QEMU's main loop woken at host times while mostly idle guests go in and out of HLT — an
// open SSH session per VM printing once a second (virtual), a monitoring client polling
// each VM's QMP socket, commands started over SSH, pings between the guests and SFTP
// transfers. With the gate of main before the fix this failed 4 of 4 runs of 90 s.
//
//   node dist/bench/soak.js [--vms 3] [--wall 120] [--port-base 27300] [--gate PLUGIN.so]
//
// `soak()` is also what the suite's soak test runs (test/vm_soak.test.ts).

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { QmpClient } from "../qmp/client.js";
import { nodeTarget, runAccess } from "../cli/ssh_target.js";
import { SshError, sshCopy, sshExec, type SshTarget } from "../qmp/ssh.js";

export interface SoakOptions {
  vms: number;
  wall_s: number;
  ssh_port_base: number;
  /** Another gate build (TAPSIM_GATE_PLUGIN), e.g. an old one to measure a regression. */
  gate_plugin?: string;
  trace_path?: string;
  log?: (line: string) => void;
}

export interface SoakResult {
  /** Exit status of `tapsim run`: 130 after Ctrl+C when the run survived. */
  exit_code: number | null;
  gate_slices: number;
  /** null when the run never printed its summary (it failed instead). */
  gate_error_ns_max: number | null;
  /** The run's own one-line error, when it failed. */
  failure: string | null;
  virtual_s: number;
  wall_s: number;
  load: { commands: number; copies: number; qmp_queries: number; failed: number };
  stdout: string;
  stderr: string;
}

const READY_TIMEOUT_MS = 420_000;
const LOAD_PERIOD_MS = 1_500;
const COPY_EVERY = 5; // one SFTP transfer per this many load rounds
const COPY_BYTES = 256 * 1024;

export async function soak(o: SoakOptions): Promise<SoakResult> {
  if (!(o.vms >= 2 && o.vms <= 64)) throw new Error(`soak: vms must be 2..64, got ${o.vms}`);
  if (!(o.wall_s > 0)) throw new Error(`soak: wall_s must be positive, got ${o.wall_s}`);
  const dir = mkdtempSync(path.join(tmpdir(), "tapsim-soak-"));
  const trace = o.trace_path ?? path.join(dir, "soak.trace");
  const log = o.log ?? (() => {});
  const env = { ...process.env, ...(o.gate_plugin ? { TAPSIM_GATE_PLUGIN: o.gate_plugin } : {}) };
  const bin = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../../bin/tapsim.js");
  // --pace off: idle guests race ahead, so they go in and out of HLT far more often per
  // second of wall time than a paced run (the measurements in BENCHMARKS.md were unpaced).
  const args = ["run", "--vms", String(o.vms), "--trace", trace, "--ssh-port-base", String(o.ssh_port_base), "--pace", "off", "--no-progress"];
  const child = spawn(process.execPath, [bin, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (s: string) => (stdout += s));
  child.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s));
  const done = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  let exited = false;
  void done.then(() => (exited = true));
  const load = { commands: 0, copies: 0, qmp_queries: 0, failed: 0 };
  const stop = new AbortController();
  const t0 = Date.now();
  try {
    if (!(await until(() => /^READY /m.test(stdout), () => exited, READY_TIMEOUT_MS))) {
      return finish(await stopRun(child, done), null);
    }
    await until(() => /run dir \S+; /.test(stderr), () => exited, 10_000); // stderr is a separate pipe
    log(`soak: ${o.vms} VMs ready after ${((Date.now() - t0) / 1000).toFixed(0)} s; load for ${o.wall_s} s`);
    // Logged in as `tapsim exec` does: the client key, the run's known_hosts.
    const access = runAccess({ sshPortBase: o.ssh_port_base });
    const targets = Array.from({ length: o.vms }, (_, i): SshTarget => nodeTarget(access, i));
    const blob = path.join(dir, "blob");
    writeFileSync(blob, Buffer.alloc(COPY_BYTES, 0x5a));
    const t_load = Date.now();
    // Sessions that stay open and print now and then: host-socket events for every QEMU
    // while its guest is mostly idle (in and out of HLT).
    const sessions = targets.map((t) => sshExec(t, "while true; do echo tick; sleep 1; done", { timeout_ms: o.wall_s * 1000 + 600_000, signal: stop.signal }).catch(() => null));
    const run_dir = /run dir (\S+); /.exec(stderr)?.[1];
    if (run_dir) sessions.push(...Array.from({ length: o.vms }, (_, i) => pollQmp(path.join(run_dir, `node${i}.qmp`), stop.signal, () => (load.qmp_queries += 1))));
    for (let round = 0; Date.now() - t_load < o.wall_s * 1000 && !exited; round++) {
      const from = round % o.vms;
      const to = (from + 1) % o.vms;
      const work: Promise<unknown>[] = [sshExec(targets[from]!, `ping -c 3 -i 0.2 10.0.0.${to + 1} > /dev/null; uptime`, { timeout_ms: 120_000, signal: stop.signal }).then(() => (load.commands += 1))];
      if (round % COPY_EVERY === 0) work.push(sshCopy(targets[to]!, blob, "/tmp/soak.blob").then(() => (load.copies += 1)));
      const settled = await Promise.allSettled([...work, sleep(LOAD_PERIOD_MS)]);
      load.failed += settled.filter((s) => s.status === "rejected" && !(s.reason instanceof SshError && s.reason.kind === "aborted")).length;
    }
    stop.abort();
    await Promise.allSettled(sessions);
    return finish(await stopRun(child, done), t_load);
  } finally {
    stop.abort();
    if (!exited) child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }

  function finish(exit_code: number | null, t_load: number | null): SoakResult {
    const gate = /slice gate: (\d+) slices, worst \|virtual clock - deadline\| = (\d+) ns/.exec(stdout);
    const ran = /ran to t=([\d.]+)s virtual/.exec(stdout);
    const failure = exit_code === 130 || exit_code === 0 ? null : (stderr.split("\n").filter((l) => /slice gate|error|failed|killed|crash/i.test(l) && !/^\s+at /.test(l))[0] ?? `exit ${exit_code}`);
    return {
      exit_code,
      gate_slices: gate ? Number(gate[1]) : 0,
      gate_error_ns_max: gate ? Number(gate[2]) : null,
      failure,
      virtual_s: ran ? Number(ran[1]) : 0,
      wall_s: t_load === null ? 0 : (Date.now() - t_load) / 1000,
      load,
      stdout,
      stderr,
    };
  }
}

/** A monitoring client: query-status in a loop until stopped (each one wakes QEMU's main loop). */
async function pollQmp(socket_path: string, signal: AbortSignal, counted: () => void): Promise<null> {
  const client = await QmpClient.connect(socket_path).catch(() => null);
  if (client === null) return null;
  try {
    while (!signal.aborted) {
      await client.execute("query-status", undefined, 60_000);
      counted();
    }
  } catch {
    // the run ended (or the VM died): the soak's result says which
  } finally {
    client.close();
  }
  return null;
}

async function stopRun(child: ReturnType<typeof spawn>, done: Promise<number | null>): Promise<number | null> {
  if (child.exitCode === null) child.kill("SIGINT");
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const code = await done;
  clearTimeout(timer);
  return code;
}

async function until(ok: () => boolean, give_up: () => boolean, timeout_ms: number): Promise<boolean> {
  const deadline = Date.now() + timeout_ms;
  while (!ok()) {
    if (give_up() || Date.now() > deadline) return false;
    await sleep(200);
  }
  return true;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : fallback;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const gate = flag("--gate", "");
  const r = await soak({
    vms: Number(flag("--vms", "3")),
    wall_s: Number(flag("--wall", "120")),
    ssh_port_base: Number(flag("--port-base", "27300")),
    ...(gate ? { gate_plugin: path.resolve(gate) } : {}),
    log: (l) => console.error(l),
  });
  const worst = r.gate_error_ns_max === null ? "n/a (run failed)" : `${r.gate_error_ns_max} ns`;
  console.log(`soak: ${r.gate_slices} slices checked, worst error ${worst}, ${r.virtual_s.toFixed(1)} s virtual in ${r.wall_s.toFixed(0)} s of load; ${r.load.commands} commands, ${r.load.copies} copies, ${r.load.qmp_queries} QMP queries, ${r.load.failed} failed`);
  if (r.failure) console.log(`soak: FAILED: ${r.failure}`);
  process.exit(r.failure || r.gate_error_ns_max !== 0 ? 1 : 0);
}
