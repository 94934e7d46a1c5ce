// Conservative slice scheduling. Node j cannot put a frame on the wire before the earliest
// moment it may act; a frame from j reaches i no sooner than lookahead(i <- j) after that.
// So i may run up to min over j of (earliest_send_j + lookahead(i <- j)) without any frame
// arriving in its past. The reference does this with VM clocks in whole milliseconds; here
// it is exact nanoseconds, and nodes that only act on events (in-process) also bound their
// earliest send by their next known event, so idle stretches cost nothing.
//
// Node faults (engine/faults.ts) are events of their node: its slices are cut at the fault's
// time, and once its clock stands there the scheduler hands out the fault instead of a slice.
// A powered-off or paused node acts next at its restart or resume (never, without one): it
// sends nothing before, and frames cannot wake it.

import { SliceResultError } from "./errors.js";
import type { Topology } from "./topology.js";
import { VIRTUAL_NS_NEVER as NEVER_IMPORTED, type NodeId } from "./units.js";
import type { NodeFault, RunEndReason } from "./trace_records.js";

// A module-local copy of the import: TurboFan folds a module's own constant into float64
// arithmetic, but loads an imported binding as a tagged value, so a time that met it (a
// ternary, a Math.min) was boxed as a heap number: 64 bytes per scheduler step at 4 nodes.
const VIRTUAL_NS_NEVER = NEVER_IMPORTED;

export interface SliceGrant {
  readonly node: NodeId;
  readonly start_ns: number;
  readonly end_ns: number;
}

/** A node fault due now: the node's clock is at t_ns (between two of its slices). */
export interface FaultGrant {
  readonly node: NodeId;
  readonly t_ns: number;
  readonly action: NodeFault["action"];
}

/**
 * The one grant object next() refills. Its times start as a double (never), not 0: a field
 * that starts as a small integer changes the object's map at its first double, and the next
 * Scheduler in the same process (a sweep, a benchmark's next repetition) then brought a map
 * that threw away the optimised code of next() (a field type generalization).
 */
class GrantSlot implements SliceGrant {
  node = 0 as NodeId;
  start_ns: number = VIRTUAL_NS_NEVER;
  end_ns: number = VIRTUAL_NS_NEVER;
}

export const NODE_UP = 0;
export const NODE_DOWN = 1;
export const NODE_PAUSED = 2;

export class Scheduler {
  readonly node_count: number;
  /** Virtual time each node has run to. */
  readonly clock_ns: Float64Array;
  /** When each node next acts on its own (reported by its backend at slice end). */
  readonly wake_ns: Float64Array;
  /** Earliest pending delivery into each node (maintained by the engine). */
  readonly inbox_ns: Float64Array;
  readonly alive: Uint8Array;
  /** NODE_UP, NODE_DOWN (powered off) or NODE_PAUSED, by scheduled faults. */
  readonly run_state: Uint8Array;
  /** When each node's next fault is due (never: none left). */
  readonly fault_ns: Float64Array;
  /** Latest slice end granted: the run's virtual horizon. */
  horizon_ns = 0;
  private readonly act_ns: Float64Array;
  private readonly lookahead_ns: Float64Array;
  private readonly lookahead_into_min_ns: Float64Array;
  /** Whether any node has a fault: without, next() takes the loops that never look at faults. */
  private readonly faulted: boolean;
  private readonly node_faults: readonly (readonly NodeFault[])[];
  private readonly fault_next: Uint32Array;
  /** What next() returns for a slice: one object, refilled (a new one per slice, with its boxed times, was most of the scheduler's garbage). */
  private readonly grant = new GrantSlot();

