// The simulation loop: grant a slice, hand the node the frames due in it, take what it
// emitted, route each frame over its link(s), record everything. All decisions depend only
// on the configuration, the seed and the backends' outputs (the recorded inputs).
// Scheduled faults (RunConfig.faults) are part of the configuration: node faults are applied
// between a node's slices when its clock reaches them, network changes as each link's
// sender passes them (engine/faults.ts, link.ts).

import type { BatchSliceResult, Delivery, FinishWaiter, NodeBackend, SliceCollector, SliceOutput, SliceRequest, SliceResult } from "./backend.js";
import { SLICE_OUTPUTS_MAX } from "./backend.js";
import { InputError, oneLine, SliceResultError } from "./errors.js";
import { compileFaults, type CompiledFaults } from "./faults.js";
import { FramePool, Inbox } from "./inbox.js";
import { FrameArena } from "./net/frame_arena.js";
import { FrameSlab } from "./net/frame_slab.js";
import { LinkState, type LinkBacklog } from "./link.js";
import { ETH_HEADER_BYTES } from "./net/ethernet.js";
import { OUT_EMIT, OUT_MARK, SliceBatch } from "./slice_batch.js";
import { NODE_DOWN, NODE_PAUSED, Scheduler, type FaultGrant, type SliceGrant } from "./scheduler.js";
import type { Topology } from "./topology.js";
import {
  RecordKind,
  type DropReason,
  type FaultPlan,
  type FrameDeliverRecord,
  type LifecycleEvent,
  type FrameEmitRecord,
  type MarkRecord,
  type RecordSink,
  type RunEndReason,
  type SliceEndRecord,
  type SliceGrantRecord,
} from "./trace_records.js";
import { VIRTUAL_NS_NEVER as NEVER_IMPORTED, hostNowNs, type NodeId } from "./units.js";

// A module-local copy of the import: TurboFan folds a module's own constant into float64
// arithmetic, but loads an imported binding as a tagged value, so a time that met it (a
// ternary, a Math.min) was boxed as a heap number: 64 bytes per scheduler step at 4 nodes.
const VIRTUAL_NS_NEVER = NEVER_IMPORTED;

export interface EngineOptions {
  topology: Topology;
  /** 48-bit MAC of each node (index = node id), for routing by destination MAC. */
  macs: readonly number[];
  backends: readonly NodeBackend[];
  sink: RecordSink;
  seed: number;
  until_ns: number | null;
  slice_len_max_ns: number;
  /** Bound on frames in flight in the whole network (memory guard). */
  inflight_frames_max?: number;
  /**
   * Slices between wall-clock checks (trace flush, signals, progress). In-process slices
   * take microseconds, so checking every 64 is cheap; a VM's slice can take seconds of wall
   * time, so VM runs check after every slice (a SIGKILL then loses at most ~250 ms).
   */
  wall_check_slices?: number;
  /** Node faults and network changes at virtual times (RunConfig.faults). */
  faults?: FaultPlan;
  /**
   * The grant-set schedule (RunConfig.parallel, recorded in the trace header): each step
   * grants every node whose slice is safe given one scheduler state, and records the slices
   * in node order. Absent or false: one slice per step, to the node that acts first (the
   * schedule of every trace written before it existed).
   */
  parallel?: boolean;
  /**
   * With `parallel`: begin the set's slices on backends that can run concurrently
   * (NodeBackend.beginSlice) before collecting any (default true). false runs them one at a
   * time in the set's order; the records are the same either way (replay uses false).
   */
  concurrent?: boolean;
  /**
   * With `parallel`: the pipelined schedule (RunConfig.pipelined). Each set is computed when
   * the one before it starts, from that set's planned slice ends, and a node's slice of the
   * next set begins as soon as its own slice is collected and no slice still running can
   * send into it; records stay in set order. Nodes must run to their slice ends (VMs).
   */
  pipelined?: boolean;
}

/** A slice of the next set begun while the current set is still being collected. */
interface EarlySlice {
  readonly grant: SliceGrant;
  readonly request: SliceRequest;
  readonly collect: SliceCollector;
}

/** What scheduled faults have made of a node (exited: it ended on its own). */
export type NodeRunState = "up" | "down" | "paused" | "exited";

export const INFLIGHT_FRAMES_MAX_DEFAULT = 3_000_000;

/** A frame waiting in a node's inbox (debugger view of the engine's state). */
export interface PendingFrame {
  t_ns: number;
  frame_id: number;
  from: NodeId;
  sent_ns: number;
  length: number;
}

export interface LinkView extends LinkBacklog {
  to: NodeId;
  from: NodeId;
}

export interface EngineStats {
  slices: number;
  frames_emitted: number;
  frames_delivered: number;
  frames_dropped: number;
  marks: number;
  /** Records produced (every slice, frame emission, delivery, drop, mark, lifecycle event). */
  events: number;
}

export interface RunSummary extends EngineStats {
  end_reason: RunEndReason;
  end_ns: number;
  wall_ns: number;
}

export interface RunControl {
  /** Set (e.g. from a SIGINT handler) to end the run after the current slice. */
  stop_requested: boolean;
  /** Recorded as the run_end reason when stopping on request (default "interrupted"). */
  stop_reason?: RunEndReason;
  /** Recorded with it: what went wrong, one line (e.g. "n1: QEMU killed by SIGKILL"). */
  stop_detail?: string;
  /** Called about every `progress_interval_ms` of wall time. */
  onProgress?: (engine: Engine) => void;
  /**
   * Pace: virtual time may run at most this many times faster than wall time (1: real
   * time). For runs that take live input (SSH from the host), so that guest timeouts and
   * clocks mean something to the person at the keyboard. Only *when* slices run depends
   * on it, never what the engine decides.
   */
  pace?: number;
}

const WALL_CHECK_SLICES_DEFAULT = 64;
const LINK_UNUSED = 0;
const LINK_PLAIN = 1;
const LINK_MODELLED = 2;
/** Longest single pace wait: Ctrl+C and the trace flush are checked at least this often. */
const PACE_WAIT_MS_MAX = 100;
const YIELD_INTERVAL_NS = 25e6;
const PROGRESS_INTERVAL_NS = 1e9;

