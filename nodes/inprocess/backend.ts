// Runs a protocol state machine written in TypeScript as a node: it reacts to frames and
// timers at exact virtual times and takes no virtual time itself. Same contract as a VM, so
// the engine, traces and tools treat both alike, and hundreds of nodes fit in one process.
// Scheduled faults: poweroff stops the node for good (its timers go, it never runs again);
// pause freezes it, and timers that fell due meanwhile fire at the resume, in their order.
// A restart needs the protocol object built afresh: only a backend given a way to make one
// (`rebuild`) can restart; for the others the engine refuses such a plan up front
// (control_actions). Workloads share state between their nodes, so runs of them cannot.

import type { BatchSliceResult, Delivery, DeliveryBatch, NodeBackend, NodeControl, OutputBatch, SliceBounds, SliceOutput, SliceRequest, SliceResult } from "../../engine/backend.js";
import { EventQueue } from "../../engine/event_queue.js";
import { Prng } from "../../engine/prng.js";
import { VIRTUAL_NS_NEVER as NEVER_IMPORTED, type NodeId } from "../../engine/units.js";

// A module-local copy of the import: TurboFan folds a module's own constant into float64
// arithmetic, but loads an imported binding as a tagged value, so a time that met it (a
// ternary, a Math.min) was boxed as a heap number: 64 bytes per scheduler step at 4 nodes.
const VIRTUAL_NS_NEVER = NEVER_IMPORTED;

export interface NodeContext {
  readonly self: NodeId;
  readonly node_count: number;
  /** Virtual time of the event being handled. */
  readonly now_ns: number;
  /** This node's own random stream (derived from the run seed and the node id). */
  readonly prng: Prng;
  /** Puts a frame on the wire now. The frame is copied: the caller may reuse its buffer. */
  send(frame: Uint8Array): void;
  /** Calls onTimer(timer_id) at `at_ns` (>= now). */
  setTimer(at_ns: number, timer_id: number): void;
  mark(text: string): void;
  exit(detail: string): void;
}

export interface ProtocolNode {
  start(ctx: NodeContext): void;
  /** `frame` and `delivery` are valid during the call only (the engine reuses their memory): copy what you keep. */
  onFrame(ctx: NodeContext, frame: Uint8Array, delivery: Delivery): void;
  /**
   * Optional, used instead of onFrame where present: the frame is buf[offset, offset +
   * length) of an engine buffer (same validity), so no view is made per frame.
   */
  onFrameIn?(ctx: NodeContext, buf: Uint8Array, offset: number, length: number, delivery: Delivery): void;
  onTimer(ctx: NodeContext, timer_id: number): void;
}

interface TimerEntry {
  readonly t_ns: number;
  readonly kind: number;
  readonly seq: number;
  readonly timer_id: number;
}

/**
 * The delivery handed to the protocol on the batch path: one object, pointed at frame k per
 * frame; its fields are read from the batch only if the protocol reads them (Bracha reads
 * none: four stores per frame saved), its bytes made only if read.
 */
class BatchDelivery implements Delivery {
  batch: DeliveryBatch | null = null;
  k = 0;

  get t_ns(): number {
    return this.batch!.t_ns[this.k]!;
  }

  get frame_id(): number {
    return this.batch!.frame_id[this.k]!;
  }

  get from(): NodeId {
    return this.batch!.from[this.k]! as NodeId;
  }

  get sent_ns(): number {
    return this.batch!.sent_ns[this.k]!;
  }

  get bytes(): Uint8Array {
    return this.batch!.frame(this.k);
  }
}

/** runSliceBatch's result object; times start as doubles (see GrantSlot in engine/scheduler.ts). */
class BatchResultSlot implements BatchSliceResult {
  end_ns: number = VIRTUAL_NS_NEVER;
  wake_ns: number = VIRTUAL_NS_NEVER;
  deliveries_taken = 0;
}

/** Timers run before frames due at the same instant (their kind sorts first). */
const TIMER_KIND = 0;
const TIMERS_MAX = 1_000_000;

export class InProcessBackend implements NodeBackend, NodeContext {
  readonly kind = "inprocess" as const;
  readonly control_actions: readonly NodeControl["action"][];
  readonly prng: Prng;
  /** -0: zero, but a double from the start (see GrantSlot in engine/scheduler.ts); set before any protocol reads it. */
  now_ns = -0;
  private readonly timers = new EventQueue<TimerEntry>(TIMERS_MAX);
  private outputs: SliceOutput[] = [];
  /** Where outputs go during a batch-path slice (null: the object path's `outputs`). */
  private out: OutputBatch | null = null;
  private readonly delivery = new BatchDelivery();
  /** runSliceBatch's result, refilled per slice (the engine reads it at once). */
  private readonly batch_result = new BatchResultSlot();
  private timer_seq = 0;
  private started = false;
  private exited = false;
  private powered_off = false;
  private paused = false;

  /** `rebuild` makes the fresh protocol node a restart boots (absent: the node cannot restart). */
  constructor(
    readonly self: NodeId,
    readonly node_count: number,
    private protocol: ProtocolNode,
    seed: number,
    private readonly rebuild: (() => ProtocolNode) | null = null,
  ) {
    this.prng = new Prng(seed, 2, self);
    this.control_actions = rebuild === null ? ["poweroff", "pause", "resume"] : ["poweroff", "restart", "pause", "resume"];
  }

