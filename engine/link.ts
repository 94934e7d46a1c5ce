// What happens to a frame on one directed link: loss, then (with a bandwidth) a FIFO
// transmit queue with serialisation delay and tail drop, then propagation delay with
// jitter. Links never reorder: a frame is delivered no earlier than the one before it.

import { Prng } from "./prng.js";
import type { Link } from "./topology.js";
import type { DropReason } from "./trace_records.js";

/** Linux's default txqueuelen: the queue bound used when a link has a bandwidth but no limit. */
export const QUEUE_PACKETS_DEFAULT = 1000;
const U32_RANGE = 4294967296;

export type TransmitResult = number | DropReason;

export interface LinkBacklog {
  packets: number;
  bytes: number;
  /** When the transmitter is free again (0: never used). */
  tx_free_ns: number;
  /** Latest delivery time handed out: a later frame is never delivered before it (no reordering). */
  last_delivery_ns: number;
}

export class LinkState {
  readonly link: Link;
  private readonly prng: Prng | null;
  private readonly loss_threshold_u32: number;
  private readonly queue_packets_max: number;
  /** Completion times and sizes of frames queued or in service, oldest first (ring buffer). */
  private readonly queue_done_ns: Float64Array;
  private readonly queue_bytes: Uint32Array;
  private queue_head = 0;
  private queue_len = 0;
  private queue_bytes_total = 0;
  private tx_free_ns = 0;
  private last_delivery_ns = 0;

  constructor(link: Link, seed: number) {
    this.link = link;
    const random = link.loss_rate > 0 || link.jitter_ns > 0;
    this.prng = random ? new Prng(seed, 1, link.to, link.from) : null;
    this.loss_threshold_u32 = Math.round(link.loss_rate * U32_RANGE);
    this.queue_packets_max = link.bandwidth_bps > 0 ? link.queue_packets_max || QUEUE_PACKETS_DEFAULT : 0;
    this.queue_done_ns = new Float64Array(this.queue_packets_max);
    this.queue_bytes = new Uint32Array(this.queue_packets_max);
  }

  /** Delivery time of a frame of `length` bytes sent at `sent_ns`, or why it was dropped. */
  transmit(sent_ns: number, length: number): TransmitResult {
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

  /** Time the last bit leaves the sender, or -1 when the queue is full. */
  private enqueue(sent_ns: number, length: number): number {
    this.retireSentBy(sent_ns);
    const bytes_max = this.link.queue_bytes_max;
    if (this.queue_len >= this.queue_packets_max) return -1;
    if (bytes_max > 0 && this.queue_bytes_total + length > bytes_max) return -1;
    const serialisation_ns = Math.ceil((length * 8 * 1e9) / this.link.bandwidth_bps);
    const done_ns = Math.max(sent_ns, this.tx_free_ns) + serialisation_ns;
    this.tx_free_ns = done_ns;
    const slot = (this.queue_head + this.queue_len) % this.queue_packets_max;
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
      const slot = (this.queue_head + k) % this.queue_packets_max;
      if (this.queue_done_ns[slot]! <= now_ns) continue;
      packets += 1;
      bytes += this.queue_bytes[slot]!;
    }
    return { packets, bytes, tx_free_ns: this.tx_free_ns, last_delivery_ns: this.last_delivery_ns };
  }

  private retireSentBy(now_ns: number): void {
    while (this.queue_len > 0 && this.queue_done_ns[this.queue_head]! <= now_ns) {
      this.queue_bytes_total -= this.queue_bytes[this.queue_head]!;
      this.queue_head = (this.queue_head + 1) % this.queue_packets_max;
      this.queue_len -= 1;
    }
  }
}