export class Engine {
  readonly scheduler: Scheduler;
  readonly stats: EngineStats = { slices: 0, frames_emitted: 0, frames_delivered: 0, frames_dropped: 0, marks: 0, events: 0 };
  end_reason: RunEndReason | null = null;
  /** Wall time spent waiting to keep pace (RunControl.pace), in ns. */
  pace_wait_ns = 0;
  /** Pipelined schedule: slices begun while the set before theirs was still being collected. */
  slices_begun_early = 0;
  private readonly node_count: number;
  // The hot path reads these from fields of the Engine, not through `options`: the options
  // literal of the next run in the same process can come with another map (its boilerplate's),
  // which threw away the optimised code of every function that read through it.
  private readonly sink: RecordSink;
  private readonly backends: readonly NodeBackend[];
  private readonly wall_check_slices: number;
  private readonly pool: FramePool;
  /** Bytes of the frames in flight (pool.loc points into it). */
  private readonly arena = new FrameArena();
  private readonly inboxes: Inbox[];
  /**
   * Per directed link, indexed from * n + to (a sender's links are adjacent: a broadcast
   * walks them in order instead of striding n apart, which missed the cache at 1,024 nodes):
   * LINK_UNUSED until its first frame, then LINK_PLAIN (no jitter, bandwidth, loss or
   * scheduled change: its latency and last delivery time in plain_link_ns are all its
   * state) or LINK_MODELLED (a LinkState in `links`).
   */
  private readonly link_kind: Uint8Array;
  /** Per plain link, at 2 * index: its latency; at 2 * index + 1: its last delivery time (one cache line for both). */
  private readonly plain_link_ns: Float64Array;
  private readonly links: (LinkState | null)[];
  /** Arena location of the frame being routed (-1: not copied in yet). */
  private route_loc = -1;
  /** Its send time (a field, not transmit()'s argument: transmit is not inlined, and a time argument was a heap number per receiver). */
  private route_sent_ns: number = VIRTUAL_NS_NEVER;
  /** Deliveries and outputs of a batch-path slice (in-process backends). */
  private readonly batch: SliceBatch;
  private readonly kept_slab = new FrameSlab();
  private readonly parallel: boolean;
  private readonly concurrent: boolean;
  private readonly pipelined: boolean;
  /** Pipelined: the set after the running one, planned when it started (null: none yet). */
  private set_ahead: SliceGrant[] | RunEndReason | null = null;
  /** Pipelined: slices of set_ahead already begun, by node. */
  private readonly early: (EarlySlice | null)[];
  /** End of the last slice each node took its deliveries for: no frame may arrive before it. */
  private readonly taken_ns: Float64Array;
  /** Byte fields of records may be views of the arena (the sink keeps none). */
  private readonly transient_bytes: boolean;
  /** The sink keeps no record: the hot kinds are written from these arrays, refilled per event (no allocation per event). */
  private readonly reuse_records: boolean;
  // Times start as doubles (never): an array of small integers changes its elements kind at the
  // first time stored, and the next Engine in the process (a sweep, a benchmark's next
  // repetition) then got its arrays in the new kind and threw away the optimised code.
  private readonly grant_record: SliceGrantRecord = [RecordKind.SliceGrant, 0, VIRTUAL_NS_NEVER, VIRTUAL_NS_NEVER];
  private readonly end_record: SliceEndRecord = [RecordKind.SliceEnd, 0, VIRTUAL_NS_NEVER, VIRTUAL_NS_NEVER];
  private readonly deliver_record: FrameDeliverRecord = [RecordKind.FrameDeliver, 0, VIRTUAL_NS_NEVER, 0, 0, VIRTUAL_NS_NEVER];
  private readonly emit_record: FrameEmitRecord = [RecordKind.FrameEmit, 0, 0, 0, new Uint8Array(0)];
  private readonly mark_record: MarkRecord = [RecordKind.Mark, 0, 0, ""];
  /** Node by the low 16 bits of its MAC, where every MAC is 02:00:00:00:HH:LL (the addressing plan); else null. */
  private readonly mac_low_to_node: Int32Array | null;
  private readonly mac_to_node = new Map<number, NodeId>();
  private next_frame_id = 0;
  private next_seq = 0;
  private readonly inflight_frames_max: number;
  private readonly faults: CompiledFaults;
  /** Next network change to record, and its time (never: all recorded). */
  private network_next = 0;
  private network_next_ns: number;

  constructor(private readonly options: EngineOptions) {
    const { topology, macs, backends } = options;
    const n = topology.node_count;
    if (macs.length !== n || backends.length !== n) {
      throw new RangeError(`engine needs ${n} MACs and backends, got ${macs.length} and ${backends.length}`);
    }
    this.node_count = n;
    this.sink = options.sink;
    this.backends = backends;
    this.wall_check_slices = options.wall_check_slices ?? WALL_CHECK_SLICES_DEFAULT;
    this.faults = compileFaults(options.faults, topology, backends);
    this.network_next_ns = this.faults.network[0]?.t_ns ?? VIRTUAL_NS_NEVER;
    this.scheduler = new Scheduler(topology, options.until_ns, options.slice_len_max_ns, this.faults.lookahead, this.faults.node_faults);
    this.inflight_frames_max = options.inflight_frames_max ?? INFLIGHT_FRAMES_MAX_DEFAULT;
    this.pool = new FramePool(this.inflight_frames_max);
    this.inboxes = Array.from({ length: n }, () => new Inbox(n, this.pool));
    this.links = new Array<LinkState | null>(n * n).fill(null);
    this.batch = new SliceBatch(this.arena);
    this.parallel = options.parallel === true;
    this.concurrent = options.concurrent !== false;
    this.pipelined = options.pipelined === true;
    if (this.pipelined && !this.parallel) throw new RangeError("the pipelined schedule is a grant-set schedule: it needs parallel");
    if (this.pipelined && (this.faults.node_faults.some((l) => l.length > 0) || this.faults.network.length > 0)) {
      throw new InputError("the pipelined schedule (--parallel on VMs) does not take faults: run without --parallel");
    }
    this.early = new Array<EarlySlice | null>(n).fill(null);
    this.taken_ns = new Float64Array(n);
    this.transient_bytes = options.sink.transient_bytes === true;
    this.reuse_records = options.sink.transient_records === true;
    const plan = n <= 0x10000 && macs.every((mac, id) => mac === 0x020000000000 + id);
    this.mac_low_to_node = plan ? new Int32Array(0x10000).fill(-1) : null;
    if (plan) macs.forEach((_, id) => (this.mac_low_to_node![id] = id));
    this.link_kind = new Uint8Array(n * n);
    this.plain_link_ns = new Float64Array(2 * n * n);
    macs.forEach((mac, id) => {
      if (this.mac_to_node.has(mac)) throw new RangeError(`duplicate MAC for nodes ${this.mac_to_node.get(mac)} and ${id}`);
      this.mac_to_node.set(mac, id as NodeId);
    });
  }

