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
import { buildAdditions } from "../guest/additions.js";
import { parseAddSpecs, type AddSpec } from "../guest/extra.js";
import { defaultCacheRoot, ensureDefaultImage, openUserImage, type GuestImage } from "../guest/image.js";
import { parsePackageList } from "../guest/packages.js";
import { startBootLines } from "../qmp/boot_watch.js";
import { GATE_PROTOCOL_VERSION } from "../qmp/gate_channel.js";
import { checkQemu } from "../qmp/launcher.js";
import { parseMgmtNet } from "../qmp/mgmt.js";
import { vmNameProblem } from "../qmp/qemu_values.js";
import { VmCluster } from "../qmp/vm_cluster.js";
import type { VmBackend } from "../qmp/vm_backend.js";
import { TraceWriter } from "../recorder/writer.js";
import { ensureClientKey, type ClientKey } from "./client_key.js";
import { guestPassword } from "./guest_password.js";
import type { CommonRunFlags } from "./run_flags.js";
import { removeRunState, writeKnownHosts, writeRunState, type RunState } from "./run_state.js";
import { traceHeader } from "./version.js";

export interface VmRunFlags extends CommonRunFlags {
  vms: number;
  image?: string;
  password?: string;
  passwordFile?: string;
  add: string[];
  packages?: string;
  memory: number;
  sshPortBase: number;
  sshTimeout: number;
  ssh: boolean;
  bootCmd: string[];
  rtcBase: string;
  progress: boolean;
  pace?: string;
  mgmtNet: string;
}

export const EXIT_VM_FAILED = 1;

/** How the run's guests are reached: tapsim's client key, and a password if the guests take one. */
interface Access {
  key: ClientKey;
  password: string | undefined;
}

export async function runVmsCommand(flags: VmRunFlags): Promise<number> {
  const qemu_version = await checkQemu();
  const topology = loadTopologyFile(flags.latency, { nodes: flags.vms });
  checkVmNames(flags.latency, topology.node_names);
  const boot_commands = parseBootCommands(flags.bootCmd, flags.vms);
  const pace = parsePace(flags.pace, flags.ssh);
  const mgmt_net = parseMgmtNet(flags.mgmtNet);
  TraceWriter.checkPath(flags.trace);
  const adds = parseAddSpecs(flags.add, flags.vms);
  const packages = flags.packages === undefined ? null : parsePackageList(flags.packages);
  const password = guestPassword(flags);
  const image = await resolveImage(flags, password);
  if (image.kind === "qcow2" && (adds.length > 0 || packages !== null)) throw new InputError("--add and --packages need the default guest (not --image)");
  const key = ensureClientKey();
  const additions = image.kind === "initramfs" ? defaultGuestAdditions(flags, image, adds, packages, key, password) : null;
  const config = makeRunConfig({
    topology,
    workload: null,
    seed: flags.seed,
    until_ns: flags.duration ?? null,
    slice_len_max_ns: flags.sliceMax,
    inflight_frames_max: flags.inflightMax,
    backend: "vm",
  });
  config.vm = { ...vmRunConfig(flags, image, qemu_version, boot_commands), mgmt_net, mgmt_live: flags.ssh };
  if (additions !== null) config.vm.additions = additions.record;
  const access: Access = { key, password: image.kind === "qcow2" ? image.ssh_password : password };
  return await runCluster(flags, config, image, boot_commands, additions?.archives ?? null, access, pace, mgmt_net);
}

/** Live input (SSH) means pace 1 unless asked otherwise; a closed run goes as fast as it can. */
export function parsePace(text: string | undefined, live: boolean): number | undefined {
  if (text === undefined) return live ? 1 : undefined;
  if (text === "off") return undefined;
  const pace = Number(text);
  if (!(Number.isFinite(pace) && pace > 0)) throw new InputError(`--pace ${JSON.stringify(text)}: expected a positive factor (virtual time / wall time) or 'off'`);
  return pace;
}

