// A node that lives outside the simulator on wall-clock time — a network namespace, the
// host, or a QEMU/KVM VM without the slice gate — joined to the simulated network through a
// TAP device. Such a node cannot be paused, so the run is paced by the wall clock: virtual
// time t is wall time (monotonic) since the run started. A slice ends at
// min(requested end, now), at least SLICE_GRAIN_NS after its start, so every such node
// advances in small steps as wall time passes and the engine hands each one its frames
// within about a grain of their due time; they are then written into the TAP at exactly
// their due wall time by a timer. Frames read from the TAP are stamped with the host clock
// at read and mapped to virtual time (the reference simulator's approach): accurate to the
// host's scheduling jitter, not to the nanosecond, and recorded as inputs, so the trace
// still replays identically.

import type { NodeBackend, SliceOutput, SliceRequest, SliceResult } from "../../engine/backend.js";
import type { NodeId } from "../../engine/units.js";
import { monotonicNs, type TapDevice } from "./tapio.js";

/** Smallest step of a wall-clock node: bounds the engine's slices per second per node. */
export const SLICE_GRAIN_NS = 1_000_000;
/** Frames read and not yet handed to the engine, or scheduled and not yet written. */
const QUEUED_FRAMES_MAX = 100_000;

/** The run's wall clock: virtual 0 is the moment start() was called. */
export class RealtimeClock {
  private origin_ns = -1;

  start(): void {
    if (this.origin_ns < 0) this.origin_ns = monotonicNs();
  }

  /** Virtual time of host monotonic instant `host_ns`. */
  toVirtual(host_ns: number): number {
    if (this.origin_ns < 0) throw new Error("RealtimeClock used before start()");
    return Math.max(0, Math.round(host_ns - this.origin_ns));
  }

  now(): number {
    return this.toVirtual(monotonicNs());
  }
}

interface ReadFrame {
  readonly t_ns: number;
  readonly bytes: Uint8Array;
}

export class TapBackend implements NodeBackend {
  readonly kind = "tap" as const;
  private readonly read_queue: ReadFrame[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private booted = false;
  private closed = false;
  private reader: Promise<void> | null = null;

  constructor(
    readonly node: NodeId,
    readonly tap: TapDevice,
    private readonly clock: RealtimeClock,
  ) {}

  async runSlice(request: SliceRequest): Promise<SliceResult> {
    const outputs: SliceOutput[] = [];
    if (!this.booted) {
      this.booted = true;
      this.reader = this.readLoop();
      outputs.push({ kind: "lifecycle", t_ns: request.start_ns, event: "boot", detail: `tap ${this.tap.name}` });
    }
    for (const d of request.deliveries) this.scheduleWrite(d.t_ns, d.bytes);
    const target_ns = Math.min(request.end_ns, request.start_ns + SLICE_GRAIN_NS);
    const wait_ns = target_ns - this.clock.now();
    if (wait_ns > 0) await sleepNs(wait_ns);
    const end_ns = Math.min(request.end_ns, Math.max(target_ns, this.clock.now()));
    while (this.read_queue.length > 0 && this.read_queue[0]!.t_ns < end_ns) {
      const f = this.read_queue.shift()!;
      // Read before this slice began (the engine was busy elsewhere): it left at the start.
      outputs.push({ kind: "emit", t_ns: Math.max(request.start_ns, f.t_ns), bytes: f.bytes });
    }
    return { end_ns, wake_ns: end_ns, outputs };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.tap.close(); // wakes the reader, which then ends
    await this.reader;
  }

  /** Drains the TAP whenever it is readable; stamps each frame with its host read time. */
  private async readLoop(): Promise<void> {
    for (let round = 0; !this.closed && round < Number.MAX_SAFE_INTEGER; round++) {
      const batch = this.tap.readBatch();
      let off = 0;
      for (let i = 0; i < batch.count; i++) {
        const len = batch.lens[i]!;
        if (this.read_queue.length < QUEUED_FRAMES_MAX) this.read_queue.push({ t_ns: this.clock.toVirtual(batch.stamps_ns[i]!), bytes: batch.bytes.slice(off, off + len) });
        off += len;
      }
      if (batch.count === 0 && !this.closed) await this.tap.waitReadable(-1);
    }
  }

  /** Writes the frame at its due wall time, never before (timers may fire early: re-arm). */
  private scheduleWrite(t_ns: number, bytes: Uint8Array): void {
    if (this.closed) return;
    const early_ns = t_ns - this.clock.now();
    if (early_ns <= 0) {
      this.tap.writeBatch([bytes]);
      return;
    }
    if (this.timers.size >= QUEUED_FRAMES_MAX) return; // the node cannot keep up: drop, like a full NIC queue
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.scheduleWrite(t_ns, bytes);
    }, Math.ceil(early_ns / 1e6));
    this.timers.add(timer);
  }
}

function sleepNs(ns: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ns / 1e6)));
}