  /** `lookahead` replaces the topology's (scheduled link changes lower it); `node_faults` per node, in time order. */
  constructor(
    topology: Topology,
    private readonly until_ns: number | null,
    private readonly slice_len_max_ns: number,
    lookahead: { readonly flat_ns: Float64Array; readonly into_min_ns: Float64Array } | null = null,
    node_faults: readonly (readonly NodeFault[])[] = [],
  ) {
    if (!(slice_len_max_ns > 0)) throw new RangeError(`slice_len_max_ns must be > 0, got ${slice_len_max_ns}`);
    const n = topology.node_count;
    this.node_count = n;
    this.clock_ns = new Float64Array(n);
    this.wake_ns = new Float64Array(n); // every node gets a first slice at t = 0
    this.inbox_ns = new Float64Array(n).fill(VIRTUAL_NS_NEVER);
    this.alive = new Uint8Array(n).fill(1);
    this.act_ns = new Float64Array(n);
    this.lookahead_ns = lookahead?.flat_ns ?? topology.lookahead_ns_flat;
    this.lookahead_into_min_ns = lookahead?.into_min_ns ?? topology.lookahead_into_min_ns;
    if (this.lookahead_ns.length !== n * n || this.lookahead_into_min_ns.length !== n) throw new RangeError("lookahead does not fit the topology");
    this.run_state = new Uint8Array(n);
    this.node_faults = node_faults;
    this.faulted = node_faults.some((list) => list.length > 0);
    this.fault_next = new Uint32Array(n);
    this.fault_ns = new Float64Array(n).fill(VIRTUAL_NS_NEVER);
    node_faults.forEach((list, node) => {
      if (list.length > 0) this.fault_ns[node] = list[0]!.t_ns;
    });
  }

  /** The next slice to run (valid until the next call: copy to keep), a node fault due now, or why the run is over. */
  next(): SliceGrant | FaultGrant | RunEndReason {
    if (!this.faulted) return this.nextUnfaulted();
    const node = this.updateActivityFaulted();
    if (node < 0) return "quiescent";
    const act = this.act_ns[node]!;
    if (this.until_ns !== null && act >= this.until_ns) return "duration";
    if (this.faulted && act === this.fault_ns[node]) {
      // Due once the node's clock stands at t: a running node gets a slice up to t first
      // (t is its earliest act, so the bound, > act, lets it run that far); a stopped one
      // is at its earliest act, so no frame can still arrive before t.
      if (this.clock_ns[node] === act || this.run_state[node] !== NODE_UP) return this.faultGrant(node as NodeId, act);
    }
    const bound_ns = this.faulted ? this.safeBoundFaulted(node, act) : this.safeBound(node, act);
    let end_ns = Math.min(bound_ns, act + this.slice_len_max_ns);
    if (this.until_ns !== null) end_ns = Math.min(end_ns, this.until_ns);
    if (this.faulted) end_ns = Math.min(end_ns, this.fault_ns[node]!);
    const cut_at_fault = end_ns === act && end_ns === this.fault_ns[node];
    if (!(end_ns > act || cut_at_fault)) throw new Error(`scheduler invariant: slice end ${end_ns} <= activity ${act}`);
    if (!(end_ns > this.clock_ns[node]!)) throw new Error(`scheduler invariant: empty slice for node ${node} at ${end_ns}`);
    if (end_ns > this.horizon_ns) this.horizon_ns = end_ns;
    const grant = this.grant;
    grant.node = node as NodeId;
    grant.start_ns = this.clock_ns[node]!;
    grant.end_ns = end_ns;
    return grant;
  }

  /**
   * next() without node faults, the common case, in one function: at 4 nodes a slice holds
   * ~10 events, so the scheduler's fixed cost per slice (calls, field loads) showed. The
   * same decisions as updateActivity() and safeBound() (the grant-set path still uses them).
   */
  private nextUnfaulted(): SliceGrant | RunEndReason {
    const n = this.node_count;
    const clock_ns = this.clock_ns;
    const wake_ns = this.wake_ns;
    const inbox_ns = this.inbox_ns;
    const alive = this.alive;
    const act_ns = this.act_ns;
    let node = -1;
    let act = VIRTUAL_NS_NEVER as number;
    for (let j = 0; j < n; j++) {
      const own = Math.min(wake_ns[j]!, inbox_ns[j]!);
      const act_j = alive[j] === 0 || own === VIRTUAL_NS_NEVER ? VIRTUAL_NS_NEVER : Math.max(clock_ns[j]!, own);
      act_ns[j] = act_j;
      if (act_j < act) {
        act = act_j;
        node = j;
      }
    }
    if (node < 0) return "quiescent";
    const until_ns = this.until_ns;
    if (until_ns !== null && act >= until_ns) return "duration";
    // The bound: min over j != node of (earliest send of j + lookahead(node <- j)).
    const lookahead_ns = this.lookahead_ns;
    const into_min_ns = this.lookahead_into_min_ns;
    const row = node * n;
    let end_ns = act + this.slice_len_max_ns;
    for (let j = 0; j < n; j++) {
      if (j === node || alive[j] === 0) continue;
      // j acts at its own next event, or when a frame not yet sent reaches it.
      const send_ns = Math.min(act_ns[j]!, Math.max(clock_ns[j]!, act + into_min_ns[j]!));
      const bound_ns = send_ns + lookahead_ns[row + j]!;
      if (bound_ns < end_ns) end_ns = bound_ns;
    }
    if (until_ns !== null && until_ns < end_ns) end_ns = until_ns;
    const start_ns = clock_ns[node]!;
    if (!(end_ns > act)) throw new Error(`scheduler invariant: slice end ${end_ns} <= activity ${act}`);
    if (!(end_ns > start_ns)) throw new Error(`scheduler invariant: empty slice for node ${node} at ${end_ns}`);
    if (end_ns > this.horizon_ns) this.horizon_ns = end_ns;
    const grant = this.grant;
    grant.node = node as NodeId;
    grant.start_ns = start_ns;
    grant.end_ns = end_ns;
    return grant;
  }