  get now_ns(): number {
    return this.scheduler.horizon_ns;
  }

  /** Frames waiting for `node`, in delivery order. For inspection (the debugger), not the run loop. */
  pendingFrames(node: NodeId): PendingFrame[] {
    if (!(node >= 0 && node < this.node_count)) throw new RangeError(`no node ${node}`);
    const p = this.pool;
    return this.inboxes[node]!.handles().map((h) => ({ t_ns: p.t_ns[h]!, frame_id: p.frame_id[h]!, from: p.from[h]! as NodeId, sent_ns: p.sent_ns[h]!, length: p.length[h]! }));
  }

  /** Whether `node` runs, is powered off or paused by a scheduled fault, or has exited. For inspection. */
  nodeRunState(node: NodeId): NodeRunState {
    if (!(node >= 0 && node < this.node_count)) throw new RangeError(`no node ${node}`);
    if (this.scheduler.alive[node] === 0) return "exited";
    const state = this.scheduler.run_state[node];
    return state === NODE_DOWN ? "down" : state === NODE_PAUSED ? "paused" : "up";
  }

  /** Every link that has carried a frame, its transmit queue as of its sender's clock (a queue drains in its sender's time). For inspection. */
  linkViews(): LinkView[] {
    const out: LinkView[] = [];
    const n = this.node_count;
    for (let k = 0; k < n * n; k++) {
      // In (to, from) order, as listed before the arrays went from-major.
      const to = Math.floor(k / n) as NodeId;
      const from = (k % n) as NodeId;
      const index = from * n + to;
      const kind = this.link_kind[index]!;
      if (kind === LINK_UNUSED) continue;
      if (kind === LINK_PLAIN) out.push({ to, from, packets: 0, bytes: 0, tx_free_ns: 0, last_delivery_ns: this.plain_link_ns[2 * index + 1]!, down: false });
      else out.push({ to, from, ...this.links[index]!.backlog(this.scheduler.clock_ns[from]!) });
    }
    return out;
  }

  /** Runs until quiescent, `until_ns`, or a stop request; always ends with a run_end record. */
  async run(control: RunControl = { stop_requested: false }): Promise<RunSummary> {
    const wall_start = hostNowNs();
    let last_yield = wall_start as number;
    let last_progress = wall_start as number;
    const pace_start_ns = this.scheduler.horizon_ns;
    let checked_slices = 0;
    while (this.end_reason === null) {
      if (control.pace !== undefined) await this.keepPace(control.pace, pace_start_ns, wall_start);
      if (control.stop_requested) {
        this.finish(control.stop_reason ?? "interrupted", control.stop_detail);
        break;
      }
      // In-process slices complete synchronously: awaiting each one cost a promise per slice.
      const stepped = this.stepNow();
      const more = stepped === true || stepped === false ? stepped : await stepped;
      // A grant set counts all its slices: check once at least wall_check_slices have run since the last check.
      if (!more || this.stats.slices - checked_slices < this.wall_check_slices) continue;
      checked_slices = this.stats.slices;
      const now = hostNowNs();
      if (now - last_yield > YIELD_INTERVAL_NS) {
        this.sink.tick?.();
        await new Promise((resolve) => setImmediate(resolve)); // lets signal handlers run
        last_yield = hostNowNs();
      }
      if (control.onProgress && now - last_progress > PROGRESS_INTERVAL_NS) {
        control.onProgress(this);
        last_progress = now;
      }
    }
    return { ...this.stats, end_reason: this.end_reason!, end_ns: this.scheduler.horizon_ns, wall_ns: hostNowNs() - wall_start };
  }

  /** Waits until virtual time since the run's start is within `pace` x wall time. */
  private async keepPace(pace: number, start_ns: number, wall_start_ns: number): Promise<void> {
    if (!(pace > 0)) throw new RangeError(`pace must be positive, got ${pace}`);
    const ahead_ns = (this.scheduler.horizon_ns - start_ns) / pace - (hostNowNs() - wall_start_ns);
    if (ahead_ns <= 0) return;
    this.sink.tick?.();
    this.pace_wait_ns += ahead_ns;
    await new Promise((resolve) => setTimeout(resolve, Math.min(ahead_ns / 1e6, PACE_WAIT_MS_MAX)));
  }

  /** Runs one slice (with `parallel`: one grant set), or applies one node fault. Returns false once the run has ended. */
  async step(): Promise<boolean> {
    return this.stepNow();
  }

  /** step(), returning a Promise only when a backend or fault had to be awaited. */
  private stepNow(): boolean | Promise<boolean> {
    if (this.end_reason !== null) return false;
    this.arena.collect(); // no backend holds a view of a frame any more
    if (this.pipelined) return this.stepPipelined();
    if (this.parallel) return this.stepSet();
    const grant = this.scheduler.next();
    if (typeof grant === "string") {
      this.finish(grant);
      return false;
    }
    if (!("end_ns" in grant)) return this.applyFault(grant).then(() => true);
    const pending = this.runSlice(grant);
    return pending === undefined ? true : pending.then(() => true);
  }

  /**
   * One grant set: every slice granted from the same scheduler state. Backends that can
   * (beginSlice) are started first, all of them, before any result is collected; then, in
   * the set's order (ascending node id), each slice is recorded and its frames routed —
   * exactly as if the slices had run one after another in that order. That is sound
   * because no slice of the set can receive a frame another sends in it (each end is within
   * the bound computed from the same state), so neither the deliveries nor the outputs of a
   * slice depend on whether the others ran before, after or at the same time.
   */
  private stepSet(): boolean | Promise<boolean> {
    const set = this.scheduler.nextSet();
    if (typeof set === "string") {
      this.finish(set);
      return false;
    }
    if (!Array.isArray(set)) return this.applyFault(set as FaultGrant).then(() => true);
    const grants = set as readonly SliceGrant[];
    return this.collectSet(grants, this.beginSet(grants), 0);
  }

