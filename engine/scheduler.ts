// Conservative slice scheduling. Node j cannot put a frame on the wire before the earliest
// moment it may act; a frame from j reaches i no sooner than lookahead(i <- j) after that.
// So i may run up to min over j of (earliest_send_j + lookahead(i <- j)) without any frame
// arriving in its past. The reference does this with VM clocks in whole milliseconds; here
// it is exact nanoseconds, and nodes that only act on events (in-process) also bound their
// earliest send by their next known event, so idle stretches cost nothing.

import { SliceResultError } from "./errors.js";
import type { Topology } from "./topology.js";
import { VIRTUAL_NS_NEVER, type NodeId } from "./units.js";
import type { RunEndReason } from "./trace_records.js";

export interface SliceGrant {
  readonly node: NodeId;
  readonly start_ns: number;
  readonly end_ns: number;
}

export class Scheduler {
  readonly node_count: number;
  /** Virtual time each node has run to. */
  readonly clock_ns: Float64Array;
  /** When each node next acts on its own (reported by its backend at slice end). */
  readonly wake_ns: Float64Array;
  /** Earliest pending delivery into each node (maintained by the engine). */
  readonly inbox_ns: Float64Array;
  readonly alive: Uint8Array;
  /** Latest slice end granted: the run's virtual horizon. */
  horizon_ns = 0;
  private readonly act_ns: Float64Array;
  private readonly lookahead_ns: Float64Array;
  private readonly lookahead_into_min_ns: Float64Array;

  constructor(
    topology: Topology,
    private readonly until_ns: number | null,
    private readonly slice_len_max_ns: number,
  ) {
    if (!(slice_len_max_ns > 0)) throw new RangeError(`slice_len_max_ns must be > 0, got ${slice_len_max_ns}`);
    const n = topology.node_count;
    this.node_count = n;
    this.clock_ns = new Float64Array(n);
    this.wake_ns = new Float64Array(n); // every node gets a first slice at t = 0
    this.inbox_ns = new Float64Array(n).fill(VIRTUAL_NS_NEVER);
    this.alive = new Uint8Array(n).fill(1);
    this.act_ns = new Float64Array(n);
    this.lookahead_ns = topology.lookahead_ns_flat;
    this.lookahead_into_min_ns = topology.lookahead_into_min_ns;
  }

  /** The next slice to run, or why the run is over. */
  next(): SliceGrant | RunEndReason {
    const node = this.updateActivity();
    if (node < 0) return "quiescent";
    const act = this.act_ns[node]!;
    if (this.until_ns !== null && act >= this.until_ns) return "duration";
    let end_ns = Math.min(this.safeBound(node, act), act + this.slice_len_max_ns);
    if (this.until_ns !== null) end_ns = Math.min(end_ns, this.until_ns);
    if (!(end_ns > act)) throw new Error(`scheduler invariant: slice end ${end_ns} <= activity ${act}`);
    if (end_ns > this.horizon_ns) this.horizon_ns = end_ns;
    return { node: node as NodeId, start_ns: this.clock_ns[node]!, end_ns };
  }

  completed(node: NodeId, end_ns: number, wake_ns: number): void {
    if (!(end_ns >= this.clock_ns[node]!)) throw new SliceResultError(`node ${node} clock would go back to ${end_ns}`);
    if (!(wake_ns >= end_ns)) throw new SliceResultError(`node ${node} wake ${wake_ns} before its slice end ${end_ns}`);
    this.clock_ns[node] = end_ns;
    this.wake_ns[node] = wake_ns;
  }

  exited(node: NodeId): void {
    this.alive[node] = 0;
  }

  /** Fills act_ns (earliest time each node may act) and returns the node acting first, or -1. */
  private updateActivity(): number {
    let best = -1;
    let best_ns = VIRTUAL_NS_NEVER as number;
    for (let j = 0; j < this.node_count; j++) {
      const own = Math.min(this.wake_ns[j]!, this.inbox_ns[j]!);
      const act = this.alive[j] === 0 || own === VIRTUAL_NS_NEVER ? VIRTUAL_NS_NEVER : Math.max(this.clock_ns[j]!, own);
      this.act_ns[j] = act;
      if (act < best_ns) {
        best_ns = act;
        best = j;
      }
    }
    return best;
  }

  /** min over j != i of (earliest_send_j + lookahead(i <- j)), given that nothing acts before act_min. */
  private safeBound(i: number, act_min: number): number {
    const n = this.node_count;
    const row = i * n;
    let bound = VIRTUAL_NS_NEVER as number;
    for (let j = 0; j < n; j++) {
      if (j === i || this.alive[j] === 0) continue;
      // j acts at its own next event, or when a frame not yet sent reaches it.
      const woken_ns = Math.max(this.clock_ns[j]!, act_min + this.lookahead_into_min_ns[j]!);
      const send_ns = Math.min(this.act_ns[j]!, woken_ns);
      const b = send_ns + this.lookahead_ns[row + j]!;
      if (b < bound) bound = b;
    }
    return bound;
  }
}