  /**
   * The grant-set schedule (RunConfig.parallel): from one state, every slice that is safe
   * at once, in ascending node id — or a node fault due now, or why the run is over.
   *
   * Node i gets [clock_i, end_i) with end_i = min(bound_i, act_i + slice max, until, its
   * next fault), bound_i = min over j != i of (earliest send of j + lookahead(i <- j)), all
   * computed from this state before any slice runs, and only if end_i > act_i (it can do
   * something). The earliest send of j is never after anything j does in its own slice of
   * the set (it acts at >= act_j there, and nothing sent in the set reaches it before its
   * end), so no slice of the set can receive a frame another sends in it: they may run in
   * any order or at the same time. The node acting first always gets a slice (its bound
   * exceeds its activity by a lookahead), so each set makes progress.
   *
   * Faults: when the node acting first has a fault due now, that fault is the step (the
   * lowest such node id first, as in next()); other nodes whose fault is due now wait.
   */
  nextSet(): SliceGrant[] | FaultGrant | RunEndReason {
    const first = this.faulted ? this.updateActivityFaulted() : this.updateActivity();
    if (first < 0) return "quiescent";
    const act_min = this.act_ns[first]!;
    if (this.until_ns !== null && act_min >= this.until_ns) return "duration";
    if (this.faulted && act_min === this.fault_ns[first] && (this.clock_ns[first] === act_min || this.run_state[first] !== NODE_UP)) {
      return this.faultGrant(first as NodeId, act_min);
    }
    const grants: SliceGrant[] = [];
    for (let i = 0; i < this.node_count; i++) {
      const act = this.act_ns[i]!;
      if (act === VIRTUAL_NS_NEVER || (this.until_ns !== null && act >= this.until_ns)) continue;
      if (this.faulted) {
        if (this.run_state[i] !== NODE_UP) continue; // stopped: acts at its fault only
        if (act === this.fault_ns[i] && this.clock_ns[i] === act) continue; // its fault is due first
      }
      const bound_ns = this.faulted ? this.safeBoundFaulted(i, act_min) : this.safeBound(i, act_min);
      let end_ns = Math.min(bound_ns, act + this.slice_len_max_ns);
      if (this.until_ns !== null) end_ns = Math.min(end_ns, this.until_ns);
      const cut_at_fault = this.faulted && end_ns >= this.fault_ns[i]! && act === this.fault_ns[i];
      if (this.faulted) end_ns = Math.min(end_ns, this.fault_ns[i]!);
      // Useful: the node can act in it, or it brings the clock up to a fault due at its activity.
      if (!(end_ns > act || cut_at_fault) || !(end_ns > this.clock_ns[i]!)) {
        if (i === first) throw new Error(`scheduler invariant: no slice for the node acting first (${i}) at ${act}`);
        continue;
      }
      if (end_ns > this.horizon_ns) this.horizon_ns = end_ns;
      grants.push({ node: i as NodeId, start_ns: this.clock_ns[i]!, end_ns });
    }
    return grants;
  }

