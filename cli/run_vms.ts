// `tapsim run --vms N`: boot N QEMU VMs behind slice gates, wait until each answers SSH,
// print READY with the SSH ports, run until --duration (virtual) or Ctrl+C, record every
// slice and frame. Every exit path stops every QEMU and finalises the trace.

import { statSync } from "node:fs";
import type { NodeBackend } from "../engine/backend.js";
import type { Engine, RunSummary } from "../engine/engine.js";
import { InputError } from "../engine/errors.js";
import { makeRunConfig } from "../engine/run.js";
import type { TopologySpec } from "../engine/topology.js";
import { loadTopologyFile } from "../engine/topology_parse.js";
import type { RunConfig, VmRunConfig, VmSnapshotConfig } from "../engine/trace_records.js";
import { formatVirtualNs } from "../engine/units.js";
import { buildAdditions } from "../guest/additions.js";
import { parseAddSpecs, type AddSpec } from "../guest/extra.js";
import { defaultCacheRoot, ensureDefaultImage, openUserImage, type GuestImage } from "../guest/image.js";
import { parsePackageList } from "../guest/packages.js";
import { startBootLines } from "../qmp/boot_watch.js";
import { GATE_PROTOCOL_VERSION } from "../qmp/gate_channel.js";
import { checkQemu } from "../qmp/launcher.js";
import { parseMgmtNet } from "../qmp/mgmt.js";
import { ensureSnapshot, type Snapshot } from "../qmp/snapshot.js";
import { vmNameProblem } from "../qmp/qemu_values.js";
import { VmCluster } from "../qmp/vm_cluster.js";
import type { VmBackend } from "../qmp/vm_backend.js";
import { TraceWriter } from "../recorder/writer.js";
import { ensureClientKey, type ClientKey } from "./client_key.js";
import { guestPassword } from "./guest_password.js";
import type { CommonRunFlags } from "./run_flags.js";
import { removeRunState, writeKnownHosts, writeRunState, type RunState } from "./run_state.js";
import { executeRun, runExitCode, type LifecycleContext, type RunOptions, type RunOutcome, type Started } from "./run_lifecycle.js";

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
  /** Start every VM from a snapshot of the default guest (built once per image and memory size). */
  snapshot?: boolean;
  /** A scenario's per-node settings (absent: --memory and --packages for every node). */
  nodeMemory?: number[];
  nodePackages?: (string[] | null)[];
}

export const EXIT_VM_FAILED = 1;

/** How the run's guests are reached: tapsim's client key, and a password if the guests take one. */
interface Access {
  key: ClientKey;
  password: string | undefined;
}

/** Everything a VM run needs before anything starts; built from flags (or a scenario's values). */
export interface VmRunPlan {
  readonly flags: VmRunFlags;
  readonly config: RunConfig;
  readonly image: GuestImage;
  readonly boot_commands: (string | null)[];
  readonly extra_archives: Buffer[] | null;
  readonly access: Access;
  readonly pace: number | undefined;
  readonly mgmt_net: string;
  /** By memory size, when the VMs start from snapshots. */
  readonly snapshots: ReadonlyMap<number, Snapshot> | null;
}

export async function runVmsCommand(flags: VmRunFlags): Promise<number> {
  const plan = await prepareVmRun(flags, loadTopologyFile(flags.latency, { nodes: flags.vms }));
  const options = vmRunOptions(plan, {});
  const outcome = await executeRun(options);
  printSummary(flags, plan.config, outcome, options.backends, plan.pace);
  for (const failure of outcome.failures) console.error(`tapsim: ${failure}; run stopped at t=${formatVirtualNs(outcome.summary.end_ns)}, trace finalised: ${flags.trace}`);
  return runExitCode(outcome);
}

/** Checks every input (flags, image, files) and builds the run's configuration; starts nothing. */
export async function prepareVmRun(flags: VmRunFlags, topology: TopologySpec): Promise<VmRunPlan> {
  const qemu_version = await checkQemu();
  checkVmNames(topology.source, topology.node_names);
  const boot_commands = parseBootCommands(flags.bootCmd, flags.vms);
  const pace = parsePace(flags.pace, flags.ssh);
  const mgmt_net = parseMgmtNet(flags.mgmtNet);
  TraceWriter.checkPath(flags.trace);
  const adds = parseAddSpecs(flags.add, flags.vms);
  const packages = flags.packages === undefined ? null : parsePackageList(flags.packages);
  const password = guestPassword(flags);
  const image = await resolveImage(flags, password);
  if (image.kind === "qcow2" && (adds.length > 0 || packages !== null || (flags.nodePackages ?? []).some((p) => p !== null))) throw new InputError("--add and --packages need the default guest (not --image)");
  const key = ensureClientKey();
  const additions = image.kind === "initramfs" ? defaultGuestAdditions(flags, image, adds, packages, key, password) : null;
  const config = makeRunConfig({
    topology,
    workload: null,
    seed: flags.seed,
    until_ns: flags.duration ?? null,
    // Pipelined (--parallel) with slices as long as the lookahead allows: measured faster than
    // half-lookahead slices, which begin more slices early but double the switches (BENCHMARKS.md).
    slice_len_max_ns: flags.sliceMax,
    inflight_frames_max: flags.inflightMax,
    backend: "vm",
    parallel: flags.parallel,
    pipelined: flags.parallel,
  });
  config.vm = { ...vmRunConfig(flags, image, qemu_version, boot_commands), mgmt_net, mgmt_live: flags.ssh };
  if (flags.nodeMemory !== undefined) config.vm.node_memory_mib = flags.nodeMemory;
  if (additions !== null) config.vm.additions = additions.record;
  const snapshots = flags.snapshot === true ? await ensureSnapshots(flags, image, qemu_version, config.vm) : null;
  if (snapshots !== null) config.vm.snapshots = [...snapshots.values()].map(snapshotRecord);
  const access: Access = { key, password: image.kind === "qcow2" ? image.ssh_password : password };
  return { flags, config, image, boot_commands, extra_archives: additions?.archives ?? null, access, pace, mgmt_net, snapshots };
}

