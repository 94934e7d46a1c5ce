// Frames in flight towards one node, popped in (delivery time, routing sequence) order.
// Each link delivers in FIFO order (engine/link.ts guarantees it), so the inbox is a merge of
// per-link FIFOs with a heap over the links' head frames: O(1) push, O(log links) pop,
// instead of one heap over every frame in flight.

import FastPriorityQueue from "fastpriorityqueue";
import type { Delivery } from "./backend.js";

export interface InboxEntry extends Delivery {
  readonly seq: number;
}

class LinkFifo {
  entries: InboxEntry[] = [];
  head = 0;
  /** Key of the head entry, cached for the heap's comparator. */
  head_t_ns = 0;
  head_seq = 0;

  get empty(): boolean {
    return this.head === this.entries.length;
  }

  append(entry: InboxEntry): void {
    if (this.empty) {
      this.head_t_ns = entry.t_ns;
      this.head_seq = entry.seq;
    }
    this.entries.push(entry);
  }

  shift(): InboxEntry {
    const e = this.entries[this.head++]!;
    if (this.head === this.entries.length) {
      this.entries.length = 0;
      this.head = 0;
      return e;
    }
    if (this.head >= 4096 && this.head * 2 >= this.entries.length) {
      this.entries = this.entries.slice(this.head); // keep memory bounded by what is in flight
      this.head = 0;
    }
    const next = this.entries[this.head]!;
    this.head_t_ns = next.t_ns;
    this.head_seq = next.seq;
    return e;
  }
}

function headBefore(a: LinkFifo, b: LinkFifo): boolean {
  return a.head_t_ns < b.head_t_ns || (a.head_t_ns === b.head_t_ns && a.head_seq < b.head_seq);
}

export class Inbox {
  private readonly fifos: LinkFifo[];
  private readonly heads = new FastPriorityQueue<LinkFifo>(headBefore);
  size = 0;

  constructor(
    node_count: number,
    private readonly frames_max: number,
  ) {
    this.fifos = Array.from({ length: node_count }, () => new LinkFifo());
  }

  /** `entry` must not be earlier than the last frame pushed from the same sender. */
  push(entry: InboxEntry): void {
    if (this.size >= this.frames_max) throw new RangeError(`inbox full (${this.frames_max} frames in flight to one node)`);
    const fifo = this.fifos[entry.from]!;
    const was_empty = fifo.empty;
    if (!was_empty) {
      const last = fifo.entries[fifo.entries.length - 1]!;
      if (!(entry.t_ns >= last.t_ns && entry.seq > last.seq)) throw new Error(`link from ${entry.from} would reorder frames`);
    }
    fifo.append(entry);
    this.size += 1;
    if (was_empty) this.heads.add(fifo);
  }

  peekTime(empty_ns: number): number {
    const top = this.heads.peek();
    return top === undefined ? empty_ns : top.head_t_ns;
  }

  pop(): InboxEntry | undefined {
    const top = this.heads.peek();
    if (top === undefined) return undefined;
    const entry = top.shift();
    this.size -= 1;
    if (top.empty) this.heads.poll();
    else this.heads.replaceTop(top); // its key grew: sift it down
    return entry;
  }

  drain(): InboxEntry[] {
    const out: InboxEntry[] = [];
    for (let e = this.pop(); e !== undefined; e = this.pop()) out.push(e);
    return out;
  }

  /** Every entry in pop order, without removing any (for inspection). */
  snapshot(): InboxEntry[] {
    const all = this.fifos.flatMap((f) => f.entries.slice(f.head));
    return all.sort((a, b) => a.t_ns - b.t_ns || a.seq - b.seq);
  }
}
