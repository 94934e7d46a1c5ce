// Frames in flight, and per receiving node the order they arrive in.
//
// In-flight frames live in one struct-of-arrays pool (no object per frame: they survive long
// enough to be promoted, and collecting them dominated the profile). Each link delivers in
// FIFO order (engine/link.ts guarantees it), so a node's inbox is a merge of per-link FIFOs
// (linked through the pool) with a heap over the links' head frames, ordered by
// (delivery time, routing sequence): O(1) push, O(log links) pop.

import FastPriorityQueue from "fastpriorityqueue";

const NONE = -1;

export class FramePool {
  t_ns = new Float64Array(0);
  seq = new Float64Array(0);
  frame_id = new Float64Array(0);
  sent_ns = new Float64Array(0);
  from = new Int32Array(0);
  next = new Int32Array(0);
  bytes: (Uint8Array | null)[] = [];
  private free_head = NONE;
  size = 0;

  constructor(readonly capacity_max: number) {}

  alloc(t_ns: number, seq: number, frame_id: number, from: number, sent_ns: number, bytes: Uint8Array): number {
    if (this.free_head === NONE) this.grow();
    const h = this.free_head;
    this.free_head = this.next[h]!;
    this.t_ns[h] = t_ns;
    this.seq[h] = seq;
    this.frame_id[h] = frame_id;
    this.from[h] = from;
    this.sent_ns[h] = sent_ns;
    this.bytes[h] = bytes;
    this.next[h] = NONE;
    this.size += 1;
    return h;
  }

  release(h: number): void {
    this.bytes[h] = null;
    this.next[h] = this.free_head;
    this.free_head = h;
    this.size -= 1;
  }

  private grow(): void {
    const old = this.t_ns.length;
    if (old >= this.capacity_max) throw new RangeError(`frame pool full (${this.capacity_max})`);
    const cap = Math.min(this.capacity_max, Math.max(1024, old * 2));
    const f64 = (a: Float64Array) => {
      const b = new Float64Array(cap);
      b.set(a);
      return b;
    };
    const i32 = (a: Int32Array) => {
      const b = new Int32Array(cap);
      b.set(a);
      return b;
    };
    this.t_ns = f64(this.t_ns);
    this.seq = f64(this.seq);
    this.frame_id = f64(this.frame_id);
    this.sent_ns = f64(this.sent_ns);
    this.from = i32(this.from);
    this.next = i32(this.next);
    // Ascending pushes keep `bytes` a dense array (writing its last index first would leave
    // holes, and V8 turns a holey array that large into a slow dictionary).
    for (let h = old; h < cap; h++) this.bytes.push(null);
    for (let h = cap - 1; h >= old; h--) {
      this.next[h] = this.free_head;
      this.free_head = h;
    }
  }
}

class LinkFifo {
  head = NONE;
  tail = NONE;
  /** Key of the head frame, cached for the heap's comparator. */
  head_t_ns = 0;
  head_seq = 0;
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
    private readonly pool: FramePool,
  ) {
    this.fifos = Array.from({ length: node_count }, () => new LinkFifo());
  }

  /** Frame `h` must not be due earlier than the last frame pushed from the same sender. */
  push(h: number): void {
    const pool = this.pool;
    const fifo = this.fifos[pool.from[h]!]!;
    if (fifo.head === NONE) {
      fifo.head = h;
      fifo.tail = h;
      fifo.head_t_ns = pool.t_ns[h]!;
      fifo.head_seq = pool.seq[h]!;
      this.heads.add(fifo);
    } else {
      const last = fifo.tail;
      if (!(pool.t_ns[h]! >= pool.t_ns[last]! && pool.seq[h]! > pool.seq[last]!)) throw new Error(`link from ${pool.from[h]} would reorder frames`);
      pool.next[last] = h;
      fifo.tail = h;
    }
    this.size += 1;
  }

  /** Pool handles of the frames waiting, in delivery order (for the debugger: O(size log size), not on the hot path). */
  handles(): number[] {
    const pool = this.pool;
    const out: number[] = [];
    for (const fifo of this.fifos) {
      for (let h = fifo.head, k = 0; h !== NONE && k <= this.size; h = pool.next[h]!, k++) out.push(h);
    }
    return out.sort((a, b) => pool.t_ns[a]! - pool.t_ns[b]! || pool.seq[a]! - pool.seq[b]!);
  }

  peekTime(empty_ns: number): number {
    const top = this.heads.peek();
    return top === undefined ? empty_ns : top.head_t_ns;
  }

  /** Removes the earliest frame and returns its pool handle (the caller releases it), or -1. */
  pop(): number {
    const top = this.heads.peek();
    if (top === undefined) return NONE;
    const pool = this.pool;
    const h = top.head;
    const next = pool.next[h]!;
    this.size -= 1;
    if (next === NONE) {
      top.head = NONE;
      top.tail = NONE;
      this.heads.poll();
    } else {
      top.head = next;
      top.head_t_ns = pool.t_ns[next]!;
      top.head_seq = pool.seq[next]!;
      this.heads.replaceTop(top); // its key grew: sift it down
    }
    return h;
  }
}
