// Assembling a run from its RunConfig: addressing plan, topology, engine. Used by `tapsim run`
// (with real backends) and by replay (with backends that feed back recorded inputs).

import type { NodeBackend } from "./backend.js";
import { Engine, INFLIGHT_FRAMES_MAX_DEFAULT } from "./engine.js";
import { formatIpv4, formatMac, nodeIpv4, nodeMac, parseMac } from "./net/ethernet.js";
import { Topology, type TopologySpec } from "./topology.js";
import type { NodeConfig, RecordSink, RunConfig, WorkloadConfig } from "./trace_records.js";

export const SLICE_LEN_MAX_DEFAULT_NS = 1_000_000_000;

export interface RunConfigOptions {
  topology: TopologySpec;
  workload: WorkloadConfig | null;
  seed: number;
  until_ns: number | null;
  slice_len_max_ns?: number;
  inflight_frames_max?: number;
  backend?: NodeConfig["backend"];
  /** The grant-set schedule (RunConfig.parallel); written into the config only when true. */
  parallel?: boolean;
}

export function makeRunConfig(options: RunConfigOptions): RunConfig {
  const nodes: NodeConfig[] = options.topology.node_names.map((name, id) => ({
    id,
    name,
    mac: formatMac(nodeMac(id)),
    ip: formatIpv4(nodeIpv4(id)),
    backend: options.backend ?? "inprocess",
  }));
  return {
    seed: options.seed,
    topology: options.topology,
    nodes,
    workload: options.workload,
    until_ns: options.until_ns,
    slice_len_max_ns: options.slice_len_max_ns ?? SLICE_LEN_MAX_DEFAULT_NS,
    inflight_frames_max: options.inflight_frames_max ?? INFLIGHT_FRAMES_MAX_DEFAULT,
    // Absent unless set: headers of runs without it stay as they were.
    ...(options.parallel === true ? { parallel: true } : {}),
  };
}

/**
 * `concurrent: false` runs a parallel (grant-set) configuration's slices one at a time, in
 * the set's order: the same records (replay feeds recorded inputs in trace order, so it
 * needs that).
 */
export function createEngine(config: RunConfig, backends: readonly NodeBackend[], sink: RecordSink, options: { concurrent?: boolean } = {}): Engine {
  return new Engine({
    topology: new Topology(config.topology),
    macs: config.nodes.map((node) => parseMac(node.mac)),
    backends,
    sink,
    seed: config.seed,
    until_ns: config.until_ns,
    slice_len_max_ns: config.slice_len_max_ns,
    inflight_frames_max: config.inflight_frames_max,
    wall_check_slices: backends.some((b) => b.kind === "vm") ? 1 : undefined,
    faults: config.faults,
    parallel: config.parallel === true,
    concurrent: options.concurrent,
  });
}
