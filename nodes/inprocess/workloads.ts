// In-process workloads by name: each turns a WorkloadConfig into one ProtocolNode per node
// and a summary of what the run measured.

import { InputError } from "../../engine/errors.js";
import type { WorkloadConfig } from "../../engine/trace_records.js";
import type { ProtocolNode } from "./backend.js";
import { BRACHA_DEFAULTS, BrachaNode, BrachaStats, broadcastingNodes, checkBrachaParams, faultsTolerated, type BrachaParams } from "./bracha.js";

export interface Workload {
  readonly kind: string;
  readonly nodes: ProtocolNode[];
  /** Figures for people (lines) and machines (json) once the run is over. */
  summary(): { lines: string[]; json: Record<string, unknown> };
}

export const WORKLOAD_KINDS = ["bracha"] as const;

export function createWorkload(config: WorkloadConfig, node_count: number): Workload {
  if (config.kind === "bracha") return createBracha(config, node_count);
  throw new InputError(`workload.kind: unknown workload "${config.kind}" (expected one of: ${WORKLOAD_KINDS.join(", ")})`);
}

/** Throws the InputError createWorkload would, without building any node. */
export function validateWorkload(config: WorkloadConfig, node_count: number): void {
  if (config.kind !== "bracha") createWorkload(config, node_count);
  else checkBrachaParams({ ...BRACHA_DEFAULTS, ...(config as Partial<BrachaParams>) }, node_count);
}

export function brachaConfig(params: Partial<BrachaParams>): WorkloadConfig {
  return { kind: "bracha", ...BRACHA_DEFAULTS, ...params };
}

function createBracha(config: WorkloadConfig, n: number): Workload {
  const params: BrachaParams = { ...BRACHA_DEFAULTS, ...(config as Partial<BrachaParams>) };
  checkBrachaParams(params, n);
  const stats = new BrachaStats(n, params.messages_per_node);
  const nodes = Array.from({ length: n }, (_, id) => new BrachaNode(id, n, params, stats));
  return { kind: "bracha", nodes, summary: () => brachaSummary(params, stats) };
}

function brachaSummary(params: BrachaParams, stats: BrachaStats): { lines: string[]; json: Record<string, unknown> } {
  const n = stats.node_count;
  const correct = n - params.silent_nodes.length;
  const broadcasters = broadcastingNodes(params, n).length;
  const expected = correct * broadcasters * params.messages_per_node;
  const completion_ms: number[] = [];
  for (let i = 0; i < stats.broadcast_ns.length; i++) {
    if (stats.broadcast_ns[i]! >= 0 && stats.deliveries_per_instance[i] === correct) {
      completion_ms.push((stats.last_delivery_ns[i]! - stats.broadcast_ns[i]!) / 1e6);
    }
  }
  completion_ms.sort((a, b) => a - b);
  const pick = (q: number) => completion_ms[Math.min(completion_ms.length - 1, Math.floor(q * completion_ms.length))] ?? NaN;
  const all_done_ns = Math.max(...stats.done_ns);
  const json = {
    nodes: n,
    transport: params.transport ?? "udp",
    rules: params.rules ?? "textbook",
    faults_tolerated: faultsTolerated(n, params.rules),
    silent_nodes: params.silent_nodes,
    broadcasters,
    messages_per_node: params.messages_per_node,
    deliveries: stats.deliveries,
    deliveries_expected: expected,
    mean_delivery_latency_ms: stats.deliveries ? stats.latency_sum_ns / stats.deliveries / 1e6 : NaN,
    completion_latency_ms: { p50: pick(0.5), p99: pick(0.99), max: completion_ms.at(-1) ?? NaN },
    /** Per node: when it had delivered every message (a VM run's "Execution time"); null: never. */
    done_ms: Array.from(stats.done_ns, (t) => (t >= 0 ? t / 1e6 : null)),
    all_delivered_at_ns: stats.done_ns.every((t, id) => t >= 0 || params.silent_nodes.includes(id)) ? all_done_ns : null,
  };
  const fmt = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : "n/a");
  const lines = [
    `bracha: ${n} nodes (f=${json.faults_tolerated}, ${params.silent_nodes.length} silent), ${broadcasters} broadcasting ${params.messages_per_node} messages each${json.transport === "udp" && json.rules === "textbook" ? "" : ` (${json.transport}, ${json.rules} rules)`}`,
    `bracha: ${stats.deliveries}/${expected} deliveries; mean latency broadcast->delivery ${fmt(json.mean_delivery_latency_ms)} ms`,
    `bracha: broadcast completion (all correct nodes delivered) p50 ${fmt(pick(0.5))} ms, p99 ${fmt(pick(0.99))} ms, max ${fmt(completion_ms.at(-1) ?? NaN)} ms`,
    json.all_delivered_at_ns === null
      ? "bracha: NOT every correct node delivered every message"
      : `bracha: every correct node delivered everything by t=${(all_done_ns / 1e9).toFixed(9)}s`,
    `bracha: per node, all delivered at (s): ${json.done_ms.map((t) => (t === null ? "-" : (t / 1e3).toFixed(3))).join(" ")}`,
  ];
  return { lines, json };
}