  private faultGrant(node: NodeId, t_ns: number): FaultGrant {
    const fault = this.node_faults[node]![this.fault_next[node]!]!;
    if (fault.t_ns !== t_ns) throw new Error(`scheduler invariant: node ${node} fault at ${fault.t_ns}, due at ${t_ns}`);
    if (t_ns > this.horizon_ns) this.horizon_ns = t_ns;
    return { node, t_ns, action: fault.action };
  }

  /** The fault `next()` returned has been applied: the node's state and clock follow it. */
  faultApplied(grant: FaultGrant): void {
    const node = grant.node;
    const k = this.fault_next[node]!;
    const fault = this.node_faults[node]![k];
    if (fault === undefined || fault.t_ns !== grant.t_ns || fault.action !== grant.action) throw new Error(`node ${node}: fault ${grant.action} at ${grant.t_ns} is not the one due`);
    if (!(grant.t_ns >= this.clock_ns[node]!)) throw new Error(`node ${node}: fault at ${grant.t_ns} before its clock ${this.clock_ns[node]}`);
    this.fault_next[node] = k + 1;
    this.fault_ns[node] = this.node_faults[node]![k + 1]?.t_ns ?? VIRTUAL_NS_NEVER;
    this.clock_ns[node] = grant.t_ns;
    if (grant.action === "poweroff") this.run_state[node] = NODE_DOWN;
    else if (grant.action === "pause") this.run_state[node] = NODE_PAUSED;
    else this.run_state[node] = NODE_UP;
    // A restarted node boots at t; a resumed one acts at t if a timer fell due while paused.
    if (grant.action === "restart") this.wake_ns[node] = grant.t_ns;
  }

  /**
   * The pipelined schedule (RunConfig.pipelined): the set's slices are taken as done, each
   * node awake at its slice end, so the next set can be computed before this one runs. Only
   * for nodes that always run to their slice end (VMs); completedPlanned() checks that.
   */
  plan(grants: readonly SliceGrant[]): void {
    for (const g of grants) {
      if (!(g.end_ns > this.clock_ns[g.node]!)) throw new Error(`scheduler invariant: planned slice of node ${g.node} does not end after its clock`);
      this.clock_ns[g.node] = g.end_ns;
      this.wake_ns[g.node] = g.end_ns;
    }
  }

  /** completed() for a planned slice: plan() set clock and wake; the node must have run to the end and be awake there. */
  completedPlanned(node: NodeId, end_ns: number, wake_ns: number): void {
    if (wake_ns !== end_ns) throw new SliceResultError(`node ${node}: a pipelined slice must end awake at its end ${end_ns}, not at ${wake_ns}`);
  }

  /** The smallest delay of a frame from `from` to `to` (the bound's lookahead). */
  lookaheadNs(to: NodeId, from: NodeId): number {
    return this.lookahead_ns[to * this.node_count + from]!;
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

  /** updateActivity with node faults: a fault is an event of its node; a stopped node acts at its next fault only. */
  private updateActivityFaulted(): number {
    let best = -1;
    let best_ns = VIRTUAL_NS_NEVER as number;
    for (let j = 0; j < this.node_count; j++) {
      let act: number;
      if (this.alive[j] === 0) {
        act = VIRTUAL_NS_NEVER;
      } else if (this.run_state[j] !== NODE_UP) {
        act = this.fault_ns[j]!;
      } else {
        const own = Math.min(this.wake_ns[j]!, this.inbox_ns[j]!, this.fault_ns[j]!);
        act = own === VIRTUAL_NS_NEVER ? VIRTUAL_NS_NEVER : Math.max(this.clock_ns[j]!, own);
      }
      this.act_ns[j] = act;
      if (act < best_ns) {
        best_ns = act;
        best = j;
      }
    }
    return best;
  }

  /** safeBound with node faults: a stopped node sends nothing before its restart or resume, whatever reaches it. */
  private safeBoundFaulted(i: number, act_min: number): number {
    const n = this.node_count;
    const row = i * n;
    let bound = VIRTUAL_NS_NEVER as number;
    for (let j = 0; j < n; j++) {
      if (j === i || this.alive[j] === 0) continue;
      let send_ns = this.act_ns[j]!;
      if (this.run_state[j] === NODE_UP) send_ns = Math.min(send_ns, Math.max(this.clock_ns[j]!, act_min + this.lookahead_into_min_ns[j]!));
      const b = send_ns + this.lookahead_ns[row + j]!;
      if (b < bound) bound = b;
    }
    return bound;
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
