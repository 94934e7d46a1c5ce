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
  /** lookahead_ns_flat[to * node_count + from], for the scheduler's inner loop. */
  readonly lookahead_ns_flat: Float64Array;
  /** Per receiver: the smallest lookahead over all links into it. */
  readonly lookahead_into_min_ns: Float64Array;
  /** Links whose parameters differ from link_defaults (overrides merged in order). */
  private readonly overridden = new Map<number, LinkParams>();

  // Links are built on demand (a 256-node network has 65,280 of them and a run may use
  // few); everything that can be wrong with them is checked here, up front.
  constructor(spec: TopologySpec) {
    validateTopologySpec(spec);
    const n = spec.node_names.length;
    this.node_count = n;
    this.spec = spec;
    for (const o of spec.link_overrides) {
      const index = o.to * n + o.from;
      const p = this.overridden.get(index) ?? { ...spec.link_defaults };
      for (const key of Object.keys(LINK_DEFAULTS) as (keyof LinkParams)[]) {
        const v = o[key];
        if (v !== undefined) p[key] = v;
      }
      this.overridden.set(index, p);
    }
    this.lookahead_ns_flat = new Float64Array(n * n);
    this.lookahead_into_min_ns = new Float64Array(n).fill(Number.MAX_SAFE_INTEGER);
    for (let to = 0; to < n; to++) {
      const row = spec.latency_ns[to]!;
      for (let from = 0; from < n; from++) {
        if (to === from) continue;
        const index = to * n + from;
        const jitter_ns = (this.overridden.get(index) ?? spec.link_defaults).jitter_ns;
        const lookahead_ns = row[from]! - jitter_ns;
        if (!(lookahead_ns > 0)) checkLink(spec.source, this.link(to as NodeId, from as NodeId));
        this.lookahead_ns_flat[index] = lookahead_ns;
        if (lookahead_ns < this.lookahead_into_min_ns[to]!) this.lookahead_into_min_ns[to] = lookahead_ns;
      }
    }
    checkParams(spec.source, "link defaults", spec.link_defaults);
    for (const [index, p] of this.overridden) checkParams(spec.source, `link to ${Math.floor(index / n)} from ${index % n}`, p);
  }

  /**
   * The latency of a plain link (no jitter, bandwidth or loss: a frame arrives exactly
   * latency later, or with the one before it), or -1 for any other. The engine keeps plain
   * links in flat arrays instead of a LinkState each.
   */
  plainLatency(to: NodeId, from: NodeId): number {
    const p = this.overridden.get(to * this.node_count + from) ?? this.spec.link_defaults;
    return p.jitter_ns === 0 && p.bandwidth_bps === 0 && p.loss_rate === 0 ? this.spec.latency_ns[to]![from]! : -1;
  }

  link(to: NodeId, from: NodeId): Link {
    if (to === from || to < 0 || from < 0 || to >= this.node_count || from >= this.node_count) throw new RangeError(`no link to ${to} from ${from}`);
    const p = this.overridden.get(to * this.node_count + from) ?? this.spec.link_defaults;
    const latency_ns = this.spec.latency_ns[to]![from]!;
    // An explicit literal, not a spread: one fixed shape keeps property reads in the
    // per-frame link model fast.
    return {
      to,
      from,
      latency_ns: latency_ns as VirtualNs,
      lookahead_ns: (latency_ns - p.jitter_ns) as VirtualNs,
      jitter_ns: p.jitter_ns,
      bandwidth_bps: p.bandwidth_bps,
      loss_rate: p.loss_rate,
      queue_packets_max: p.queue_packets_max,
      queue_bytes_max: p.queue_bytes_max,
    };
  }
}

function checkLink(source: string, link: Link): void {
  if (!(link.lookahead_ns > 0)) {
    throw new InputError(
      `${source}: link to ${link.to} from ${link.from}: latency ${link.latency_ns} ns minus jitter ${link.jitter_ns} ns must be > 0 ` +
        `(conservative scheduling needs a positive lookahead between distinct nodes)`,
    );
  }
}

function checkParams(source: string, what: string, p: LinkParams): void {
  checkLinkParams(`${source}: ${what}`, p);
}

/** Bandwidth, loss, jitter and queue limits in range; `where` starts the message. */
export function checkLinkParams(where: string, p: LinkParams): void {
  if (p.bandwidth_bps < 0 || !Number.isFinite(p.bandwidth_bps)) {
    throw new InputError(`${where}: bandwidth must be >= 0, got ${p.bandwidth_bps}`);
  }
  if (!(p.loss_rate >= 0 && p.loss_rate <= 1)) {
    throw new InputError(`${where}: loss must be within 0..1, got ${p.loss_rate}`);
  }
  for (const key of ["jitter_ns", "queue_packets_max", "queue_bytes_max"] as const) {
    if (!Number.isSafeInteger(p[key]) || p[key] < 0) {
      throw new InputError(`${where}: ${key} must be a non-negative integer, got ${p[key]}`);
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
