// `tapsim run`: build a run from flags, execute it on the engine, record the trace.

import { statSync } from "node:fs";
import type { Command } from "commander";
import { InputError } from "../engine/errors.js";
import type { Engine, RunSummary } from "../engine/engine.js";
import { INFLIGHT_FRAMES_MAX_DEFAULT } from "../engine/engine.js";
import { brachaConfig, validateWorkload } from "../nodes/inprocess/workloads.js";
import type { BrachaRules, BrachaTransport } from "../nodes/inprocess/bracha.js";
import { makeRunConfig, SLICE_LEN_MAX_DEFAULT_NS } from "../engine/run.js";
import { inProcessBackends } from "../nodes/inprocess/run.js";
import type { Workload } from "../nodes/inprocess/workloads.js";
import { executeRun, runExitCode } from "./run_lifecycle.js";
import { loadTopologyFile } from "../engine/topology_parse.js";
import type { RunConfig } from "../engine/trace_records.js";
import { formatVirtualNs } from "../engine/units.js";
import { durationOption, integerListOption, integerOption, rtcBaseOption } from "./options.js";
import { runVmsCommand, type VmRunFlags } from "./run_vms.js";
import { runNetnsCommand, type NetnsRunFlags } from "./run_netns.js";
import { runScenarioCommand, type ScenarioRunFlags } from "./run_scenario.js";
import { MEMORY_MIB_DEFAULT, RTC_BASE_DEFAULT, SSH_PORT_BASE_DEFAULT } from "../qmp/vm_cluster.js";
import type { CommonRunFlags } from "./run_flags.js";

export const DEFAULT_TOPOLOGY = "latency_configs/delays_3x3.txt";

interface RunFlags extends CommonRunFlags {
  nodes?: number;
  workload: string;
  messages: number;
  payloadBytes: number;
  startSpread: number;
  silent: number[];
  broadcasters?: number;
  transport?: string;
  rules?: string;
  startup?: number;
  progress: boolean;
  vms?: number;
  netns?: number;
}

