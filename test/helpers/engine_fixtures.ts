// Shared fixtures for engine tests: small topologies and scripted protocol nodes.

import type { Delivery } from "../../engine/backend.js";
import { Engine } from "../../engine/engine.js";
import { InProcessBackend, type NodeContext, type ProtocolNode } from "../../nodes/inprocess/backend.js";
import { buildUdpFrame, nodeIpv4, nodeMac } from "../../engine/net/ethernet.js";
import { LINK_DEFAULTS, Topology, type LinkOverride, type TopologySpec } from "../../engine/topology.js";
import type { RecordSink, TraceRecord } from "../../engine/trace_records.js";
import type { NodeId } from "../../engine/units.js";

export function matrixTopology(latency_ms: number[][], overrides: LinkOverride[] = []): TopologySpec {
  return {
    source: "test",
    node_names: latency_ms.map((_, i) => `n${i}`),
    latency_ns: latency_ms.map((row) => row.map((ms) => Math.round(ms * 1e6))),
    link_defaults: { ...LINK_DEFAULTS },
    link_overrides: overrides,
  };
}

export function uniformTopology(n: number, latency_ms: number, overrides: LinkOverride[] = []): TopologySpec {
  return matrixTopology(
    Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 0 : latency_ms))),
    overrides,
  );
}

export class CollectingSink implements RecordSink {
  readonly records: TraceRecord[] = [];
  write(record: TraceRecord): void {
    this.records.push(record);
  }
  ofKind<K extends number>(kind: K): Extract<TraceRecord, [K, ...unknown[]]>[] {
    return this.records.filter((r) => r[0] === kind) as Extract<TraceRecord, [K, ...unknown[]]>[];
  }
}

export function udpTo(from: number, to: number, payload_bytes: number, tag = 0): Uint8Array {
  const payload = new Uint8Array(payload_bytes).fill(tag & 0xff);
  return buildUdpFrame({ mac: nodeMac(from), ip: nodeIpv4(from), port: 9 }, { mac: nodeMac(to), ip: nodeIpv4(to), port: 9 }, payload);
}

/** Sends scripted frames at scripted times; remembers what it received and when. */
export class ScriptedNode implements ProtocolNode {
  readonly received: { t_ns: number; from: number; bytes: number }[] = [];
  constructor(private readonly script: { at_ns: number; frame: Uint8Array }[] = [], private readonly exit_at_ns: number | null = null) {}
  start(ctx: NodeContext): void {
    this.script.forEach((s, i) => ctx.setTimer(s.at_ns, i));
    if (this.exit_at_ns !== null) ctx.setTimer(this.exit_at_ns, -1);
  }
  onTimer(ctx: NodeContext, id: number): void {
    if (id === -1) ctx.exit("scripted exit");
    else ctx.send(this.script[id]!.frame);
  }
  onFrame(_ctx: NodeContext, frame: Uint8Array, d: Delivery): void {
    this.received.push({ t_ns: d.t_ns, from: d.from, bytes: frame.length });
  }
}

export function engineFor(spec: TopologySpec, nodes: ProtocolNode[], sink: RecordSink, seed = 1, until_ns: number | null = null, extra: { inflight_frames_max?: number } = {}): Engine {
  const n = spec.node_names.length;
  return new Engine({
    topology: new Topology(spec),
    macs: Array.from({ length: n }, (_, i) => nodeMac(i)),
    backends: nodes.map((p, i) => new InProcessBackend(i as NodeId, n, p, seed)),
    sink,
    seed,
    until_ns,
    slice_len_max_ns: 1e9,
    ...extra,
  });
}
