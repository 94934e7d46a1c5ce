// `tapsim run --netns N`: N network namespaces, each joined to the simulated network by a
// TAP device (tapio-rs) with the node's MAC and address, run on wall-clock time
// (nodes/tap/backend.ts) until --duration or Ctrl+C; `--netns-cmd 'N:CMD'` runs a command
// inside node N's namespace. Namespaces, TAP devices and commands are removed on every exit;
// after a SIGKILL, a watchdog process removes them (nodes/tap/netns.ts).

import { spawn, type ChildProcess } from "node:child_process";
import { statSync } from "node:fs";
import type { RunSummary } from "../engine/engine.js";
import { InputError } from "../engine/errors.js";
import { makeRunConfig } from "../engine/run.js";
import { RealtimeClock, TapBackend } from "../nodes/tap/backend.js";
import { deleteNamespace, joinNamespace, namespaceName, NamespaceWatchdog, sweepStaleNamespaces } from "../nodes/tap/netns.js";
import { TapDevice } from "../nodes/tap/tapio.js";
import { loadTopologyFile } from "../engine/topology_parse.js";
import type { RunConfig } from "../engine/trace_records.js";
import { formatVirtualNs, type NodeId } from "../engine/units.js";
import { parseBootCommands } from "./run_vms.js";
import type { CommonRunFlags } from "./run_flags.js";
import { executeRun, runExitCode, type Started } from "./run_lifecycle.js";

export interface NetnsRunFlags extends CommonRunFlags {
  netns: number;
  netnsCmd: string[];
}

interface Joined {
  namespaces: string[];
  taps: TapDevice[];
  children: ChildProcess[];
}

export async function runNetnsCommand(flags: NetnsRunFlags): Promise<number> {
  if (flags.duration === undefined) throw new InputError("--netns runs on wall-clock time: give --duration (virtual = wall time here)");
  const topology = loadTopologyFile(flags.latency, { nodes: flags.netns });
  const commands = parseBootCommands(flags.netnsCmd, flags.netns);
  const config = makeRunConfig({ topology, workload: null, seed: flags.seed, until_ns: flags.duration, slice_len_max_ns: flags.sliceMax, inflight_frames_max: flags.inflightMax, backend: "tap" });
  const outcome = await executeRun({
    config,
    trace_path: flags.trace,
    json: flags.json,
    progress: false,
    start: () => startNamespaces(config, commands),
  });
  printSummary(flags, config, outcome.summary);
  return runExitCode(outcome);
}

/** Namespaces, TAPs, the watchdog and the commands; stop() removes them all. */
async function startNamespaces(config: RunConfig, commands: (string | null)[]): Promise<Started> {
  const joined: Joined = { namespaces: [], taps: [], children: [] };
  sweepStaleNamespaces();
  const watchdog = NamespaceWatchdog.start(config.nodes.map((node) => namespaceName(process.pid, node.id)));
  let backends: TapBackend[] = [];
  const stop = async () => {
    for (const child of joined.children) child.kill("SIGKILL");
    await Promise.allSettled(backends.map((b) => b.close()));
    for (const tap of joined.taps) tap.close();
    for (const ns of joined.namespaces) deleteNamespace(ns);
    watchdog.release();
  };
  try {
    joinAll(config, joined);
  } catch (err) {
    await stop();
    throw err;
  }
  const clock = new RealtimeClock();
  backends = joined.taps.map((tap, i) => new TapBackend(i as NodeId, tap, clock));
  return {
    backends,
    running: () => {
      clock.start();
      commands.forEach((cmd, i) => cmd !== null && joined.children.push(runInNamespace(joined.namespaces[i]!, `node${i}`, cmd)));
    },
    stop,
  };
}

/** One namespace + TAP per node; names carry the pid so parallel runs do not collide. */
function joinAll(config: RunConfig, joined: Joined): void {
  for (const node of config.nodes) {
    const tap_name = `ts${process.pid}n${node.id}`.slice(0, 15);
    const ns = namespaceName(process.pid, node.id);
    const tap = TapDevice.create(tap_name);
    joined.taps.push(tap);
    joined.namespaces.push(ns);
    joinNamespace(ns, tap_name, `${node.ip}/16`, node.mac);
  }
}

function runInNamespace(ns: string, label: string, command: string): ChildProcess {
  const child = spawn("ip", ["netns", "exec", ns, "sh", "-c", command], { stdio: ["ignore", "pipe", "pipe"] });
  const prefix = (stream: NodeJS.WriteStream) => (chunk: Buffer) => {
    for (const line of chunk.toString().replace(/\n$/, "").split("\n")) stream.write(`[${label}] ${line}\n`);
  };
  child.stdout!.on("data", prefix(process.stdout));
  child.stderr!.on("data", prefix(process.stderr));
  return child;
}


function printSummary(flags: NetnsRunFlags, config: RunConfig, s: RunSummary): void {
  const trace_bytes = statSync(flags.trace).size;
  if (flags.json) {
    const { wall_ns, ...rest } = s;
    console.log(JSON.stringify({ ...rest, wall_s: wall_ns / 1e9, trace: flags.trace, trace_bytes }, null, 2));
    return;
  }
  console.log(`tapsim run: ${config.nodes.length} network namespaces, topology ${config.topology.source}`);
  console.log(`ran to t=${formatVirtualNs(s.end_ns)} (${s.end_reason}) in ${(s.wall_ns / 1e9).toFixed(2)} s wall: ${s.slices} slices`);
  console.log(`frames: ${s.frames_emitted} emitted, ${s.frames_delivered} delivered, ${s.frames_dropped} dropped`);
  console.log(`trace: ${flags.trace} (${(trace_bytes / 1024).toFixed(1)} KiB)`);
}