/** One snapshot per memory size the run's nodes use, built now if the cache has none. */
export async function ensureSnapshots(flags: { readonly json: boolean; readonly progress?: boolean }, image: GuestImage, qemu_version: string, vm: VmRunConfig): Promise<Map<number, Snapshot>> {
  if (image.kind !== "initramfs") throw new InputError("--snapshot needs the default guest (not --image)");
  const sizes = [...new Set(vm.node_memory_mib ?? [vm.memory_mib])].sort((a, b) => a - b);
  const out = new Map<number, Snapshot>();
  for (const memory_mib of sizes) {
    const { snapshot } = await ensureSnapshot(image, memory_mib, { cache_root: defaultCacheRoot(), qemu_version, log: (line) => log(flags, `tapsim: ${line}`) });
    out.set(memory_mib, snapshot);
  }
  return out;
}

export function snapshotRecord(s: Snapshot): VmSnapshotConfig {
  return { key: s.key, memory_mib: s.memory_mib, state_sha256: s.state_sha256, park_clock_ns: s.park_clock_ns };
}

export interface VmRunHooks {
  /** Wraps each VM's backend (a scenario's controller); default: the VM itself. */
  wrap?: (node: number, vm: VmBackend, ctx: LifecycleContext) => NodeBackend;
}

/** The run lifecycle's options for a VM run: boot the cluster, announce READY, stop it on every path. */
export function vmRunOptions(plan: VmRunPlan, hooks: VmRunHooks): RunOptions & { readonly backends: VmBackend[] } {
  const flags = plan.flags;
  const backends: VmBackend[] = [];
  return {
    backends,
    config: plan.config,
    trace_path: flags.trace,
    json: flags.json,
    progress: flags.progress,
    ...(plan.pace === undefined ? {} : { pace: plan.pace }),
    progressText,
    start: async (ctx) => {
      const started = await startCluster(plan, ctx, hooks);
      backends.push(...started.cluster.backends);
      return started;
    },
  };
}

async function startCluster(plan: VmRunPlan, ctx: LifecycleContext, hooks: VmRunHooks): Promise<Started & { cluster: VmCluster }> {
  const { flags, config, access } = plan;
  ctx.log(`tapsim run: ${plan.snapshots === null ? "booting" : "starting from snapshots"} ${flags.vms} VMs (QEMU ${config.vm!.qemu_version}, image ${config.vm!.image.identity.slice(0, 12)}), topology ${config.topology.source}`);
  const cluster = await VmCluster.start({
    config,
    image: plan.image,
    ssh_port_base: flags.sshPortBase,
    memory_mib: flags.memory,
    rtc_base: flags.rtcBase,
    boot_commands: plan.boot_commands,
    ...(plan.extra_archives === null ? {} : { extra_archives: plan.extra_archives }),
    access: { private_key: access.key.private_key, ...(access.password === undefined ? {} : { password: access.password }) },
    onCrash: (b) => ctx.fail(b.crash!),
    mgmt_net: plan.mgmt_net,
    mgmt_live: flags.ssh,
    ...(plan.snapshots === null ? {} : { snapshots: plan.snapshots }),
  });
  let state: RunState | null = null;
  let boot_lines: { stop(): void } | null = null;
  try {
    state = publishRunState(flags, cluster, plan.image, access, ctx);
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return {
    cluster,
    backends: cluster.backends.map((b, i) => hooks.wrap?.(i, b, ctx) ?? b),
    running: (engine) => {
      if (!flags.json) boot_lines = startBootLines({ console_paths: cluster.backends.map((b) => b.vm.console_path), clear_line: flags.progress && process.stderr.isTTY === true });
      if (flags.ssh) void announceWhenReady(flags, cluster, state!, ctx, engine);
      else ctx.log(`READY (no SSH wait) run dir ${cluster.run_dir}; pids ${cluster.backends.map((b) => b.vm.pid).join(" ")}`);
    },
    stop: async () => {
      (boot_lines as { stop(): void } | null)?.stop();
      removeRunState(state!.port_base);
      await cluster.stop();
    },
  };
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
    ...(flags.nodePackages === undefined ? {} : { node_packages: flags.nodePackages }),
    authorized_key: key.public_line,
    password_login: password !== undefined,
    memory_mib: flags.memory,
    ...(flags.nodeMemory === undefined ? {} : { node_memory_mib: flags.nodeMemory }),
    cache_root: defaultCacheRoot(),
    log: (line) => log(flags, `tapsim image: ${line}`),
  });
}