/** Files, packages and SSH access, as an extra initramfs archive per node. */
function defaultGuestAdditions(flags: VmRunFlags, image: GuestImage & { kind: "initramfs" }, adds: AddSpec[], packages: string[] | null, key: ClientKey, password: string | undefined) {
  return buildAdditions({
    image,
    node_count: flags.vms,
    adds,
    packages,
    authorized_key: key.public_line,
    password_login: password !== undefined,
    memory_mib: flags.memory,
    cache_root: defaultCacheRoot(),
    log: (line) => log(flags, `tapsim image: ${line}`),
  });
}

async function runCluster(flags: VmRunFlags, config: RunConfig, image: GuestImage, boot_commands: (string | null)[], extra_archives: Buffer[] | null, access: Access, pace: number | undefined, mgmt_net: string): Promise<number> {
  const control: RunControl = { stop_requested: false, ...(pace === undefined ? {} : { pace }) };
  const aborter = new AbortController();
  const crashes: string[] = [];
  const onCrash = (b: VmBackend) => {
    crashes.push(b.crash!);
    control.stop_requested = true;
    control.stop_reason = "error";
    control.stop_detail ??= b.crash!;
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
  let state: RunState | null = null;
  let writer: TraceWriter | null = null;
  let boot_lines: { stop(): void } | null = null;
  let summary: RunSummary;
  let pace_wait_ns = 0;
  const progress_line = flags.progress && process.stderr.isTTY === true && !flags.json;
  try {
    cluster = await VmCluster.start({
      config,
      image,
      ssh_port_base: flags.sshPortBase,
      memory_mib: flags.memory,
      rtc_base: flags.rtcBase,
      boot_commands,
      ...(extra_archives === null ? {} : { extra_archives }),
      access: { private_key: access.key.private_key, ...(access.password === undefined ? {} : { password: access.password }) },
      onCrash,
      mgmt_net,
      mgmt_live: flags.ssh,
    });
    state = publishRunState(flags, cluster, image, access);
    writer = TraceWriter.create(flags.trace, traceHeader(config));
    const engine = createEngine(config, cluster.backends, writer);
    if (!flags.json) boot_lines = startBootLines({ console_paths: cluster.backends.map((b) => b.vm.console_path), clear_line: progress_line });
    if (progress_line) control.onProgress = showProgress;
    const running = engine.run(control).catch((err: unknown) => {
      engine.finish("error", (err as Error).message);
      throw err;
    });
    if (flags.ssh) void announceWhenReady(flags, cluster, state, aborter.signal, engine);
    else log(flags, `READY (no SSH wait) run dir ${cluster.run_dir}; pids ${cluster.backends.map((b) => b.vm.pid).join(" ")}`);
    summary = await running;
    pace_wait_ns = engine.pace_wait_ns;
  } finally {
    boot_lines?.stop();
    aborter.abort();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    if (state !== null) removeRunState(state.port_base);
    await cluster?.stop();
    writer?.close();
    if (progress_line) process.stderr.write("\r\x1b[K");
  }
  printSummary(flags, config, summary, cluster.backends, pace, pace_wait_ns);
  for (const crash of crashes) console.error(`tapsim: ${crash}; run stopped at t=${formatVirtualNs(summary.end_ns)}, trace finalised: ${flags.trace}`);
  if (crashes.length > 0) return EXIT_VM_FAILED;
  return summary.end_reason === "interrupted" ? 130 : 0;
}

/** The run-state file and known_hosts that `tapsim ssh/exec` find by --ssh-port-base. */
function publishRunState(flags: VmRunFlags, cluster: VmCluster, image: GuestImage, access: Access): RunState {
  const ports = cluster.backends.map((_, i) => cluster.sshTarget(i).port);
  const state = writeRunState(
    { pid: process.pid, run_dir: cluster.run_dir, port_base: flags.sshPortBase, ports, image_kind: image.kind, password_login: access.password !== undefined, user: image.ssh_user },
    cluster.hostKeys(),
  );
  log(flags, `ssh: key ${access.key.private_path}, known_hosts ${state.known_hosts} (plain OpenSSH: ssh -i ${access.key.private_path} -o UserKnownHostsFile=${state.known_hosts} -p ${ports[0]} ${image.ssh_user}@127.0.0.1)`);
  return state;
}

/** Waits for SSH on every VM while the engine runs them, then prints READY lines. */
async function announceWhenReady(flags: VmRunFlags, cluster: VmCluster, state: RunState, signal: AbortSignal, engine: Engine): Promise<void> {
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
  // A user image's host keys are known now (tapsim's own first logins saw them).
  writeKnownHosts(state.known_hosts, state.ports, cluster.hostKeys());
  const ports = cluster.backends.map((_, i) => `node${i}=127.0.0.1:${cluster.sshTarget(i).port}`).join(" ");
  log(flags, `run dir ${cluster.run_dir}; QEMU pids ${cluster.backends.map((b) => b.vm.pid).join(" ")}; Ctrl+C ends the run`);
  console.log(`READY ${ports}`);
}

async function resolveImage(flags: VmRunFlags, password: string | undefined): Promise<GuestImage> {
  if (flags.image !== undefined) {
    return await openUserImage(flags.image, password === undefined ? {} : { ssh_password: password });
  }
  const opts = { log: (line: string) => log(flags, line), ...(password === undefined ? {} : { password }) };
  return await ensureDefaultImage(opts);
}

/** Node names become QEMU option values and guest hostnames: refuse unsafe ones before anything starts. */
function checkVmNames(source: string, names: readonly string[]): void {
  names.forEach((name, i) => {
    const problem = vmNameProblem(name);
    if (problem !== null) throw new InputError(`${source}: node ${i} name ${JSON.stringify(name)}: ${problem}`);
  });
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

function printSummary(flags: VmRunFlags, config: RunConfig, s: RunSummary, backends: readonly VmBackend[], pace: number | undefined, pace_wait_ns: number): void {
  const trace_bytes = statSync(flags.trace).size;
  const wall_s = s.wall_ns / 1e9;
  const gate_slices = backends.reduce((sum, b) => sum + b.accuracy.slices, 0);
  const gate_error_ns_max = backends.reduce((m, b) => Math.max(m, b.accuracy.error_ns_max), 0);
  const slowdown = s.end_ns > 0 ? s.wall_ns / s.end_ns : 0;
  if (flags.json) {
    const { wall_ns, ...rest } = s;
    console.log(JSON.stringify({ ...rest, wall_s, slowdown, pace: pace ?? null, pace_wait_s: pace_wait_ns / 1e9, gate_slices, gate_error_ns_max, trace: flags.trace, trace_bytes }, null, 2));
    return;
  }
  console.log(`tapsim run: ${config.nodes.length} VMs, topology ${config.topology.source}`);
  console.log(`ran to t=${formatVirtualNs(s.end_ns)} virtual (${s.end_reason}) in ${wall_s.toFixed(2)} s wall (slowdown ${slowdown.toFixed(2)}x): ${s.slices} slices`);
  if (pace !== undefined) console.log(`pace: virtual <= ${pace} x wall; achieved ${(s.end_ns / s.wall_ns).toFixed(2)} x (waited ${(pace_wait_ns / 1e9).toFixed(2)} s)`);
  console.log(`frames: ${s.frames_emitted} emitted, ${s.frames_delivered} delivered, ${s.frames_dropped} dropped`);
  console.log(`slice gate: ${gate_slices} slices, worst |virtual clock - deadline| = ${gate_error_ns_max} ns`);
  console.log(`trace: ${flags.trace} (${(trace_bytes / 1024).toFixed(1)} KiB)`);
}