  runSlice(request: SliceRequest): SliceResult {
    if (this.powered_off || this.paused) throw new Error(`node ${this.self}: slice while ${this.powered_off ? "powered off" : "paused"}`);
    this.outputs = [];
    if (!this.started) this.startAt(request.start_ns);
    const deliveries = request.deliveries;
    const end_ns = request.end_ns;
    let next = 0;
    while (!this.exited) {
      const frame_ns = next < deliveries.length ? deliveries[next]!.t_ns : VIRTUAL_NS_NEVER;
      const timer_ns = this.timers.peekTime(VIRTUAL_NS_NEVER);
      if (timer_ns <= frame_ns && timer_ns < end_ns) {
        const timer = this.timers.pop()!;
        // Only after a pause is a timer due before the slice start: it fires at the resume.
        this.now_ns = Math.max(timer.t_ns, request.start_ns);
        this.protocol.onTimer(this, timer.timer_id);
      } else if (frame_ns < end_ns) {
        const delivery = deliveries[next++]!;
        this.now_ns = delivery.t_ns;
        this.protocol.onFrame(this, delivery.bytes, delivery);
      } else {
        break;
      }
    }
    if (this.exited) return { end_ns: this.now_ns, wake_ns: VIRTUAL_NS_NEVER, outputs: this.outputs, deliveries_taken: next };
    this.now_ns = end_ns;
    return { end_ns, wake_ns: this.timers.peekTime(VIRTUAL_NS_NEVER), outputs: this.outputs };
  }

  /** runSlice on the engine's batch path: the same events in the same order, outputs into `out`. */
  runSliceBatch(slice: SliceBounds, deliveries: DeliveryBatch, out: OutputBatch): BatchSliceResult {
    const start_ns = slice.start_ns;
    const end_ns = slice.end_ns;
    if (this.powered_off || this.paused) throw new Error(`node ${this.self}: slice while ${this.powered_off ? "powered off" : "paused"}`);
    this.out = out;
    try {
      if (!this.started) this.startAt(start_ns);
      const count = deliveries.count;
      const times = deliveries.t_ns;
      const d = this.delivery;
      d.batch = deliveries;
      const protocol = this.protocol;
      let next = 0;
      while (!this.exited) {
        const frame_ns = next < count ? times[next]! : VIRTUAL_NS_NEVER;
        const timer_ns = this.timers.peekTime(VIRTUAL_NS_NEVER);
        if (timer_ns <= frame_ns && timer_ns < end_ns) {
          const timer = this.timers.pop()!;
          this.now_ns = Math.max(timer.t_ns, start_ns);
          this.protocol.onTimer(this, timer.timer_id);
        } else if (frame_ns < end_ns) {
          d.k = next;
          this.now_ns = frame_ns;
          if (protocol.onFrameIn !== undefined) protocol.onFrameIn(this, deliveries.bufferOf(next), deliveries.offsetOf(next), deliveries.length[next]!, d);
          else protocol.onFrame(this, deliveries.frame(next), d);
          next++;
        } else {
          break;
        }
      }
      const result = this.batch_result;
      if (this.exited) {
        result.end_ns = this.now_ns;
        result.wake_ns = VIRTUAL_NS_NEVER;
        result.deliveries_taken = next;
      } else {
        this.now_ns = end_ns;
        result.end_ns = end_ns;
        result.wake_ns = this.timers.peekTime(VIRTUAL_NS_NEVER);
        result.deliveries_taken = count;
      }
      return result;
    } finally {
      this.out = null;
    }
  }

  control(c: NodeControl): void {
    if (!(c.t_ns >= this.now_ns)) throw new RangeError(`node ${this.self}: ${c.action} at ${c.t_ns} is before now (${this.now_ns})`);
    if (c.action === "poweroff") {
      if (this.powered_off || this.paused) throw new Error(`node ${this.self}: poweroff while ${this.powered_off ? "off" : "paused"}`);
      this.powered_off = true;
      this.timers.drain();
    } else if (c.action === "pause") {
      if (this.powered_off || this.paused) throw new Error(`node ${this.self}: pause while ${this.powered_off ? "off" : "paused"}`);
      this.paused = true;
    } else if (c.action === "resume") {
      if (!this.paused) throw new Error(`node ${this.self}: resume while not paused`);
      this.paused = false;
    } else if (this.rebuild !== null) {
      // A cold boot: a new protocol node, no timers, started by its next slice (lifecycle boot).
      if (!this.powered_off) throw new Error(`node ${this.self}: restart while not powered off`);
      this.powered_off = false;
      this.protocol = this.rebuild();
      this.started = false;
    } else {
      throw new Error(`node ${this.self}: in-process nodes cannot ${c.action}`);
    }
    this.now_ns = c.t_ns;
  }

  send(frame: Uint8Array): void {
    if (this.out !== null) this.out.emit(this.now_ns, frame);
    else this.outputs.push({ kind: "emit", t_ns: this.now_ns, bytes: frame.slice() });
  }

  setTimer(at_ns: number, timer_id: number): void {
    if (!(Number.isSafeInteger(at_ns) && at_ns >= this.now_ns)) {
      throw new RangeError(`node ${this.self}: timer at ${at_ns} is before now (${this.now_ns})`);
    }
    this.timers.push({ t_ns: at_ns, kind: TIMER_KIND, seq: this.timer_seq++, timer_id });
  }

  mark(text: string): void {
    if (this.out !== null) this.out.mark(this.now_ns, text);
    else this.outputs.push({ kind: "mark", t_ns: this.now_ns, text });
  }

  exit(detail: string): void {
    this.exited = true;
    if (this.out !== null) this.out.lifecycle(this.now_ns, "exit", detail);
    else this.outputs.push({ kind: "lifecycle", t_ns: this.now_ns, event: "exit", detail });
  }

  private startAt(t_ns: number): void {
    this.started = true;
    this.now_ns = t_ns;
    if (this.out !== null) this.out.lifecycle(t_ns, "boot", "in-process");
    else this.outputs.push({ kind: "lifecycle", t_ns, event: "boot", detail: "in-process" });
    this.protocol.start(this);
  }
}
