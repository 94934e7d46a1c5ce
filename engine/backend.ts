// The contract between the engine and whatever runs a node: an in-process protocol state
// machine, a QEMU VM behind a slice gate, or a replay of recorded inputs. The engine only
// ever asks "run node N over [start, end) with these frames delivered at these times" and
// gets back what the node did; it never knows what a node is.

import type { NodeId } from "./units.js";
import type { CommandEvent, LifecycleEvent, NodeFault } from "./trace_records.js";

export interface Delivery {
  /** Virtual time at which the frame reaches the node's NIC. */
  readonly t_ns: number;
  readonly frame_id: number;
  readonly from: NodeId;
  readonly sent_ns: number;
  /** The frame (a view of the engine's buffers: valid until the slice's result is returned; copy to keep). */
  readonly bytes: Uint8Array;
}

/**
 * What beginSlice returns: calling it collects the slice's result (blocking, or as a Promise).
 * A collector that can also say when it is done (`finish`) lets the pipelined schedule collect
 * a set's slices in the order they finish, so that each node's next slice can begin as soon
 * as its own is done instead of after every slice before it in the set; the records keep the
 * set's order.
 */
export interface SliceCollector {
  (): SliceResult | Promise<SliceResult>;
  /** Present only when collecting is blocking (never a Promise). */
  readonly finish?: FinishSignal;
}

/** How a begun slice signals that it is done: a key among those its waiter watches. */
export interface FinishSignal {
  /** For the VM backend, the gate socket's fd. */
  readonly key: number;
  /** Blocks until one of `keys` is done (readable, or gone) and returns its index; the same waiter for every collector of a kind. */
  readonly waiter: FinishWaiter;
}

export interface FinishWaiter {
  waitAny(keys: Int32Array, count: number): number;
}

export interface SliceRequest {
  readonly node: NodeId;
  readonly start_ns: number;
  readonly end_ns: number;
  /** Sorted by (t_ns, arrival order); every t_ns in [start_ns, end_ns). */
  readonly deliveries: readonly Delivery[];
}

export type SliceOutput =
  | { readonly kind: "emit"; readonly t_ns: number; readonly bytes: Uint8Array }
  | { readonly kind: "mark"; readonly t_ns: number; readonly text: string }
  | { readonly kind: "lifecycle"; readonly t_ns: number; readonly event: LifecycleEvent; readonly detail: string }
  /** Console output of a VM guest (what it printed up to t). */
  | { readonly kind: "guest_output"; readonly t_ns: number; readonly text: string }
  /** Management frames: host -> guest (injected at t) and guest -> host (sent at t). Never on simulated links. */
  | { readonly kind: "mgmt_in"; readonly t_ns: number; readonly bytes: Uint8Array }
  | { readonly kind: "mgmt_out"; readonly t_ns: number; readonly bytes: Uint8Array }
  /** A scenario command started or exited in the node (a VM's guest agent said so). */
  | { readonly kind: "command"; readonly t_ns: number; readonly event: CommandEvent; readonly id: string; readonly detail: string };

export interface SliceResult {
  /** Where the node stopped: the requested end, or earlier if it exited or crashed. */
  readonly end_ns: number;
  /** When the node will next act on its own (timer, VM: always end_ns); VIRTUAL_NS_NEVER if not. */
  readonly wake_ns: number;
  /** What the node did, in nondecreasing virtual time within [start_ns, end_ns]. */
  readonly outputs: readonly SliceOutput[];
  /** How many of the request's deliveries reached the node (a prefix); default all. Fewer only if it exited. */
  readonly deliveries_taken?: number;
}

/** A scheduled node fault (RunConfig.faults), handed to the backend when the node's clock is exactly t_ns. */
export interface NodeControl {
  readonly t_ns: number;
  readonly action: NodeFault["action"];
}

/**
 * A slice's deliveries as typed arrays (the batch path, entries [0, count)), sorted like
 * SliceRequest.deliveries. Valid until runSliceBatch returns.
 */
export interface DeliveryBatch {
  readonly count: number;
  readonly t_ns: Float64Array;
  readonly frame_id: Float64Array;
  readonly from: Int32Array;
  readonly sent_ns: Float64Array;
  readonly length: Int32Array;
  /** Frame k's bytes: a view, valid until runSliceBatch returns. */
  frame(k: number): Uint8Array;
  /** The engine buffer holding frame k (at offsetOf(k), length[k] bytes), without making a view; same validity. */
  bufferOf(k: number): Uint8Array;
  offsetOf(k: number): number;
}

/** Where a batch-path backend puts what its node did, in nondecreasing time (as SliceResult.outputs). */
export interface OutputBatch {
  /** Copies the frame in: the caller may reuse its buffer. */
  emit(t_ns: number, frame: Uint8Array): void;
  mark(t_ns: number, text: string): void;
  lifecycle(t_ns: number, event: LifecycleEvent, detail: string): void;
}

/**
 * The slice a batch-path backend runs: node `node`, [start_ns, end_ns); valid during the call.
 * An object, not three arguments: a time passed to a call that is not inlined is boxed (a heap
 * number per slice).
 */
export interface SliceBounds {
  readonly node: NodeId;
  readonly start_ns: number;
  readonly end_ns: number;
}

/** runSliceBatch's result: as SliceResult, the outputs being in the OutputBatch. Read before the next call: a backend may refill one object. */
export interface BatchSliceResult {
  readonly end_ns: number;
  readonly wake_ns: number;
  readonly deliveries_taken: number;
}

export interface NodeBackend {
  readonly kind: "inprocess" | "vm" | "tap" | "replay";
  runSlice(request: SliceRequest): SliceResult | Promise<SliceResult>;
  /**
   * The batch path (in-process nodes): same contract as runSlice, synchronous, with the
   * deliveries and outputs as typed arrays and frames in engine-owned buffers, so that a
   * frame costs no object that outlives its slice. The engine uses it when present.
   */
  runSliceBatch?(slice: SliceBounds, deliveries: DeliveryBatch, out: OutputBatch): BatchSliceResult;
  /**
   * Concurrent slices (RunConfig.parallel): hands the node its slice and returns without
   * waiting for it to run (a VM: the RUN message is on its way); calling the returned
   * function collects the result (blocking, or as a Promise). The engine begins every slice
   * of a grant set whose backend has this, then collects them in its fixed order. Absent:
   * the slice runs through runSlice at its turn in that order. The request's frame views
   * are valid only until beginSlice returns: under the pipelined schedule the slice is
   * collected a step later, after the engine has reused the arena (the VM backend encodes
   * its RUN message at once).
   */
  beginSlice?(request: SliceRequest): SliceCollector;
  /** Applies a node fault between slices (absent: the node kind has no such fault; the engine refuses the plan up front). */
  control?(c: NodeControl): void | Promise<void>;
  /** The node faults `control` can apply (absent: all of them); the engine refuses others up front. */
  readonly control_actions?: readonly NodeControl["action"][];
  close?(): void | Promise<void>;
}

/** Bounds that keep one slice's work finite whatever a backend does. */
export const SLICE_OUTPUTS_MAX = 1_000_000;
