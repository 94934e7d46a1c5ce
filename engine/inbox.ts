// Frames in flight, and per receiving node the order they arrive in.
//
// In-flight frames live in one struct-of-arrays pool (no object per frame: they survive long
// enough to be promoted, and collecting them dominated the profile); their bytes are in the
// engine's FrameArena, referred to by location. Each link delivers in FIFO order
// (engine/link.ts guarantees it), so a node's inbox is a merge of per-link FIFOs (linked
// through the pool) with a binary heap over the links' head frames, ordered by (delivery
// time, routing sequence): O(1) push, O(log links) pop. The FIFOs and the heap are typed
// arrays indexed by sender: no object per link (at 1,024 nodes there are a million links).

import { VIRTUAL_NS_NEVER } from "./units.js";

const NONE = -1;

export class FramePool {
  t_ns = new Float64Array(0);
  seq = new Float64Array(0);
  frame_id = new Float64Array(0);
  sent_ns = new Float64Array(0);
  /** Where the frame's bytes are in the engine's FrameArena (an int32 location), and how many. */
  loc = new Int32Array(0);
  length = new Int32Array(0);
  from = new Int32Array(0);
  next = new Int32Array(0);
  private free_head = NONE;
  size = 0;

  constructor(readonly capacity_max: number) {}

  alloc(t_ns: number, seq: number, frame_id: number, from: number, sent_ns: number, loc: number, length: number): number {
    if (this.free_head === NONE) this.grow();
    const h = this.free_head;
    this.free_head = this.next[h]!;
    this.t_ns[h] = t_ns;
    this.seq[h] = seq;
    this.frame_id[h] = frame_id;
    this.from[h] = from;
    this.sent_ns[h] = sent_ns;
    this.loc[h] = loc;
    this.length[h] = length;
    this.next[h] = NONE;
    this.size += 1;
    return h;
  }

  release(h: number): void {
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
    this.loc = i32(this.loc);
    this.length = i32(this.length);
    this.from = i32(this.from);
    this.next = i32(this.next);
    for (let h = cap - 1; h >= old; h--) {
      this.next[h] = this.free_head;
      this.free_head = h;
    }
  }
}

export class Inbox {
  /** Per sender: first and last frame of its FIFO (pool handles), NONE when empty. */
  private readonly head: Int32Array;
  private readonly tail: Int32Array;
  /**
   * Binary heap of the senders with a non-empty FIFO, by their head frame's (t_ns, seq):
   * sender, and the key copied next to it (the comparisons read no pool entry).
   */
  private readonly heap_from: Int32Array;
  private readonly heap_t_ns: Float64Array;
  private readonly heap_seq: Float64Array;
  private heap_size = 0;
  size = 0;

  constructor(
    node_count: number,
    private readonly pool: FramePool,
  ) {
    this.head = new Int32Array(node_count).fill(NONE);
    this.tail = new Int32Array(node_count).fill(NONE);
    this.heap_from = new Int32Array(node_count);
    this.heap_t_ns = new Float64Array(node_count);
    this.heap_seq = new Float64Array(node_count);
  }

  /** Frame `h` must not be due earlier than the last frame pushed from the same sender. */
  push(h: number): void {
    const pool = this.pool;
    const from = pool.from[h]!;
    const last = this.tail[from]!;
    if (last === NONE) {
      this.head[from] = h;
      this.tail[from] = h;
      this.siftUp(this.heap_size++, from, h);
    } else {
      if (!(pool.t_ns[h]! >= pool.t_ns[last]! && pool.seq[h]! > pool.seq[last]!)) throw new Error(`link from ${from} would reorder frames`);
      pool.next[last] = h;
      this.tail[from] = h;
    }
    this.size += 1;
  }

  /** Pool handles of the frames waiting, in delivery order (for the debugger: O(size log size), not on the hot path). */
  handles(): number[] {
    const pool = this.pool;
    const out: number[] = [];
    for (let s = 0; s < this.head.length; s++) {
      for (let h = this.head[s]!, k = 0; h !== NONE && k <= this.size; h = pool.next[h]!, k++) out.push(h);
    }
    return out.sort((a, b) => pool.t_ns[a]! - pool.t_ns[b]! || pool.seq[a]! - pool.seq[b]!);
  }

  /** Delivery time of the frame the last popBefore() returned (from the heap: no read of the pool). */
  popped_t_ns: number = VIRTUAL_NS_NEVER; // a double from the start: see GrantSlot in scheduler.ts

  /** pop() if the earliest frame is due before end_ns (its time in popped_t_ns), else -1. */
  popBefore(end_ns: number): number {
    if (this.heap_size === 0) return NONE;
    const t_ns = this.heap_t_ns[0]!;
    if (!(t_ns < end_ns)) return NONE;
    this.popped_t_ns = t_ns;
    return this.pop();
  }

  peekTime(empty_ns: number): number {
    return this.heap_size === 0 ? empty_ns : this.heap_t_ns[0]!;
  }

  /** Removes the earliest frame and returns its pool handle (the caller releases it), or -1. */
  pop(): number {
    if (this.heap_size === 0) return NONE;
    const pool = this.pool;
    const from = this.heap_from[0]!;
    const h = this.head[from]!;
    const next = pool.next[h]!;
    this.size -= 1;
    if (next === NONE) {
      this.head[from] = NONE;
      this.tail[from] = NONE;
      const last = --this.heap_size;
      if (last > 0) this.siftDown(0, this.heap_from[last]!, this.heap_t_ns[last]!, this.heap_seq[last]!);
    } else {
      this.head[from] = next;
      this.siftDown(0, from, pool.t_ns[next]!, pool.seq[next]!); // its key grew
    }
    return h;
  }

  /** Frame h's key from the pool, not as arguments: siftUp is not inlined, and double arguments were heap numbers per call. */
  private siftUp(i: number, from: number, h: number): void {
    const t_ns = this.pool.t_ns[h]!;
    const seq = this.pool.seq[h]!;
    const hf = this.heap_from;
    const ht = this.heap_t_ns;
    const hq = this.heap_seq;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pt = ht[p]!;
      if (!(t_ns < pt || (t_ns === pt && seq < hq[p]!))) break;
      hf[i] = hf[p]!;
      ht[i] = pt;
      hq[i] = hq[p]!;
      i = p;
    }
    hf[i] = from;
    ht[i] = t_ns;
    hq[i] = seq;
  }

  private siftDown(i: number, from: number, t_ns: number, seq: number): void {
    const hf = this.heap_from;
    const ht = this.heap_t_ns;
    const hq = this.heap_seq;
    const n = this.heap_size;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      let c = l;
      let ct = ht[l]!;
      let cq = hq[l]!;
      const r = l + 1;
      if (r < n) {
        const rt = ht[r]!;
        if (rt < ct || (rt === ct && hq[r]! < cq)) {
          c = r;
          ct = rt;
          cq = hq[r]!;
        }
      }
      if (!(ct < t_ns || (ct === t_ns && cq < seq))) break;
      hf[i] = hf[c]!;
      ht[i] = ct;
      hq[i] = cq;
      i = c;
    }
    hf[i] = from;
    ht[i] = t_ns;
    hq[i] = seq;
  }
}