  /**
   * One set of the pipelined schedule: the set planned when the previous one started (less
   * nodes that have exited since), the next one planned now from this one's ends, then as
   * stepSet, with early begins of the next set's slices while this one is collected.
   */
  private stepPipelined(): boolean | Promise<boolean> {
    const planned = this.set_ahead ?? this.planSet();
    this.set_ahead = null;
    if (typeof planned === "string") {
      this.finish(planned);
      return false;
    }
    // An exited node's planned end only made other nodes' bounds smaller (safe); it runs no more.
    const grants = planned.filter((g) => this.scheduler.alive[g.node] === 1);
    for (const g of grants) if (g.end_ns > this.scheduler.horizon_ns) this.scheduler.horizon_ns = g.end_ns;
    this.set_ahead = this.planSet();
    return this.collectSet(grants, this.beginSet(grants), 0);
  }

  /** The next grant set, from the scheduler's planned state; the horizon moves when a set runs, not when it is planned. */
  private planSet(): SliceGrant[] | RunEndReason {
    const horizon_ns = this.scheduler.horizon_ns;
    const set = this.scheduler.nextSet();
    this.scheduler.horizon_ns = horizon_ns;
    if (typeof set === "string") return set;
    if (!Array.isArray(set)) throw new Error("pipelined schedule: a node fault came due (faults are refused up front)");
    this.scheduler.plan(set);
    return set;
  }

  /**
   * Pipelined: once slice k of the running set is collected, begins its node's slice of the
   * next set, unless a slice of this set not yet recorded (from `unrecorded` on, k aside)
   * could still send a frame into it (its start plus the lookahead falls before the next
   * slice's end; the next slice's own bound already covers every slice of the next set).
   * Not twice: a slice begun when collected ahead of its turn is not begun again when recorded.
   */
  private beginEarly(grants: readonly SliceGrant[], k: number, unrecorded: number): void {
    const ahead = this.set_ahead;
    if (!this.concurrent || ahead === null || typeof ahead === "string") return;
    const node = grants[k]!.node;
    const backend = this.backends[node]!;
    if (this.scheduler.alive[node] === 0 || backend.beginSlice === undefined || this.early[node] !== null) return;
    const next = ahead.find((g) => g.node === node);
    if (next === undefined) return;
    // Slices from `unrecorded` on (k aside) have not had their frames routed yet, whether still
    // running or collected ahead of their turn: none of them may be able to reach the next slice.
    for (let m = unrecorded; m < grants.length; m++) {
      if (m === k) continue;
      if (grants[m]!.start_ns + this.scheduler.lookaheadNs(node, grants[m]!.node) < next.end_ns) return;
    }
    const request = this.takeDeliveries(next);
    this.early[node] = { grant: next, request, collect: backend.beginSlice(request) };
    this.slices_begun_early += 1;
  }

  /**
   * Begins the set's slices on backends that can run concurrently (pipelined: slices begun
   * early are taken over, even in a set of one); null when none is begun.
   */
  private beginSet(grants: readonly SliceGrant[]): BegunSet | null {
    if (!this.concurrent || (grants.length < 2 && !this.pipelined)) return null;
    const backends = this.backends;
    let begun: BegunSet | null = null;
    for (let k = 0; k < grants.length; k++) {
      const grant = grants[k]!;
      const backend = backends[grant.node]!;
      if (backend.beginSlice === undefined) continue;
      begun ??= { collect: new Array<null>(grants.length).fill(null), requests: new Array<null>(grants.length).fill(null) };
      const early = this.early[grant.node];
      if (early !== null && early !== undefined) {
        if (early.grant.start_ns !== grant.start_ns || early.grant.end_ns !== grant.end_ns) throw new Error(`pipelined schedule: node ${grant.node} began [${early.grant.start_ns}, ${early.grant.end_ns}) early, the set has [${grant.start_ns}, ${grant.end_ns})`);
        this.early[grant.node] = null;
        begun.requests[k] = early.request;
        begun.collect[k] = early.collect;
        continue;
      }
      const request = this.takeDeliveries(grant);
      begun.requests[k] = request;
      begun.collect[k] = backend.beginSlice(request);
    }
    return begun;
  }

  /** Records the set's slices from `first` on, in order; a Promise only once a backend returns one (no await per in-process slice). */
  private collectSet(grants: readonly SliceGrant[], begun: BegunSet | null, first: number): boolean | Promise<boolean> {
    for (let k = first; k < grants.length; k++) {
      const grant = grants[k]!;
      const collect = begun?.collect[k] ?? null;
      if (collect === null) {
        const pending = this.runSlice(grant);
        if (pending !== undefined) return pending.then(() => this.collectSet(grants, begun, k + 1));
        continue;
      }
      if (this.pipelined && k + 1 < grants.length) {
        const waiter = commonWaiter(begun!, k);
        if (waiter !== null) return this.collectInFinishOrder(grants, begun!, k, waiter);
      }
      this.recordGrant(grant);
      const result = collect();
      const request = begun!.requests[k]!;
      if (result instanceof Promise) {
        return result.then((r) => {
          this.sliceDone(grant, request, r);
          if (this.pipelined) this.beginEarly(grants, k, k + 1);
          return this.collectSet(grants, begun, k + 1);
        });
      }
      this.sliceDone(grant, request, result);
      if (this.pipelined) this.beginEarly(grants, k, k + 1);
    }
    return true;
  }

  /**
   * Pipelined, with every slice left in the set able to say when it is done: collects them in
   * the order they finish and records them in the set's order. A slice collected before its
   * turn has its node's next slice begun at once when no slice not yet recorded can send into
   * it, so a node that finishes first does not wait for the slices before it in the set.
   * Blocking throughout (such collectors never return a Promise).
   */
  private collectInFinishOrder(grants: readonly SliceGrant[], begun: BegunSet, first: number, waiter: FinishWaiter): true {
    const n = grants.length;
    const finished = new Array<Finished | null>(n).fill(null);
    const keys = new Int32Array(n);
    const waiting = new Int32Array(n);
    let k = first; // the next slice to record: every one before it is recorded
    for (let collected = 0; k < n; ) {
      if (finished[k] !== null) {
        this.recordFinished(grants[k]!, begun.requests[k]!, finished[k]!);
        finished[k] = null;
        this.beginEarly(grants, k, k + 1);
        k += 1;
        continue;
      }
      let count = 0;
      for (let m = k; m < n; m++) {
        if (finished[m] !== null) continue;
        keys[count] = begun.collect[m]!.finish!.key;
        waiting[count++] = m;
      }
      const index = waiter.waitAny(keys, count);
      if (!(Number.isInteger(index) && index >= 0 && index < count)) throw new RangeError(`waitAny returned ${index} for ${count} slices`);
      const m = waiting[index]!;
      finished[m] = collectNow(begun.collect[m]!);
      collected += 1;
      if (collected > n - first) throw new Error("collectInFinishOrder: collected more slices than the set holds");
      const done = finished[m]!;
      if (m > k && "result" in done && ranThrough(grants[m]!, done.result)) this.beginEarly(grants, m, k);
    }
    return true;
  }

