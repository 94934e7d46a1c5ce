// The network between nodes: one directed link per ordered pair (to, from) with its
// propagation latency and optional jitter, bandwidth, loss and queue limit.
// A TopologySpec is plain JSON (it goes into the trace header); Topology is the
// validated, indexed form the engine uses.

import { InputError } from "./errors.js";
import { type NodeId, type VirtualNs } from "./units.js";

export interface LinkParams {
  /** Delay varies uniformly in [latency - jitter, latency + jitter]; links stay FIFO. */
  jitter_ns: number;
  /** Serialisation rate; 0 = unlimited (no serialisation delay, no queue). */
  bandwidth_bps: number;
  /** Probability in [0, 1] that a frame is lost, drawn per frame from the link's PRNG. */
  loss_rate: number;
  /** Tail-drop limit on frames queued or in service on the link; 0 = unlimited. */
  queue_packets_max: number;
  /** Tail-drop limit on bytes queued or in service on the link; 0 = unlimited. */
  queue_bytes_max: number;
}

export interface LinkOverride extends Partial<LinkParams> {
  to: number;
  from: number;
}

export interface TopologySpec {
  /** Where it came from, for messages ("latency_configs/delays_3x3.txt"). */
  source: string;
  node_names: string[];
  /** One-way propagation latency, [to][from] as in the seed format; diagonal ignored. */
  latency_ns: number[][];
  link_defaults: LinkParams;
  /** Per directed link, applied in order over link_defaults. */
  link_overrides: LinkOverride[];
}

export interface Link extends LinkParams {
  readonly to: NodeId;
  readonly from: NodeId;
  readonly latency_ns: VirtualNs;
  /** Smallest possible delay from send to delivery: latency - jitter (> 0). */
  readonly lookahead_ns: VirtualNs;
}

export const LINK_DEFAULTS: LinkParams = Object.freeze({
  jitter_ns: 0,
  bandwidth_bps: 0,
  loss_rate: 0,
  queue_packets_max: 0,
  queue_bytes_max: 0,
});

export const NODE_COUNT_MAX = 4096;

export class Topology {
  readonly node_count: number;
  readonly spec: TopologySpec;
  /** links[to * node_count + from]; null on the diagonal. */
  private readonly links: (Link | null)[];
  /** lookahead_into_ns[to * node_count + from], flat for the scheduler's inner loop. */
  readonly lookahead_ns_flat: Float64Array;
  /** Per receiver: the smallest lookahead over all links into it. */
  readonly lookahead_into_min_ns: Float64Array;

  constructor(spec: TopologySpec) {
    validateTopologySpec(spec);
    const n = spec.node_names.length;
    this.node_count = n;
    this.spec = spec;
    this.links = new Array<Link | null>(n * n).fill(null);
    this.lookahead_ns_flat = new Float64Array(n * n);
    this.lookahead_into_min_ns = new Float64Array(n).fill(Number.MAX_SAFE_INTEGER);
    const params: LinkParams[] = new Array(n * n);
    for (let i = 0; i < n * n; i++) params[i] = { ...spec.link_defaults };
    for (const o of spec.link_overrides) {
      const p = params[o.to * n + o.from]!;
      for (const key of Object.keys(LINK_DEFAULTS) as (keyof LinkParams)[]) {
        const v = o[key];
        if (v !== undefined) p[key] = v;
      }
    }
    for (let to = 0; to < n; to++) {
      for (let from = 0; from < n; from++) {
        if (to === from) continue;
        const p = params[to * n + from]!;
        const latency_ns = spec.latency_ns[to]![from]!;
        const link: Link = {
          ...p,
          to: to as NodeId,
          from: from as NodeId,
          latency_ns: latency_ns as VirtualNs,
          lookahead_ns: (latency_ns - p.jitter_ns) as VirtualNs,
        };
        checkLink(spec.source, link);
        this.links[to * n + from] = link;
        this.lookahead_ns_flat[to * n + from] = link.lookahead_ns;
        if (link.lookahead_ns < this.lookahead_into_min_ns[to]!) {
          this.lookahead_into_min_ns[to] = link.lookahead_ns;
        }
      }
    }
  }

  link(to: NodeId, from: NodeId): Link {
    const link = this.links[to * this.node_count + from];
    if (!link) throw new RangeError(`no link to ${to} from ${from}`);
    return link;
  }
}

function checkLink(source: string, link: Link): void {
  const where = `${source}: link to ${link.to} from ${link.from}`;
  if (link.lookahead_ns <= 0) {
    throw new InputError(
      `${where}: latency ${link.latency_ns} ns minus jitter ${link.jitter_ns} ns must be > 0 ` +
        `(conservative scheduling needs a positive lookahead between distinct nodes)`,
    );
  }
  if (link.bandwidth_bps < 0 || !Number.isFinite(link.bandwidth_bps)) {
    throw new InputError(`${where}: bandwidth must be >= 0, got ${link.bandwidth_bps}`);
  }
  if (!(link.loss_rate >= 0 && link.loss_rate <= 1)) {
    throw new InputError(`${where}: loss must be within 0..1, got ${link.loss_rate}`);
  }
  for (const key of ["jitter_ns", "queue_packets_max", "queue_bytes_max"] as const) {
    if (!Number.isSafeInteger(link[key]) || link[key] < 0) {
      throw new InputError(`${where}: ${key} must be a non-negative integer, got ${link[key]}`);
    }
  }
}

/** Shape checks for specs that did not come through a parser (e.g. a trace header). */
export function validateTopologySpec(spec: TopologySpec): void {
  const n = spec.node_names.length;
  if (n < 1 || n > NODE_COUNT_MAX) {
    throw new InputError(`${spec.source}: node count must be within 1..${NODE_COUNT_MAX}, got ${n}`);
  }
  if (spec.latency_ns.length !== n) {
    throw new InputError(`${spec.source}: latency matrix has ${spec.latency_ns.length} rows for ${n} nodes`);
  }
  spec.latency_ns.forEach((row, to) => {
    if (row.length !== n) {
      throw new InputError(`${spec.source}: latency matrix row ${to} has ${row.length} entries, expected ${n}`);
    }
    row.forEach((v, from) => {
      if (!Number.isSafeInteger(v) || v < 0) {
        throw new InputError(`${spec.source}: latency to ${to} from ${from} must be a non-negative integer ns, got ${v}`);
      }
    });
  });
  for (const o of spec.link_overrides) {
    if (!(Number.isInteger(o.to) && Number.isInteger(o.from) && o.to >= 0 && o.to < n && o.from >= 0 && o.from < n && o.to !== o.from)) {
      throw new InputError(`${spec.source}: link override to ${o.to} from ${o.from} names no link between two distinct nodes`);
    }
  }
}
