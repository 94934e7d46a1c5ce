// An in-process run: every node runs the configured workload (a TypeScript state machine).

import type { Engine } from "../../engine/engine.js";
import { createEngine } from "../../engine/run.js";
import type { RecordSink, RunConfig } from "../../engine/trace_records.js";
import type { NodeId } from "../../engine/units.js";
import { InProcessBackend } from "./backend.js";
import { createWorkload, type Workload } from "./workloads.js";

/** One backend per node, each running the configured in-process workload. */
export function inProcessBackends(config: RunConfig): { backends: InProcessBackend[]; workload: Workload } {
  if (config.workload === null) throw new Error("an in-process run needs a workload");
  const n = config.nodes.length;
  const workload = createWorkload(config.workload, n);
  const backends = workload.nodes.map((node, id) => new InProcessBackend(id as NodeId, n, node, config.seed));
  return { backends, workload };
}

/** An engine whose every node runs the configured in-process workload. */
export function createInProcessRun(config: RunConfig, sink: RecordSink): { engine: Engine; workload: Workload } {
  const { backends, workload } = inProcessBackends(config);
  return { engine: createEngine(config, backends, sink), workload };
}