  /** Records a slice collected earlier (recordGrant first, as collectSet does), or rethrows what collecting it threw. */
  private recordFinished(grant: SliceGrant, request: SliceRequest, done: Finished): void {
    this.recordGrant(grant);
    if ("thrown" in done) throw done.thrown;
    this.sliceDone(grant, request, done.result);
  }

  /** Grants, runs and records one slice; a Promise only when the backend returned one (no await per in-process slice). */
  private runSlice(grant: SliceGrant): Promise<void> | undefined {
    this.recordGrant(grant);
    const backend = this.backends[grant.node]!;
    if (backend.runSliceBatch !== undefined) {
      this.runBatch(grant, backend);
      return undefined;
    }
    const request = this.takeDeliveries(grant);
    const pending = backend.runSlice(request);
    if (pending instanceof Promise) return pending.then((result) => this.sliceDone(grant, request, result));
    this.sliceDone(grant, request, pending);
    return undefined;
  }

  private sliceDone(grant: SliceGrant, request: SliceRequest, result: SliceResult): void {
    checkSliceResult(grant, request.deliveries.length, result);
    this.recordDeliveries(request, result.deliveries_taken ?? request.deliveries.length);
    this.completeSlice(grant, result);
  }

  /** Ends the run now (e.g. a backend failed); records why, and what happened when it was an error. */
  finish(reason: RunEndReason, detail?: string): void {
    if (this.end_reason !== null) return;
    this.end_reason = reason;
    if (detail === undefined) this.write([RecordKind.RunEnd, this.scheduler.horizon_ns, reason]);
    else this.write([RecordKind.RunEnd, this.scheduler.horizon_ns, reason, oneLine(detail)]);
  }

  /**
   * A node fault, at the moment the node's clock stands at its time: record it, have the
   * backend apply it, then drop what a powered-off node will never take.
   */
  private async applyFault(grant: FaultGrant): Promise<void> {
    const { node, t_ns, action } = grant;
    this.scheduler.faultApplied(grant);
    this.write([RecordKind.Fault, node, t_ns, action, ""]);
    const pending = this.backends[node]!.control!({ t_ns, action });
    if (pending instanceof Promise) await pending;
    if (action === "poweroff") this.dropWhileDown(node, t_ns);
  }

  /** Frames due while the node is off (before its restart, if any) are lost; later ones wait for it. */
  private dropWhileDown(node: NodeId, t_ns: number): void {
    const restart_ns = this.scheduler.fault_ns[node]!;
    const inbox = this.inboxes[node]!;
    while (inbox.peekTime(VIRTUAL_NS_NEVER) < restart_ns) {
      const h = inbox.pop();
      this.drop(node, t_ns, this.pool.frame_id[h]!, this.pool.from[h]! as NodeId, "node_down");
      this.releaseFrame(h);
    }
    this.scheduler.inbox_ns[node] = inbox.peekTime(VIRTUAL_NS_NEVER);
  }

  /**
   * Network changes are recorded just before the first slice grant whose end is past their
   * time: the first slice in which a frame could be sent under them. That point depends
   * only on the schedule, so runs and replays write them at the same place.
   */
  private recordNetworkChanges(end_ns: number): void {
    const network = this.faults.network;
    while (this.network_next < network.length && network[this.network_next]!.t_ns < end_ns) {
      const c = network[this.network_next++]!;
      this.write([RecordKind.Fault, -1, c.t_ns, c.action, c.label]);
    }
    this.network_next_ns = network[this.network_next]?.t_ns ?? VIRTUAL_NS_NEVER;
  }

  /** Network changes due, then the grant itself. */
  private recordGrant(grant: SliceGrant): void {
    if (grant.end_ns > this.network_next_ns) this.recordNetworkChanges(grant.end_ns);
    this.stats.slices += 1;
    if (!this.reuse_records) {
      this.write([RecordKind.SliceGrant, grant.node, grant.start_ns, grant.end_ns]);
      return;
    }
    const r = this.grant_record;
    r[1] = grant.node;
    r[2] = grant.start_ns;
    r[3] = grant.end_ns;
    this.write(r);
  }

  /** Takes the frames due in the slice out of the node's inbox. */
  private takeDeliveries(grant: SliceGrant): SliceRequest {
    const { node, start_ns, end_ns } = grant;
    const inbox = this.inboxes[node]!;
    const deliveries: Delivery[] = [];
    // Frames due before the slice start reached a paused node: it takes them at its resume.
    while (inbox.peekTime(VIRTUAL_NS_NEVER) < end_ns) {
      const h = inbox.pop();
      deliveries.push(this.delivery(h, start_ns));
      this.releaseFrame(h);
    }
    this.scheduler.inbox_ns[node] = inbox.peekTime(VIRTUAL_NS_NEVER);
    this.taken_ns[node] = end_ns;
    return { node, start_ns, end_ns, deliveries };
  }

  /** Deliveries are recorded once the node has run: one that exits mid-slice never got the rest. */
  private recordDeliveries(request: SliceRequest, taken: number): void {
    const { node, deliveries } = request;
    for (let k = 0; k < deliveries.length; k++) {
      const d = deliveries[k]!;
      if (k < taken) this.writeDeliver(node, d.t_ns, d.frame_id, d.from, d.sent_ns);
      else this.drop(node, d.t_ns, d.frame_id, d.from, "node_exited");
    }
    this.stats.frames_delivered += taken;
  }

