// `tapsim run --vms N`: boot N QEMU VMs behind slice gates, wait until each answers SSH,
// print READY with the SSH ports, run until --duration (virtual) or Ctrl+C, record every
// slice and frame. Every exit path stops every QEMU and finalises the trace.

import { statSync } from "node:fs";
import type { Engine, RunControl, RunSummary } from "../engine/engine.js";
import { InputError } from "../engine/errors.js";
import { createEngine, makeRunConfig } from "../engine/run.js";
import { loadTopologyFile } from "../engine/topology_parse.js";
import type { RunConfig, VmRunConfig } from "../engine/trace_records.js";
import { formatVirtualNs } from "../engine/units.js";
import { ensureDefaultImage, openUserImage, type GuestImage } from "../guest/image.js";
import { startBootLines } from "../qmp/boot_watch.js";
import { GATE_PROTOCOL_VERSION } from "../qmp/gate_channel.js";
import { checkQemu } from "../qmp/launcher.js";
import { VmCluster } from "../qmp/vm_cluster.js";
import type { VmBackend } from "../qmp/vm_backend.js";
import { TraceWriter } from "../recorder/writer.js";
import type { CommonRunFlags } from "./run_flags.js";
import { traceHeader } from "./version.js";

export interface VmRunFlags extends CommonRunFlags {
  vms: number;
  image?: string;
  password?: string;
  memory: number;
  sshPortBase: number;
  sshTimeout: number;
  ssh: boolean;
  bootCmd: string[];
  rtcBase: string;
  progress: boolean;
}

export const EXIT_VM_FAILED = 1;

export async function runVmsCommand(flags: VmRunFlags): Promise<number> {
  const qemu_version = await checkQemu();
  const topology = loadTopologyFile(flags.latency, { nodes: flags.vms });
  const boot_commands = parseBootCommands(flags.bootCmd, flags.vms);
  const image = await resolveImage(flags);
  const config = makeRunConfig({
    topology,
    workload: null,
    seed: flags.seed,
    until_ns: flags.duration ?? null,
    slice_len_max_ns: flags.sliceMax,
    inflight_frames_max: flags.inflightMax,
    backend: "vm",
  });
  config.vm = vmRunConfig(flags, image, qemu_version, boot_commands);
  return await runCluster(flags, config, image, boot_commands);
}

