// The batch path between the engine and in-process backends (NodeBackend.runSliceBatch):
// one slice's deliveries and outputs as typed arrays the engine owns and reuses, frames in
// its FrameArena. No object per delivery or output survives the slice, so the garbage a
// frame leaves is only short-lived views.

import type { DeliveryBatch, OutputBatch } from "./backend.js";
import { SLICE_OUTPUTS_MAX } from "./backend.js";
import { SliceResultError } from "./errors.js";
import type { FrameArena } from "./net/frame_arena.js";
import type { LifecycleEvent } from "./trace_records.js";
import { VIRTUAL_NS_NEVER } from "./units.js";

export const OUT_EMIT = 0;
export const OUT_MARK = 1;
export const OUT_LIFECYCLE = 2;

export class SliceBatch implements DeliveryBatch, OutputBatch {
  // Deliveries, [0, count).
  count = 0;
  t_ns = new Float64Array(256);
  frame_id = new Float64Array(256);
  from = new Int32Array(256);
  sent_ns = new Float64Array(256);
  /** Arena locations (int32: see ARENA_CHUNKS_MAX). */
  loc = new Int32Array(256);
  length = new Int32Array(256);
  // Outputs, [0, out_count).
  out_count = 0;
  out_kind = new Uint8Array(256);
  out_t_ns = new Float64Array(256);
  out_loc = new Int32Array(256);
  out_length = new Int32Array(256);
  /** Mark text, lifecycle detail (null for frames). */
  out_text: (string | null)[] = [];
  out_event: (LifecycleEvent | null)[] = [];

  constructor(private readonly arena: FrameArena) {}

  // The slice being filled, for checking outputs as they arrive (doubles from the start: see
  // GrantSlot in scheduler.ts).
  private node = 0;
  private start_ns: number = VIRTUAL_NS_NEVER;
  private end_ns: number = VIRTUAL_NS_NEVER;

  /** Empties both sides for node's slice [start_ns, end_ns). */
  reset(node: number, start_ns: number, end_ns: number): void {
    this.count = 0;
    this.out_count = 0;
    this.node = node;
    this.start_ns = start_ns;
    this.end_ns = end_ns;
  }

  /** Time of the last output (the latest: outputs are checked to be in order), or -1 when none. */
  lastOutputNs(): number {
    return this.out_count === 0 ? -1 : this.out_t_ns[this.out_count - 1]!;
  }

  addDelivery(t_ns: number, frame_id: number, from: number, sent_ns: number, loc: number, length: number): void {
    const k = this.count;
    if (k === this.t_ns.length) this.growDeliveries();
    this.t_ns[k] = t_ns;
    this.frame_id[k] = frame_id;
    this.from[k] = from;
    this.sent_ns[k] = sent_ns;
    this.loc[k] = loc;
    this.length[k] = length;
    this.count = k + 1;
  }

  frame(k: number): Uint8Array {
    return this.arena.view(this.loc[k]!, this.length[k]!);
  }

  bufferOf(k: number): Uint8Array {
    return this.arena.chunkOf(this.loc[k]!);
  }

  offsetOf(k: number): number {
    return this.arena.offsetOf(this.loc[k]!);
  }

  emit(t_ns: number, frame: Uint8Array): void {
    const k = this.addOutput(OUT_EMIT, t_ns);
    this.out_loc[k] = this.arena.put(frame);
    this.out_length[k] = frame.length;
  }

  mark(t_ns: number, text: string): void {
    this.setText(this.addOutput(OUT_MARK, t_ns), text, null);
  }

  lifecycle(t_ns: number, event: LifecycleEvent, detail: string): void {
    this.setText(this.addOutput(OUT_LIFECYCLE, t_ns), detail, event);
  }

  private setText(k: number, text: string, event: LifecycleEvent | null): void {
    while (this.out_text.length <= k) {
      this.out_text.push(null);
      this.out_event.push(null);
    }
    this.out_text[k] = text;
    this.out_event[k] = event;
  }

  private addOutput(kind: number, t_ns: number): number {
    const k = this.out_count;
    // Checked as they arrive, against the slice granted (the engine checks the last one against
    // where the slice ended): no second pass over the outputs per slice.
    const last_ns = k === 0 ? this.start_ns : this.out_t_ns[k - 1]!;
    if (!(t_ns >= last_ns && t_ns <= this.end_ns)) outputOutOfOrder(this.node, this.start_ns, this.end_ns, t_ns);
    // The same bound as SliceResult.outputs (checked there after the fact; here before memory runs out).
    if (k >= SLICE_OUTPUTS_MAX) throw new RangeError(`more than ${SLICE_OUTPUTS_MAX} outputs in one slice`);
    if (k === this.out_kind.length) this.growOutputs();
    this.out_kind[k] = kind;
    this.out_t_ns[k] = t_ns;
    this.out_count = k + 1;
    return k;
  }

  private growDeliveries(): void {
    const cap = this.t_ns.length * 2;
    this.t_ns = grow(this.t_ns, new Float64Array(cap));
    this.frame_id = grow(this.frame_id, new Float64Array(cap));
    this.from = grow(this.from, new Int32Array(cap));
    this.sent_ns = grow(this.sent_ns, new Float64Array(cap));
    this.loc = grow(this.loc, new Int32Array(cap));
    this.length = grow(this.length, new Int32Array(cap));
  }

  private growOutputs(): void {
    const cap = this.out_kind.length * 2;
    this.out_kind = grow(this.out_kind, new Uint8Array(cap));
    this.out_t_ns = grow(this.out_t_ns, new Float64Array(cap));
    this.out_loc = grow(this.out_loc, new Int32Array(cap));
    this.out_length = grow(this.out_length, new Int32Array(cap));
  }
}

function grow<T extends Float64Array | Int32Array | Uint8Array>(old: T, next: T): T {
  next.set(old as never);
  return next;
}

/** Out of line: the message is built only on error. Same text as the engine's checkSliceResult. */
function outputOutOfOrder(node: number, start_ns: number, end_ns: number, t_ns: number): never {
  throw new SliceResultError(`node ${node} slice [${start_ns}, ${end_ns}): output at ${t_ns} out of order or outside the slice`);
}