/** The run-state file and known_hosts that `tapsim ssh/exec` find by --ssh-port-base. */
function publishRunState(flags: VmRunFlags, cluster: VmCluster, image: GuestImage, access: Access, ctx: LifecycleContext): RunState {
  const ports = cluster.backends.map((_, i) => cluster.sshTarget(i).port);
  const state = writeRunState(
    { pid: process.pid, run_dir: cluster.run_dir, port_base: flags.sshPortBase, ports, image_kind: image.kind, password_login: access.password !== undefined, user: image.ssh_user },
    cluster.hostKeys(),
  );
  ctx.log(`ssh: key ${access.key.private_path}, known_hosts ${state.known_hosts} (plain OpenSSH: ssh -i ${access.key.private_path} -o UserKnownHostsFile=${state.known_hosts} -p ${ports[0]} ${image.ssh_user}@127.0.0.1)`);
  return state;
}

/** Waits for SSH on every VM while the engine runs them, then prints READY lines. */
async function announceWhenReady(flags: VmRunFlags, cluster: VmCluster, state: RunState, ctx: LifecycleContext, engine: Engine): Promise<void> {
  const signal = ctx.signal;
  let ready = 0;
  try {
    await cluster.waitForSsh(flags.sshTimeout, signal, (node) => {
      ready += 1;
      ctx.log(`ssh: node ${node} ready (${ready}/${cluster.backends.length}) at t=${formatVirtualNs(engine.now_ns)} virtual`);
    });
  } catch (err) {
    if (!signal.aborted) console.error(`tapsim: ${(err as Error).message}`);
    return;
  }
  // A user image's host keys are known now (tapsim's own first logins saw them).
  writeKnownHosts(state.known_hosts, state.ports, cluster.hostKeys());
  const ports = cluster.backends.map((_, i) => `node${i}=127.0.0.1:${cluster.sshTarget(i).port}`).join(" ");
  ctx.log(`run dir ${cluster.run_dir}; QEMU pids ${cluster.backends.map((b) => b.vm.pid).join(" ")}; Ctrl+C ends the run`);
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


function log(flags: { readonly json: boolean; readonly progress?: boolean }, line: string): void {
  if (flags.json) return;
  // Over the progress line, not after it.
  if (flags.progress && process.stderr.isTTY === true) process.stderr.write("\r\x1b[K");
  console.error(line);
}

function progressText(engine: Engine): string {
  const s = engine.stats;
  return `t=${formatVirtualNs(engine.now_ns)} virtual, ${s.slices} slices, ${s.frames_delivered} frames delivered`;
}

function printSummary(flags: VmRunFlags, config: RunConfig, outcome: RunOutcome, backends: readonly VmBackend[], pace: number | undefined): void {
  const { summary: s, pace_wait_ns, slices_begun_early } = outcome;
  const trace_bytes = statSync(flags.trace).size;
  const wall_s = s.wall_ns / 1e9;
  const gate_slices = backends.reduce((sum, b) => sum + b.accuracy.slices, 0);
  const gate_error_ns_max = backends.reduce((m, b) => Math.max(m, b.accuracy.error_ns_max), 0);
  const slowdown = s.end_ns > 0 ? s.wall_ns / s.end_ns : 0;
  if (flags.json) {
    const { wall_ns, ...rest } = s;
    console.log(JSON.stringify({ ...rest, wall_s, slowdown, pace: pace ?? null, pace_wait_s: pace_wait_ns / 1e9, slices_begun_early, gate_slices, gate_error_ns_max, trace: flags.trace, trace_bytes }, null, 2));
    return;
  }
  console.log(`tapsim run: ${config.nodes.length} VMs, topology ${config.topology.source}`);
  console.log(`ran to t=${formatVirtualNs(s.end_ns)} virtual (${s.end_reason}) in ${wall_s.toFixed(2)} s wall (slowdown ${slowdown.toFixed(2)}x): ${s.slices} slices${config.pipelined === true ? ` (${slices_begun_early} begun early, pipelined)` : ""}`);
  if (pace !== undefined) console.log(`pace: virtual <= ${pace} x wall; achieved ${(s.end_ns / s.wall_ns).toFixed(2)} x (waited ${(pace_wait_ns / 1e9).toFixed(2)} s)`);
  console.log(`frames: ${s.frames_emitted} emitted, ${s.frames_delivered} delivered, ${s.frames_dropped} dropped`);
  console.log(`slice gate: ${gate_slices} slices, worst |virtual clock - deadline| = ${gate_error_ns_max} ns`);
  console.log(`trace: ${flags.trace} (${(trace_bytes / 1024).toFixed(1)} KiB)`);
}
