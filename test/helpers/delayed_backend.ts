// An in-process node behind the concurrent interface (NodeBackend.beginSlice), for the
// grant-set tests: beginSlice returns at once and the node runs after a random number of
// event-loop turns, so the slices of a set finish in a shuffled order (and after one
// another's begin). `busy` makes it VM-like for the pipelined schedule: awake at every slice
// end, and the request's frames copied at begin (the engine's views last only until its
// next step; the VM backend encodes its RUN at once).

import type { NodeBackend, NodeControl, SliceRequest, SliceResult } from "../../engine/backend.js";
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
  ) {
    this.control_actions = inner.control_actions;
  }
  runSlice(request: SliceRequest): SliceResult {
    return this.run(this.busy ? copied(request) : request);
  }
  beginSlice(request: SliceRequest): () => Promise<SliceResult> {
    this.begun += 1;
    const own = this.busy ? copied(request) : request;
    const turns = this.prng.nextBelow(4);
    const done = (async () => {
      for (let k = 0; k < turns; k++) await new Promise((resolve) => setImmediate(resolve));
      this.log.push(request.node);
      return this.run(own);
    })();
    return () => done;
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

/** The case's nodes (its own backends, or its in-process workload's), each behind a DelayedBackend; `log` gets node ids in completion order. */
export function delayedBackends(c: GoldenCase, config: RunConfig, seed: number, log: number[], busy = false): DelayedBackend[] {
  const prng = new Prng(seed, 9);
  const inner = (c.backends ? c.backends(config) : inProcessBackends(config).backends) as InProcessBackend[];
  return inner.map((b) => new DelayedBackend(b, prng, log, busy));
}
