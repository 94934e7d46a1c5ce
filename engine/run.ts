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
  /** With parallel: the pipelined schedule (RunConfig.pipelined), for VM runs. */
  pipelined?: boolean;
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
    ...(options.parallel === true && options.pipelined === true ? { pipelined: true } : {}),
  };
}

/**
 * Half the smallest lookahead (never more than `slice_len_max_ns`): with slices no longer,
 * a node's next slice ends before any frame its peers send in their current slices can
 * arrive, so nearly every slice can begin early under the pipelined schedule, at twice the
 * switches. The CLI does not use it (lookahead-long slices measured faster, BENCHMARKS.md);
 * the benchmark and the tests compare both.
 */
export function pipelinedSliceLenMaxNs(topology: TopologySpec, slice_len_max_ns: number = SLICE_LEN_MAX_DEFAULT_NS): number {
  const flat = new Topology(topology).lookahead_ns_flat;
  const n = topology.node_names.length;
  let lookahead_min_ns = Number.POSITIVE_INFINITY;
  for (let to = 0; to < n; to++) for (let from = 0; from < n; from++) if (to !== from) lookahead_min_ns = Math.min(lookahead_min_ns, flat[to * n + from]!);
  if (!Number.isFinite(lookahead_min_ns)) return slice_len_max_ns;
  return Math.max(1, Math.min(slice_len_max_ns, Math.floor(lookahead_min_ns / 2)));
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
    pipelined: config.pipelined === true,
    concurrent: options.concurrent,
  });
}