export function registerRun(program: Command, setExit: (code: number) => void): void {
  program
    .command("run")
    .description("run a scenario file, or a simulation from flags (in-process nodes, QEMU VMs with --vms), and record a trace")
    .argument("[scenario]", "scenario file (.yaml/.json): topology, nodes, commands, faults, until, collect, metrics (scenarios/)")
    .option("-o, --out <dir>", "scenario: run directory (new or empty; default runs/<name>, never overwritten)")
    .option("-l, --latency <file>", "latency matrix (seed format) or topology .yaml/.json", DEFAULT_TOPOLOGY)
    .option("-n, --nodes <n>", "node count (must match the topology when it fixes one)", integerOption("--nodes", 1, 4096))
    .option("-w, --workload <kind>", "in-process workload", "bracha")
    .option("-m, --messages <m>", "bracha: messages each node broadcasts, one after another", integerOption("--messages", 1), 10)
    .option("--payload-bytes <b>", "bracha: payload bytes per message", integerOption("--payload-bytes", 0, 1400), 16)
    .option("--start-spread <duration>", "bracha: nodes start at random offsets within this", durationOption("--start-spread"), 1_000_000)
    .option("--silent <ids>", "bracha: comma-separated crash-silent nodes (at most f)", integerListOption("--silent"), [])
    .option("--broadcasters <k>", "bracha: only the first k correct nodes broadcast", integerOption("--broadcasters", 1))
    .option("--transport <t>", "bracha: udp (one datagram per message) or tcp_like (the reference's TCP mesh: sequential setup, Nagle; docs/bracha.md)")
    .option("--rules <r>", "bracha: textbook thresholds, or reference (the reference program's: f = N/3, Ready at floor((N+f)/2) echoes)")
    .option("--startup <duration>", "bracha tcp_like: from a node's start to its program listening and dialing (default 4ms)", durationOption("--startup"))
    .option("-s, --seed <n>", "seed for jitter, loss and workload randomness", integerOption("--seed", 0), 1)
    .option("-d, --duration <duration>", "stop at this virtual time (default: when nothing is left to do)", durationOption("--duration"))
    .option("--slice-max <duration>", "longest slice, whatever the lookahead allows", durationOption("--slice-max", 1), SLICE_LEN_MAX_DEFAULT_NS)
    .option("--inflight-max <frames>", "memory guard: most frames in flight at once", integerOption("--inflight-max", 1), INFLIGHT_FRAMES_MAX_DEFAULT)
    .option("--parallel", "grant-set schedule: every slice that is safe at once runs at once (VMs concurrently, pipelined: each VM's next slice starts once no running peer can send into it); recorded in the trace, which replays alike (default: one slice at a time)")
    .option("-t, --trace <file>", "trace file to write", "tapsim.trace")
    .option("--json", "print the summary as JSON", false)
    .option("--no-progress", "no progress line on stderr")
    .option("--vms <n>", "VMs: boot N QEMU VMs (default guest, or --image) instead of in-process nodes", integerOption("--vms", 1, 256))
    .option("--image <qcow2>", "VMs: your own qcow2 base image (SSH on the management NIC, which it must configure itself; never written; not deterministic)")
    .option("--password <p>", "VMs: root password; the default guest then accepts passwords too (else keys only: ~/.tapsim/id_ed25519); also $TAPSIM_GUEST_PASSWORD")
    .option("--password-file <file>", "VMs: read --password from this file (keeps it out of ps)")
    .option("--add <spec>", "VMs: HOST_PATH:GUEST_PATH (every VM) or N:HOST_PATH:GUEST_PATH, a file or folder put into the initramfs, modes kept (repeatable)", (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option("--packages <names>", "VMs: comma-separated Debian packages added to the default guest (with the libraries they need)")
    .option("--memory <MiB>", "VMs: guest memory", integerOption("--memory", 64, 65536), MEMORY_MIB_DEFAULT)
    .option("--snapshot", "VMs: start from a snapshot of the default guest (booted once per image and memory size, cached), guest RAM shared copy-on-write; each node's identity arrives after the restore, so runs stay deterministic")
    .option("--ssh-port-base <port>", "VMs: node i's SSH is forwarded from 127.0.0.1:(port+i)", integerOption("--ssh-port-base", 1024, 65535), SSH_PORT_BASE_DEFAULT)
    .option("--ssh-timeout <ms>", "VMs: how long to wait for every VM to answer SSH", integerOption("--ssh-timeout", 1000), 300_000)
    .option("--no-ssh", "VMs: do not wait for SSH (nothing touches the guests from outside; fully deterministic)")
    .option("--boot-cmd <cmd>", "VMs: shell command run at boot, in every VM or 'N:cmd' in node N (repeatable)", (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option("--rtc-base <iso>", "VMs: every guest's clock starts here (utc, localtime, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS)", rtcBaseOption("--rtc-base"), RTC_BASE_DEFAULT)
    .option("--pace <factor>", "VMs: virtual time runs at most FACTOR x wall time, or 'off' (default: 1 with SSH, off with --no-ssh)")
    .option("--mgmt-net <a.b>", "VMs: management network a.b.0.0/16 (node i's guest is a.b.i.2, reached through a TAP)", "10.254")
    .option("--netns <n>", "network namespaces joined through TAP devices, on wall-clock time (needs --duration)", integerOption("--netns", 1, 64))
    .option("--netns-cmd <cmd>", "namespaces: command run in every namespace or 'N:cmd' in node N's (repeatable)", (v: string, prev: string[]) => [...prev, v], [] as string[])
    .action(async (scenario: string | undefined, flags: RunFlags & Partial<VmRunFlags> & Partial<NetnsRunFlags> & { out?: string }, command: Command) => {
      if (scenario !== undefined) {
        refuseFlagsWithScenario(command);
        setExit(await runScenarioCommand(scenario, flags as unknown as ScenarioRunFlags));
        return;
      }
      if (flags.out !== undefined) throw new InputError("--out applies only to scenario runs (tapsim run SCENARIO.yaml)");
      if (flags.vms !== undefined && flags.netns !== undefined) throw new InputError("--vms and --netns: choose one");
      refuseFlagsOfOtherKinds(command, flags.vms !== undefined ? "vms" : flags.netns !== undefined ? "netns" : "inprocess");
      if (flags.vms !== undefined) setExit(await runVmsCommand(flags as VmRunFlags));
      else if (flags.netns !== undefined) setExit(await runNetnsCommand(flags as NetnsRunFlags));
      else setExit(await runCommand(flags));
    });
}

/** Flags that only one kind of run reads; given to another kind they would be ignored silently. */
const FLAGS_OF_KIND: Readonly<Record<RunKind, readonly string[]>> = {
  inprocess: ["nodes", "workload", "messages", "payloadBytes", "startSpread", "silent", "broadcasters", "transport", "rules", "startup"],
  vms: ["image", "password", "memory", "sshPortBase", "sshTimeout", "ssh", "bootCmd", "rtcBase", "pace", "mgmtNet"],
  netns: ["netnsCmd"],
};
const KIND_TEXT: Readonly<Record<RunKind, string>> = { inprocess: "in-process runs (without --vms or --netns)", vms: "VM runs (--vms N)", netns: "namespace runs (--netns N)" };

type RunKind = "inprocess" | "vms" | "netns";

/** What a scenario file says, a flag must not say differently: only these flags go with one. */
const SCENARIO_FLAGS = ["out", "json", "progress", "sshPortBase", "sshTimeout", "mgmtNet", "pace", "inflightMax"];

function refuseFlagsWithScenario(command: Command): void {
  for (const option of command.options) {
    const key = option.attributeName();
    if (command.getOptionValueSource(key) !== "cli" || SCENARIO_FLAGS.includes(key)) continue;
    throw new InputError(`${option.long ?? key}: the scenario file says this (flags that go with a scenario: ${SCENARIO_FLAGS.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(", ")})`);
  }
}

function refuseFlagsOfOtherKinds(command: Command, kind: RunKind): void {
  for (const other of Object.keys(FLAGS_OF_KIND) as RunKind[]) {
    if (other === kind) continue;
    for (const key of FLAGS_OF_KIND[other]) {
      if (command.getOptionValueSource(key) !== "cli") continue;
      const flag = command.options.find((o) => o.attributeName() === key)?.long ?? key;
      throw new InputError(`${flag} applies only to ${KIND_TEXT[other]}`);
    }
  }
}

export function buildRunConfig(flags: RunFlags): RunConfig {
  const topology = loadTopologyFile(flags.latency, flags.nodes === undefined ? {} : { nodes: flags.nodes });
  if (flags.workload !== "bracha") throw new InputError(`--workload ${JSON.stringify(flags.workload)}: unknown workload (expected: bracha)`);
  const workload = brachaConfig({
    messages_per_node: flags.messages,
    payload_bytes: flags.payloadBytes,
    start_spread_ns: flags.startSpread,
    silent_nodes: flags.silent,
    broadcasters: flags.broadcasters ?? null,
    ...(flags.transport === undefined ? {} : { transport: flags.transport as BrachaTransport }),
    ...(flags.rules === undefined ? {} : { rules: flags.rules as BrachaRules }),
    ...(flags.startup === undefined ? {} : { startup_ns: flags.startup }),
  });
  validateWorkload(workload, topology.node_names.length);
  return makeRunConfig({
    topology,
    workload,
    seed: flags.seed,
    until_ns: flags.duration ?? null,
    slice_len_max_ns: flags.sliceMax,
    inflight_frames_max: flags.inflightMax,
    parallel: flags.parallel,
  });
}

async function runCommand(flags: RunFlags): Promise<number> {
  const config = buildRunConfig(flags);
  let workload: Workload | null = null;
  const outcome = await executeRun({
    config,
    trace_path: flags.trace,
    json: flags.json,
    progress: flags.progress,
    progressText,
    start: async () => {
      const built = inProcessBackends(config);
      workload = built.workload;
      return { backends: built.backends, stop: async () => {} };
    },
  });
  const { lines, json } = (workload as Workload | null)?.summary() ?? { lines: [], json: {} };
  printSummary(flags, config, outcome.summary, lines, json);
  return runExitCode(outcome);
}

function progressText(engine: Engine): string {
  const s = engine.stats;
  return `t=${formatVirtualNs(engine.now_ns)} virtual, ${s.slices} slices, ${s.events} events, ${s.frames_delivered} frames delivered`;
}

function printSummary(flags: RunFlags, config: RunConfig, s: RunSummary, lines: string[], workload_json: Record<string, unknown>): void {
  const trace_bytes = statSync(flags.trace).size;
  const wall_s = s.wall_ns / 1e9;
  if (flags.json) {
    const { wall_ns, ...rest } = s;
    console.log(JSON.stringify({ ...rest, wall_s, trace: flags.trace, trace_bytes, workload: workload_json }, null, 2));
    return;
  }
  const n = config.nodes.length;
  console.log(`tapsim run: ${n} nodes, topology ${config.topology.source}, workload ${config.workload?.kind}, seed ${config.seed}`);
  console.log(
    `ran to t=${formatVirtualNs(s.end_ns)} virtual (${s.end_reason}) in ${wall_s.toFixed(2)} s wall: ` +
      `${s.slices} slices, ${s.events} events (${(s.events / Math.max(wall_s, 1e-9) / 1e6).toFixed(2)}M events/s)`,
  );
  console.log(`frames: ${s.frames_emitted} emitted, ${s.frames_delivered} delivered, ${s.frames_dropped} dropped`);
  for (const line of lines) console.log(line);
  console.log(`trace: ${flags.trace} (${(trace_bytes / 1024).toFixed(1)} KiB)`);
  if (s.end_reason === "interrupted") console.error(`tapsim: interrupted at t=${formatVirtualNs(s.end_ns)}; trace finalised: ${flags.trace}`);
}