  private completeSlice(grant: SliceGrant, result: SliceResult): void {
    const node = grant.node;
    const first_frame_id = this.next_frame_id;
    let exited = false;
    for (const out of result.outputs) {
      if (out.kind === "emit") {
        const frame_id = this.next_frame_id++;
        this.stats.frames_emitted += 1;
        this.writeEmit(node, out.t_ns, frame_id, out.bytes);
      } else if (out.kind === "mark") {
        this.stats.marks += 1;
        this.write([RecordKind.Mark, node, out.t_ns, out.text]);
      } else if (out.kind === "guest_output") {
        this.write([RecordKind.GuestOutput, node, out.t_ns, out.text]);
      } else if (out.kind === "mgmt_in") {
        this.write([RecordKind.MgmtIn, node, out.t_ns, out.bytes]);
      } else if (out.kind === "mgmt_out") {
        this.write([RecordKind.MgmtOut, node, out.t_ns, out.bytes]);
      } else if (out.kind === "command") {
        this.write([RecordKind.Command, node, out.t_ns, out.event, out.id, out.detail]);
      } else {
        exited ||= endsNode(out.event);
        this.write([RecordKind.Lifecycle, node, out.t_ns, out.event, out.detail]);
      }
    }
    this.endSlice(grant, result, exited);
    let frame_id = first_frame_id;
    for (const out of result.outputs) {
      if (out.kind === "emit") {
        this.route_loc = -1; // copied into the arena by the first receiver that takes it
        this.route(node, out.t_ns, frame_id++, out.bytes, 0, out.bytes.length);
      }
    }
  }

  /** A copy of a frame for a sink that keeps records (cut from a slab: no allocation per frame). */
  private keptCopy(view: Uint8Array): Uint8Array {
    const copy = this.kept_slab.alloc(view.length);
    copy.set(view);
    return copy;
  }

  /**
   * The grant and result objects, not their times: they would be boxed as arguments (endSlice
   * is not inlined). Pipelined, a slice must run to its end unless the node exited.
   */
  private endSlice(grant: SliceGrant, result: { readonly end_ns: number; readonly wake_ns: number }, exited: boolean): void {
    const node = grant.node;
    const end_ns = result.end_ns;
    if (this.pipelined && !exited && end_ns !== grant.end_ns) throw new SliceResultError(`${sliceWhere(grant)}: a pipelined slice must run to its end, not stop at ${end_ns}`);
    const wake_ns = exited ? VIRTUAL_NS_NEVER : result.wake_ns;
    const wake_field = wake_ns === VIRTUAL_NS_NEVER ? -1 : wake_ns;
    if (this.reuse_records) {
      const r = this.end_record;
      r[1] = node;
      r[2] = end_ns;
      r[3] = wake_field;
      this.write(r);
    } else {
      this.write([RecordKind.SliceEnd, node, end_ns, wake_field]);
    }
    if (!this.pipelined) this.scheduler.completed(node, end_ns, wake_ns);
    else if (!exited) this.scheduler.completedPlanned(node, end_ns, wake_ns);
    if (exited) this.nodeExited(node, end_ns);
  }

  /**
   * A slice on the batch path: deliveries handed over as typed arrays, outputs taken from
   * typed arrays, frames already in the arena. Records exactly what the object path would.
   */
  private runBatch(grant: SliceGrant, backend: NodeBackend): void {
    const { node, start_ns, end_ns } = grant;
    const batch = this.batch;
    const pool = this.pool;
    const inbox = this.inboxes[node]!;
    batch.reset(node, start_ns, end_ns);
    this.taken_ns[node] = end_ns;
    for (let h = inbox.popBefore(end_ns); h >= 0; h = inbox.popBefore(end_ns)) {
      const t_ns = inbox.popped_t_ns;
      batch.addDelivery(t_ns < start_ns ? start_ns : t_ns, pool.frame_id[h]!, pool.from[h]!, pool.sent_ns[h]!, pool.loc[h]!, pool.length[h]!);
      this.releaseFrame(h);
    }
    this.scheduler.inbox_ns[node] = inbox.peekTime(VIRTUAL_NS_NEVER);
    const result = backend.runSliceBatch!(grant, batch, batch);
    checkBatchResult(grant, batch, result);
    const taken = result.deliveries_taken;
    if (this.reuse_records) this.writeBatchDeliveries(node, taken);
    else for (let k = 0; k < taken; k++) this.writeDeliver(node, batch.t_ns[k]!, batch.frame_id[k]!, batch.from[k]!, batch.sent_ns[k]!);
    for (let k = taken; k < batch.count; k++) this.drop(node, batch.t_ns[k]!, batch.frame_id[k]!, batch.from[k]! as NodeId, "node_exited");
    this.stats.frames_delivered += taken;
    const first_frame_id = this.next_frame_id;
    let exited = false;
    const n_out = batch.out_count;
    for (let k = 0; k < n_out; k++) {
      const kind = batch.out_kind[k]!;
      const t_ns = batch.out_t_ns[k]!;
      if (kind === OUT_EMIT) {
        const frame_id = this.next_frame_id++;
        this.stats.frames_emitted += 1;
        this.writeBatchEmit(node, t_ns, frame_id, batch.out_loc[k]!, batch.out_length[k]!);
      } else if (kind === OUT_MARK) {
        this.stats.marks += 1;
        this.writeBatchMark(node, k);
      } else {
        const event = batch.out_event[k]!;
        exited ||= endsNode(event);
        this.write([RecordKind.Lifecycle, node, t_ns, event, batch.out_text[k]!]);
      }
    }
    this.endSlice(grant, result, exited);
    let frame_id = first_frame_id;
    for (let k = 0; k < n_out; k++) {
      if (batch.out_kind[k] !== OUT_EMIT) continue;
      const loc = batch.out_loc[k]!;
      this.route_loc = loc; // already in the arena
      this.route(node, batch.out_t_ns[k]!, frame_id++, this.arena.chunkOf(loc), this.arena.offsetOf(loc), batch.out_length[k]!);
    }
  }

  private nodeExited(node: NodeId, t_ns: number): void {
    this.scheduler.exited(node);
    const inbox = this.inboxes[node]!;
    for (let h = inbox.pop(); h >= 0; h = inbox.pop()) {
      this.drop(node, t_ns, this.pool.frame_id[h]!, this.pool.from[h]! as NodeId, "node_exited");
      this.releaseFrame(h);
    }
    this.scheduler.inbox_ns[node] = VIRTUAL_NS_NEVER;
  }

  /** The frame has left the inbox (its bytes stay readable until the next step's collect). */
  private releaseFrame(h: number): void {
    this.arena.release(this.pool.loc[h]!);
    this.pool.release(h);
  }