async function runCluster(flags: VmRunFlags, config: RunConfig, image: GuestImage, boot_commands: (string | null)[]): Promise<number> {
  const control: RunControl = { stop_requested: false };
  const aborter = new AbortController();
  const crashes: string[] = [];
  const onCrash = (b: VmBackend) => {
    crashes.push(b.crash!);
    control.stop_requested = true;
    control.stop_reason = "error";
    aborter.abort();
  };
  const onSignal = () => {
    control.stop_requested = true;
    aborter.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  log(flags, `tapsim run: booting ${flags.vms} VMs (QEMU ${config.vm!.qemu_version}, image ${config.vm!.image.identity.slice(0, 12)}), topology ${config.topology.source}`);
  let cluster: VmCluster | null = null;
  let writer: TraceWriter | null = null;
  let boot_lines: { stop(): void } | null = null;
  let summary: RunSummary;
  const progress_line = flags.progress && process.stderr.isTTY === true && !flags.json;
  try {
    cluster = await VmCluster.start({
      config,
      image,
      ssh_port_base: flags.sshPortBase,
      memory_mib: flags.memory,
      rtc_base: flags.rtcBase,
      boot_commands,
      onCrash,
    });
    writer = TraceWriter.create(flags.trace, traceHeader(config));
    const engine = createEngine(config, cluster.backends, writer);
    if (!flags.json) boot_lines = startBootLines({ console_paths: cluster.backends.map((b) => b.vm.console_path), clear_line: progress_line });
    if (progress_line) control.onProgress = showProgress;
    const running = engine.run(control).catch((err: unknown) => {
      engine.finish("error");
      throw err;
    });
    if (flags.ssh) void announceWhenReady(flags, cluster, aborter.signal, engine);
    else log(flags, `READY (no SSH wait) run dir ${cluster.run_dir}; pids ${cluster.backends.map((b) => b.vm.pid).join(" ")}`);
    summary = await running;
  } finally {
    boot_lines?.stop();
    aborter.abort();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await cluster?.stop();
    writer?.close();
    if (progress_line) process.stderr.write("\r\x1b[K");
  }
  printSummary(flags, config, summary, cluster.backends);
  for (const crash of crashes) console.error(`tapsim: VM ${crash}; run stopped at t=${formatVirtualNs(summary.end_ns)}, trace finalised: ${flags.trace}`);
  if (crashes.length > 0) return EXIT_VM_FAILED;
  return summary.end_reason === "interrupted" ? 130 : 0;
}

/** Waits for SSH on every VM while the engine runs them, then prints READY lines. */
async function announceWhenReady(flags: VmRunFlags, cluster: VmCluster, signal: AbortSignal, engine: Engine): Promise<void> {
  let ready = 0;
  try {
    await cluster.waitForSsh(flags.sshTimeout, signal, (node) => {
      ready += 1;
      log(flags, `ssh: node ${node} ready (${ready}/${cluster.backends.length}) at t=${formatVirtualNs(engine.now_ns)} virtual`);
    });
  } catch (err) {
    if (!signal.aborted) console.error(`tapsim: ${(err as Error).message}`);
    return;
  }
  const ports = cluster.backends.map((_, i) => `node${i}=127.0.0.1:${cluster.sshTarget(i).port}`).join(" ");
  log(flags, `run dir ${cluster.run_dir}; QEMU pids ${cluster.backends.map((b) => b.vm.pid).join(" ")}; Ctrl+C ends the run`);
  console.log(`READY ${ports}`);
}

async function resolveImage(flags: VmRunFlags): Promise<GuestImage> {
  if (flags.image !== undefined) {
    return await openUserImage(flags.image, flags.password === undefined ? {} : { ssh_password: flags.password });
  }
  const opts = { log: (line: string) => log(flags, line), ...(flags.password === undefined ? {} : { password: flags.password }) };
  return await ensureDefaultImage(opts);
}

/** `--boot-cmd 'CMD'` runs in every VM; `--boot-cmd 'N:CMD'` only in node N. */
export function parseBootCommands(specs: readonly string[], n: number): (string | null)[] {
  const out: (string | null)[] = new Array<string | null>(n).fill(null);
  for (const spec of specs) {
    const m = /^(\d+):(.*)$/s.exec(spec);
    if (m) {
      const node = Number(m[1]);
      if (node >= n) throw new InputError(`--boot-cmd ${JSON.stringify(spec)}: node ${node} does not exist (${n} VMs)`);
      out[node] = joinCommands(out[node] ?? null, m[2]!);
    } else {
      for (let i = 0; i < n; i++) out[i] = joinCommands(out[i] ?? null, spec);
    }
  }
  return out;
}

function joinCommands(a: string | null, b: string): string {
  return a === null ? b : `${a}\n${b}`;
}

function vmRunConfig(flags: VmRunFlags, image: GuestImage, qemu_version: string, boot_commands: (string | null)[]): VmRunConfig {
  return {
    qemu_version,
    gate_protocol_version: GATE_PROTOCOL_VERSION,
    image: { kind: image.kind, identity: image.identity, source: image.kind === "qcow2" ? image.path : image.dir },
    memory_mib: flags.memory,
    rtc_base: flags.rtcBase,
    icount_shift: 0,
    ssh_port_base: flags.sshPortBase,
    boot_commands,
  };
}


function log(flags: VmRunFlags, line: string): void {
  if (flags.json) return;
  // Over the progress line, not after it.
  if (flags.progress && process.stderr.isTTY === true) process.stderr.write("\r\x1b[K");
  console.error(line);
}

function showProgress(engine: Engine): void {
  const s = engine.stats;
  process.stderr.write(`\r\x1b[Kt=${formatVirtualNs(engine.now_ns)} virtual, ${s.slices} slices, ${s.frames_delivered} frames delivered`);
}

function printSummary(flags: VmRunFlags, config: RunConfig, s: RunSummary, backends: readonly VmBackend[]): void {
  const trace_bytes = statSync(flags.trace).size;
  const wall_s = s.wall_ns / 1e9;
  const gate_slices = backends.reduce((sum, b) => sum + b.accuracy.slices, 0);
  const gate_error_ns_max = backends.reduce((m, b) => Math.max(m, b.accuracy.error_ns_max), 0);
  const slowdown = s.end_ns > 0 ? s.wall_ns / s.end_ns : 0;
  if (flags.json) {
    const { wall_ns, ...rest } = s;
    console.log(JSON.stringify({ ...rest, wall_s, slowdown, gate_slices, gate_error_ns_max, trace: flags.trace, trace_bytes }, null, 2));
    return;
  }
  console.log(`tapsim run: ${config.nodes.length} VMs, topology ${config.topology.source}`);
  console.log(`ran to t=${formatVirtualNs(s.end_ns)} virtual (${s.end_reason}) in ${wall_s.toFixed(2)} s wall (slowdown ${slowdown.toFixed(2)}x): ${s.slices} slices`);
  console.log(`frames: ${s.frames_emitted} emitted, ${s.frames_delivered} delivered, ${s.frames_dropped} dropped`);
  console.log(`slice gate: ${gate_slices} slices, worst |virtual clock - deadline| = ${gate_error_ns_max} ns`);
  console.log(`trace: ${flags.trace} (${(trace_bytes / 1024).toFixed(1)} KiB)`);
}
