// What happens to a frame on one directed link: loss, then (with a bandwidth) a FIFO
// transmit queue with serialisation delay and tail drop, then propagation delay with
// jitter. Links never reorder: a frame is delivered no earlier than the one before it.
// Scheduled network changes (engine/faults.ts) are steps the link walks as its sender's
// clock passes them: a frame sent at s sees the values in effect at s; frames already on
// the wire keep theirs.

import type { LinkStep } from "./faults.js";
import { Prng } from "./prng.js";
import type { Link } from "./topology.js";
import type { DropReason } from "./trace_records.js";
import { VIRTUAL_NS_NEVER } from "./units.js";

/** Linux's default txqueuelen: the queue bound used when a link has a bandwidth but no limit. */
export const QUEUE_PACKETS_DEFAULT = 1000;
const U32_RANGE = 4294967296;
const NO_STEPS: readonly LinkStep[] = [];

export type TransmitResult = number | DropReason;

export interface LinkBacklog {
  packets: number;
  bytes: number;
  /** When the transmitter is free again (0: never used). */
  tx_free_ns: number;
  /** Latest delivery time handed out: a later frame is never delivered before it (no reordering). */
  last_delivery_ns: number;
  /** A scheduled change has taken the link down (as of the last frame sent on it). */
  down: boolean;
}

export class LinkState {
  /** The values in effect for the last frame sent (they change at scheduled steps). */
  link: Link;
  private down = false;
  private readonly prng: Prng | null;
  private loss_threshold_u32: number;
  /** Tail-drop bound on frames queued now (0: no queue, the link has no bandwidth). */
  private queue_packets_max: number;
  /** Ring buffer size: the largest queue bound the link ever has. */
  private readonly queue_capacity: number;
  /** Completion times and sizes of frames queued or in service, oldest first (ring buffer). */
  private readonly queue_done_ns: Float64Array;
  private readonly queue_bytes: Uint32Array;
  private queue_head = 0;
  private queue_len = 0;
  private queue_bytes_total = 0;
  private tx_free_ns = 0;
  private last_delivery_ns = 0;
  private last_sent_ns = 0;
  private readonly steps: readonly LinkStep[];
  private step_next = 0;
  /** When the next step applies (never without steps: one comparison on the per-frame path). */
  private step_next_ns: number;

  constructor(link: Link, seed: number, steps: readonly LinkStep[] = NO_STEPS) {
    for (let k = 1; k < steps.length; k++) if (!(steps[k]!.t_ns >= steps[k - 1]!.t_ns)) throw new RangeError("link steps out of time order");
    const all = [link, ...steps.map((s) => s.link)];
    this.link = link;
    this.steps = steps;
    this.step_next_ns = steps.length > 0 ? steps[0]!.t_ns : VIRTUAL_NS_NEVER;
    // One stream for the link's whole life, whatever its values: a change never shifts the
    // draws of another link.
    const random = all.some((l) => l.loss_rate > 0 || l.jitter_ns > 0);
    this.prng = random ? new Prng(seed, 1, link.to, link.from) : null;
    this.loss_threshold_u32 = lossThreshold(link);
    this.queue_packets_max = queuePacketsMax(link);
    this.queue_capacity = Math.max(...all.map(queuePacketsMax));
    this.queue_done_ns = new Float64Array(this.queue_capacity);
    this.queue_bytes = new Uint32Array(this.queue_capacity);
  }

  /** Delivery time of a frame of `length` bytes sent at `sent_ns`, or why it was dropped. */
  transmit(sent_ns: number, length: number): TransmitResult {
    // A link's frames all come from one node, in its time order: the steps rely on it.
    if (!(sent_ns >= this.last_sent_ns)) throw new Error(`link to ${this.link.to} from ${this.link.from}: frame sent at ${sent_ns} after one at ${this.last_sent_ns}`);
    this.last_sent_ns = sent_ns;
    if (sent_ns >= this.step_next_ns) this.stepTo(sent_ns);
    if (this.down) return "link_down";
    const link = this.link;
    if (this.loss_threshold_u32 > 0 && this.prng!.nextU32() < this.loss_threshold_u32) return "loss";
    let departed_ns = sent_ns;
    if (link.bandwidth_bps > 0) {
      const done = this.enqueue(sent_ns, length);
      if (done < 0) return "queue_full";
      departed_ns = done;
    }
    let delay_ns = link.latency_ns as number;
    if (link.jitter_ns > 0) delay_ns += this.prng!.nextBelow(2 * link.jitter_ns + 1) - link.jitter_ns;
    const delivery_ns = Math.max(departed_ns + delay_ns, this.last_delivery_ns);
    this.last_delivery_ns = delivery_ns;
    return delivery_ns;
  }

  /** Applies every step due by `sent_ns`, in order (the last one at a time wins). */
  private stepTo(sent_ns: number): void {
    while (this.step_next < this.steps.length && this.steps[this.step_next]!.t_ns <= sent_ns) {
      const step = this.steps[this.step_next++]!;
      this.link = step.link;
      this.down = step.down;
      this.loss_threshold_u32 = lossThreshold(step.link);
      this.queue_packets_max = queuePacketsMax(step.link);
    }
    this.step_next_ns = this.step_next < this.steps.length ? this.steps[this.step_next]!.t_ns : VIRTUAL_NS_NEVER;
  }

  /** Time the last bit leaves the sender, or -1 when the queue is full. */
  private enqueue(sent_ns: number, length: number): number {
    this.retireSentBy(sent_ns);
    const bytes_max = this.link.queue_bytes_max;
    if (this.queue_len >= this.queue_packets_max) return -1;
    if (bytes_max > 0 && this.queue_bytes_total + length > bytes_max) return -1;
    const serialisation_ns = Math.ceil((length * 8 * 1e9) / this.link.bandwidth_bps);
    const done_ns = Math.max(sent_ns, this.tx_free_ns) + serialisation_ns;
    this.tx_free_ns = done_ns;
    const slot = (this.queue_head + this.queue_len) % this.queue_capacity;
    this.queue_done_ns[slot] = done_ns;
    this.queue_bytes[slot] = length;
    this.queue_len += 1;
    this.queue_bytes_total += length;
    return done_ns;
  }

  /** Transmit queue at `now_ns` without changing it (for the debugger): frames not yet fully sent, their bytes, when the link frees up. */
  backlog(now_ns: number): LinkBacklog {
    let packets = 0;
    let bytes = 0;
    for (let k = 0; k < this.queue_len; k++) {
      const slot = (this.queue_head + k) % this.queue_capacity;
      if (this.queue_done_ns[slot]! <= now_ns) continue;
      packets += 1;
      bytes += this.queue_bytes[slot]!;
    }
    return { packets, bytes, tx_free_ns: this.tx_free_ns, last_delivery_ns: this.last_delivery_ns, down: this.down };
  }

  private retireSentBy(now_ns: number): void {
    while (this.queue_len > 0 && this.queue_done_ns[this.queue_head]! <= now_ns) {
      this.queue_bytes_total -= this.queue_bytes[this.queue_head]!;
      this.queue_head = (this.queue_head + 1) % this.queue_capacity;
      this.queue_len -= 1;
    }
  }
}

function lossThreshold(link: Link): number {
  return Math.round(link.loss_rate * U32_RANGE);
}

function queuePacketsMax(link: Link): number {
  return link.bandwidth_bps > 0 ? link.queue_packets_max || QUEUE_PACKETS_DEFAULT : 0;
}