  /** Routes the frame in buf[offset, offset + length) (route_loc: where it is in the arena, -1 if not yet). */
  private route(from: NodeId, sent_ns: number, frame_id: number, buf: Uint8Array, offset: number, length: number): void {
    this.route_sent_ns = sent_ns;
    if (length < ETH_HEADER_BYTES) {
      this.drop(-1, sent_ns, frame_id, from, "no_route");
      return;
    }
    if ((buf[offset]! & 1) === 1) {
      // Group (broadcast, multicast) MAC: every other node.
      for (let to = 0; to < this.node_count; to++) {
        if (to !== from) this.transmit(to as NodeId, from, frame_id, buf, offset, length);
      }
      return;
    }
    const to = this.nodeByMac(buf, offset);
    if (to < 0 || to === from) this.drop(-1, sent_ns, frame_id, from, "no_route");
    else this.transmit(to as NodeId, from, frame_id, buf, offset, length);
  }

  /** The node whose MAC is the frame's destination, or -1. */
  private nodeByMac(buf: Uint8Array, o: number): number {
    const plan = this.mac_low_to_node;
    if (plan !== null) {
      if (buf[o] !== 0x02 || buf[o + 1] !== 0 || buf[o + 2] !== 0 || buf[o + 3] !== 0) return -1;
      return plan[(buf[o + 4]! << 8) | buf[o + 5]!]!;
    }
    const mac = buf[o]! * 0x10000000000 + buf[o + 1]! * 0x100000000 + ((buf[o + 2]! << 24) >>> 0) + (buf[o + 3]! << 16) + (buf[o + 4]! << 8) + buf[o + 5]!;
    return this.mac_to_node.get(mac) ?? -1;
  }

  /** Puts the frame being routed (route_sent_ns, route_loc) on the link from -> to. */
  private transmit(to: NodeId, from: NodeId, frame_id: number, buf: Uint8Array, offset: number, length: number): void {
    const sent_ns = this.route_sent_ns;
    if (this.scheduler.alive[to] === 0) {
      this.drop(to, sent_ns, frame_id, from, "node_exited");
      return;
    }
    const index = from * this.node_count + to;
    let kind = this.link_kind[index]!;
    if (kind === LINK_UNUSED) kind = this.firstFrameOn(index, to, from);
    // due_ns stays a number (a number-or-reason variable was boxed per frame).
    let due_ns: number;
    if (kind === LINK_PLAIN) {
      // A plain link: exactly latency later, never before the frame ahead of it.
      const plain = this.plain_link_ns;
      due_ns = sent_ns + plain[2 * index]!;
      const last_ns = plain[2 * index + 1]!;
      if (due_ns < last_ns) due_ns = last_ns;
      plain[2 * index + 1] = due_ns;
    } else {
      const outcome = this.links[index]!.transmit(sent_ns, length);
      if (typeof outcome === "string") {
        this.drop(to, sent_ns, frame_id, from, outcome);
        return;
      }
      due_ns = outcome;
    }
    // A powered-off NIC takes nothing; a frame arriving once the node is up again waits for it.
    if (this.scheduler.run_state[to] === NODE_DOWN && due_ns < this.scheduler.fault_ns[to]!) {
      this.drop(to, sent_ns, frame_id, from, "node_down");
      return;
    }
    // The conservative bound guarantees this; a violation would mean a frame in the past.
    // (Pipelined, a node's clock is its planned end: the deliveries it has taken are what count.)
    const floor_ns = this.pipelined ? this.taken_ns[to]! : this.scheduler.clock_ns[to]!;
    if (!(due_ns >= floor_ns)) causalityViolation(frame_id, due_ns, to, floor_ns);
    if (this.pool.size >= this.inflight_frames_max) tooManyInFlight(this.inflight_frames_max, sent_ns);
    // Copied into the arena once, for every receiver of a broadcast.
    if (this.route_loc < 0) this.route_loc = this.arena.put(buf, offset, length);
    this.arena.ref(this.route_loc);
    this.inboxes[to]!.push(this.pool.alloc(due_ns, this.next_seq++, frame_id, from, sent_ns, this.route_loc, length));
    if (due_ns < this.scheduler.inbox_ns[to]!) this.scheduler.inbox_ns[to] = due_ns;
  }

  private delivery(h: number, start_ns: number): Delivery {
    const p = this.pool;
    return { t_ns: Math.max(p.t_ns[h]!, start_ns), frame_id: p.frame_id[h]!, from: p.from[h]! as NodeId, sent_ns: p.sent_ns[h]!, bytes: this.arena.view(p.loc[h]!, p.length[h]!) };
  }

  /** A link's first frame: a plain link needs no more state than its last delivery time. */
  private firstFrameOn(index: number, to: NodeId, from: NodeId): number {
    const topology = this.options.topology;
    const steps = this.faults.link_steps.get(to * this.node_count + from);
    const latency_ns = topology.plainLatency(to, from);
    const plain = steps === undefined && latency_ns >= 0;
    if (plain) this.plain_link_ns[2 * index] = latency_ns;
    else this.links[index] = new LinkState(topology.link(to, from), this.options.seed, steps);
    const kind = plain ? LINK_PLAIN : LINK_MODELLED;
    this.link_kind[index] = kind;
    return kind;
  }

  private drop(to: number, t_ns: number, frame_id: number, from: NodeId, reason: DropReason): void {
    this.stats.frames_dropped += 1;
    this.write([RecordKind.FrameDrop, to, t_ns, frame_id, from, reason]);
  }

  /** The frame_emit record of a batch-path frame at arena location `loc`: no view where the sink reads buffer ranges. */
  private writeBatchEmit(node: number, t_ns: number, frame_id: number, loc: number, length: number): void {
    const sink = this.sink;
    if (sink.writeFrameEmitIn !== undefined) {
      this.stats.events += 1;
      sink.writeFrameEmitIn(node, t_ns, frame_id, this.arena.chunkOf(loc), this.arena.offsetOf(loc), length);
      return;
    }
    const view = this.arena.view(loc, length);
    this.writeEmit(node, t_ns, frame_id, this.transient_bytes ? view : this.keptCopy(view));
  }

