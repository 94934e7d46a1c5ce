// A priority queue of events in a total, reproducible order: (virtual time, kind, sequence).
// The sequence number is assigned at insertion from a counter the owner controls, so ties
// never depend on Map iteration, hash order or I/O timing.

import FastPriorityQueue from "fastpriorityqueue";

export interface QueuedEvent {
  readonly t_ns: number;
  /** Lower kinds run first among events at the same virtual time. */
  readonly kind: number;
  readonly seq: number;
}

function before(a: QueuedEvent, b: QueuedEvent): boolean {
  if (a.t_ns !== b.t_ns) return a.t_ns < b.t_ns;
  if (a.kind !== b.kind) return a.kind < b.kind;
  return a.seq < b.seq;
}

export class EventQueue<E extends QueuedEvent> {
  private readonly heap = new FastPriorityQueue<E>(before);
  private readonly capacity_max: number;

  constructor(capacity_max: number) {
    if (!(capacity_max >= 1)) throw new RangeError(`capacity_max must be >= 1, got ${capacity_max}`);
    this.capacity_max = capacity_max;
  }

  get size(): number {
    return this.heap.size;
  }

  push(event: E): void {
    if (this.heap.size >= this.capacity_max) {
      throw new RangeError(`event queue full (${this.capacity_max} events): a bound was exceeded`);
    }
    this.heap.add(event);
  }

  peek(): E | undefined {
    return this.heap.peek();
  }

  /** Time of the earliest event, or `empty_ns` when there is none. */
  peekTime(empty_ns: number): number {
    const top = this.heap.peek();
    return top === undefined ? empty_ns : top.t_ns;
  }

  pop(): E | undefined {
    return this.heap.poll();
  }

  /** Removes every event; returns them in queue order. */
  drain(): E[] {
    const out: E[] = [];
    for (let e = this.heap.poll(); e !== undefined; e = this.heap.poll()) out.push(e);
    return out;
  }
}
