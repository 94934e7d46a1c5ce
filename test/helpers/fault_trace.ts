// A small in-process trace with scheduled faults, for the tools' tests: four nodes pinging
// each other every 5 ms for 100 ms, partitioned {n0,n1} | {n2,n3} over [20, 60) ms, n3
// powered off at 70 ms.

import type { NodeBackend } from "../../engine/backend.js";
import { createEngine, makeRunConfig } from "../../engine/run.js";
import type { FaultPlan, RunConfig } from "../../engine/trace_records.js";
import type { NodeId } from "../../engine/units.js";
import { InProcessBackend } from "../../nodes/inprocess/backend.js";
import { FORMAT_VERSION } from "../../recorder/format.js";
import { TraceWriter } from "../../recorder/writer.js";
import { ScriptedNode, udpTo, uniformTopology } from "./engine_fixtures.js";

const MS = 1_000_000;

export const FAULT_TRACE_FAULTS = [
  { node: -1, t_ns: 20 * MS, text: "network partition: n0,n1 | n2,n3" },
  { node: -1, t_ns: 60 * MS, text: "network heal: n0,n1 | n2,n3" },
  { node: 3, t_ns: 70 * MS, text: "fault: poweroff" },
];

export async function writeFaultTrace(file: string): Promise<void> {
  const cross = [];
  for (const a of [0, 1]) for (const b of [2, 3]) cross.push({ to: a, from: b }, { to: b, from: a });
  const faults: FaultPlan = {
    nodes: [{ t_ns: 70 * MS, node: 3, action: "poweroff" }],
    network: [
      { t_ns: 20 * MS, action: "partition", label: "n0,n1 | n2,n3", links: cross, set: { down: true } },
      { t_ns: 60 * MS, action: "heal", label: "n0,n1 | n2,n3", links: cross, set: { down: false } },
    ],
  };
  const config: RunConfig = { ...makeRunConfig({ topology: uniformTopology(4, 10), workload: null, seed: 3, until_ns: null }), faults };
  const backends: NodeBackend[] = [0, 1, 2, 3].map((i) => {
    const script: { at_ns: number; frame: Uint8Array }[] = [];
    for (let t = 0; t < 100; t += 5) for (let to = 0; to < 4; to++) if (to !== i) script.push({ at_ns: t * MS, frame: udpTo(i, to, 10, t) });
    return new InProcessBackend(i as NodeId, 4, new ScriptedNode(script), config.seed);
  });
  const writer = TraceWriter.create(file, { format: "tapsim-trace", format_version: FORMAT_VERSION, tapsim_version: "0.0.0-test", created_at: "2024-01-02T03:04:05.678Z", config });
  await createEngine(config, backends, writer).run();
  writer.close();
}