  /** frame_deliver records of the batch's first `taken` deliveries, from the reused array (one loop: no call, so no boxed times, per frame). */
  private writeBatchDeliveries(node: number, taken: number): void {
    const batch = this.batch;
    const sink = this.sink;
    const r = this.deliver_record;
    r[1] = node;
    for (let k = 0; k < taken; k++) {
      r[2] = batch.t_ns[k]!;
      r[3] = batch.frame_id[k]!;
      r[4] = batch.from[k]!;
      r[5] = batch.sent_ns[k]!;
      sink.write(r);
    }
    this.stats.events += taken;
  }

  /** The mark record of batch output k (its index, not its time: a time argument would be boxed). */
  private writeBatchMark(node: number, k: number): void {
    const t_ns = this.batch.out_t_ns[k]!;
    const text = this.batch.out_text[k]!;
    if (!this.reuse_records) {
      this.write([RecordKind.Mark, node, t_ns, text]);
      return;
    }
    const r = this.mark_record;
    r[1] = node;
    r[2] = t_ns;
    r[3] = text;
    this.write(r);
  }

  private writeDeliver(to: number, t_ns: number, frame_id: number, from: number, sent_ns: number): void {
    if (!this.reuse_records) {
      this.write([RecordKind.FrameDeliver, to, t_ns, frame_id, from, sent_ns]);
      return;
    }
    const r = this.deliver_record;
    r[1] = to;
    r[2] = t_ns;
    r[3] = frame_id;
    r[4] = from;
    r[5] = sent_ns;
    this.write(r);
  }

  private writeEmit(node: number, t_ns: number, frame_id: number, bytes: Uint8Array): void {
    if (!this.reuse_records) {
      this.write([RecordKind.FrameEmit, node, t_ns, frame_id, bytes]);
      return;
    }
    const r = this.emit_record;
    r[1] = node;
    r[2] = t_ns;
    r[3] = frame_id;
    r[4] = bytes;
    this.write(r);
  }

  private write(record: Parameters<RecordSink["write"]>[0]): void {
    this.stats.events += 1;
    this.sink.write(record);
  }
}

/** Out of line: the message is built only on error, and transmit() stays small. */
function causalityViolation(frame_id: number, due_ns: number, to: number, clock_ns: number): never {
  throw new Error(`causality violation: frame ${frame_id} due at ${due_ns} into node ${to} already at ${clock_ns}`);
}

function tooManyInFlight(inflight_frames_max: number, sent_ns: number): never {
  throw new InputError(
    `more than ${inflight_frames_max} frames in flight at t=${sent_ns} ns: the workload outgrows memory ` +
      `(use fewer nodes, --broadcasters, or raise --inflight-max)`,
  );
}

/** Collects a slice whose collector is blocking (it has a finish signal); what it throws is kept for the slice's turn. */
function collectNow(collect: SliceCollector): Finished {
  try {
    const result = collect();
    if (result instanceof Promise) throw new Error("a collector with a finish signal returned a Promise (it must block)");
    return { result };
  } catch (thrown) {
    return { thrown };
  }
}

/** Where a slice result went wrong (built only on error: formatting numbers per slice cost ~6% at 4 nodes). */
function sliceWhere(grant: SliceGrant): string {
  return `node ${grant.node} slice [${grant.start_ns}, ${grant.end_ns})`;
}

/** Slices of a grant set begun on concurrent backends: per position in the set, the collector and request (null: not begun). */
interface BegunSet {
  collect: (SliceCollector | null)[];
  requests: (SliceRequest | null)[];
}

/** A slice collected before its turn to be recorded: its result, or what collecting it threw (rethrown at its turn). */
type Finished = { readonly result: SliceResult } | { readonly thrown: unknown };

/** The waiter every slice of the set from `first` on can be waited for with, or null (then they are collected in order). */
function commonWaiter(begun: BegunSet, first: number): FinishWaiter | null {
  const waiter = begun.collect[first]?.finish?.waiter ?? null;
  for (let k = first + 1; k < begun.collect.length && waiter !== null; k++) {
    if (begun.collect[k]?.finish?.waiter !== waiter) return null;
  }
  return waiter;
}

/** Whether a lifecycle event ends the node (every event but boot: exit, crash). */
function endsNode(event: LifecycleEvent): boolean {
  return event !== "boot";
}

/** Whether a slice ran to its end with the node still there afterwards (its next slice may begin before it is recorded). */
function ranThrough(grant: SliceGrant, result: SliceResult): boolean {
  if (result.end_ns !== grant.end_ns) return false;
  for (const out of result.outputs) if (out.kind === "lifecycle" && endsNode(out.event)) return false;
  return true;
}

function checkBatchResult(grant: SliceGrant, batch: SliceBatch, result: BatchSliceResult): void {
  const taken = result.deliveries_taken;
  if (!(Number.isInteger(taken) && taken >= 0 && taken <= batch.count)) throw new SliceResultError(`${sliceWhere(grant)}: backend took ${taken} of ${batch.count} deliveries`);
  const end_ns = result.end_ns;
  if (!(end_ns >= grant.start_ns && end_ns <= grant.end_ns)) {
    throw new SliceResultError(`${sliceWhere(grant)}: backend ended at ${end_ns}, outside the slice`);
  }
  // Each output was checked on arrival against the slice granted (SliceBatch.addOutput), in order; the last one bounds them all.
  const last_ns = batch.lastOutputNs();
  if (!(last_ns <= end_ns)) throw new SliceResultError(`${sliceWhere(grant)}: output at ${last_ns} out of order or outside the slice`);
}

function checkSliceResult(grant: SliceGrant, deliveries: number, result: SliceResult): void {
  const where = sliceWhere(grant);
  const taken = result.deliveries_taken ?? deliveries;
  if (!(Number.isInteger(taken) && taken >= 0 && taken <= deliveries)) throw new SliceResultError(`${where}: backend took ${taken} of ${deliveries} deliveries`);
  if (!(result.end_ns >= grant.start_ns && result.end_ns <= grant.end_ns)) {
    throw new SliceResultError(`${where}: backend ended at ${result.end_ns}, outside the slice`);
  }
  if (result.outputs.length > SLICE_OUTPUTS_MAX) throw new SliceResultError(`${where}: ${result.outputs.length} outputs exceed the bound`);
  let last_ns = grant.start_ns;
  for (const out of result.outputs as readonly SliceOutput[]) {
    if (!(out.t_ns >= last_ns && out.t_ns <= result.end_ns)) {
      throw new SliceResultError(`${where}: output at ${out.t_ns} out of order or outside the slice`);
    }
    last_ns = out.t_ns;
  }
}
