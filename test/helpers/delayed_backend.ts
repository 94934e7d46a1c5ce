// An in-process node behind the concurrent interface (NodeBackend.beginSlice), for the
// grant-set tests: beginSlice returns at once and the node runs after a random number of
// event-loop turns, so the slices of a set finish in a shuffled order (and after one
// another's begin). `busy` makes it VM-like for the pipelined schedule: awake at every slice
// end, and the request's frames copied at begin (the engine's views last only until its
// next step; the VM backend encodes its RUN at once). With a ShuffledFinish, slices say when
// they are done instead, and are collected blocking, in the order it picks.

import type { FinishWaiter, NodeBackend, NodeControl, SliceCollector, SliceRequest, SliceResult } from "../../engine/backend.js";
import { Prng } from "../../engine/prng.js";
import type { RunConfig } from "../../engine/trace_records.js";
import type { InProcessBackend } from "../../nodes/inprocess/backend.js";
import { inProcessBackends } from "../../nodes/inprocess/run.js";
import type { GoldenCase } from "./golden_cases.js";

export class DelayedBackend implements NodeBackend {
  readonly kind = "inprocess" as const;
  readonly control_actions: InProcessBackend["control_actions"];
  begun = 0;
  constructor(
    private readonly inner: InProcessBackend,
    private readonly prng: Prng,
    private readonly log: number[],
    private readonly busy: boolean,
    private readonly finish: ShuffledFinish | null = null,
  ) {
    this.control_actions = inner.control_actions;
  }
  runSlice(request: SliceRequest): SliceResult {
    return this.run(this.busy ? copied(request) : request);
  }
  beginSlice(request: SliceRequest): SliceCollector {
    this.begun += 1;
    const own = this.busy ? copied(request) : request;
    if (this.finish !== null) return this.beginSignalled(own, this.finish);
    const turns = this.prng.nextBelow(4);
    const done = (async () => {
      for (let k = 0; k < turns; k++) await new Promise((resolve) => setImmediate(resolve));
      this.log.push(request.node);
      return this.run(own);
    })();
    return () => done;
  }
  /** Like a VM on the blocking gate: collecting runs the slice at once; `finish` picks which begun slice "finished" first. */
  private beginSignalled(own: SliceRequest, finish: ShuffledFinish): SliceCollector {
    const key = finish.begin();
    const collect = (): SliceResult => {
      finish.collected(key);
      this.log.push(own.node);
      return this.run(own);
    };
    return Object.assign(collect, { finish: { key, waiter: finish } });
  }
  control(c: NodeControl): void {
    this.inner.control(c);
  }
  private run(request: SliceRequest): SliceResult {
    const result = this.inner.runSlice(request);
    return this.busy ? { ...result, wake_ns: result.end_ns } : result;
  }
}

function copied(request: SliceRequest): SliceRequest {
  return { ...request, deliveries: request.deliveries.map((d) => ({ ...d, bytes: new Uint8Array(d.bytes) })) };
}

/**
 * The finish signal of slices "running" behind DelayedBackends: each begun slice gets a key,
 * and waitAny names a pseudo-random one of those asked about as the first to finish (as a
 * poll over VMs' gate sockets would, in whatever order the VMs get done). Checks that the
 * engine only waits on begun, uncollected slices, and collects the one it was told of.
 */
export class ShuffledFinish implements FinishWaiter {
  private next_key = 0;
  private readonly running = new Set<number>();
  /** The key waitAny named last, until it is collected. */
  private named: number | null = null;
  /** waitAny calls that named a slice other than the first one asked about. */
  out_of_order = 0;
  constructor(private readonly prng: Prng) {}
  begin(): number {
    const key = this.next_key++;
    this.running.add(key);
    return key;
  }
  collected(key: number): void {
    if (!this.running.delete(key)) throw new Error(`slice key ${key} collected twice or never begun`);
    if (this.named !== null && this.named !== key) throw new Error(`waitAny named slice key ${this.named}, the engine collected ${key}`);
    this.named = null;
  }
  waitAny(keys: Int32Array, count: number): number {
    if (!(count >= 1 && count <= keys.length)) throw new RangeError(`waitAny over ${count} of ${keys.length}`);
    for (let k = 0; k < count; k++) if (!this.running.has(keys[k]!)) throw new Error(`waitAny asked about slice key ${keys[k]}, not running`);
    const index = this.prng.nextBelow(count);
    if (index > 0) this.out_of_order += 1;
    this.named = keys[index]!;
    return index;
  }
}

/**
 * The case's nodes (its own backends, or its in-process workload's), each behind a
 * DelayedBackend; `log` gets node ids in completion order. With `finish`, slices signal when
 * they are done through it and are collected blocking, as VMs on the blocking gate are.
 */
export function delayedBackends(c: GoldenCase, config: RunConfig, seed: number, log: number[], busy = false, finish: ShuffledFinish | null = null): DelayedBackend[] {
  const prng = new Prng(seed, 9);
  const inner = (c.backends ? c.backends(config) : inProcessBackends(config).backends) as InProcessBackend[];
  return inner.map((b) => new DelayedBackend(b, prng, log, busy, finish));
}
