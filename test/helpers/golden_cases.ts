// Golden run configurations shared by engine_golden.test.ts (record streams hashed against
// values computed before the engine throughput work) and engine_parallel.test.ts (parallel
// and sequential execution of the grant-set schedule).

import { createHash } from "node:crypto";
import type { NodeBackend } from "../../engine/backend.js";
import { createEngine, makeRunConfig } from "../../engine/run.js";
import type { FaultPlan, RecordSink, RunConfig, TraceRecord } from "../../engine/trace_records.js";
import type { NodeId } from "../../engine/units.js";
import { InProcessBackend } from "../../nodes/inprocess/backend.js";
import { inProcessBackends } from "../../nodes/inprocess/run.js";
import { brachaConfig } from "../../nodes/inprocess/workloads.js";
import { matrixTopology, ScriptedNode, udpTo } from "./engine_fixtures.js";

const MS = 1_000_000;

/** sha256 over every record (byte fields in hex), in order; and the record count. */
export class HashingSink implements RecordSink {
  readonly transient_bytes = true;
  /** Hashed as written: the golden hashes also cover the engine's reused record arrays. */
  readonly transient_records = true;
  private readonly hash = createHash("sha256");
  count = 0;
  write(record: TraceRecord): void {
    this.count += 1;
    this.hash.update(JSON.stringify(record, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString("hex") : v)));
    this.hash.update("\n");
  }
  /** The same hash as write() of the record with a view of the bytes (so the golden hashes cover this path too). */
  writeFrameEmitIn(node: number, t_ns: number, frame_id: number, buf: Uint8Array, offset: number, length: number): void {
    this.write([3, node, t_ns, frame_id, buf.subarray(offset, offset + length)]);
  }
  digest(): string {
    return this.hash.digest("hex").slice(0, 32);
  }
}

/** Three regions, latencies like delays_9x9_aws.txt (ms), [to][from]. */
function regions(n: number): number[][] {
  const ms = [
    [1, 46, 125],
    [46, 1, 99],
    [125, 49, 1],
  ];
  const region = (i: number) => Math.floor((i * 3) / n);
  return Array.from({ length: n }, (_, to) => Array.from({ length: n }, (_, from) => (to === from ? 0 : ms[region(to)]![region(from)]!)));
}

export interface GoldenCase {
  name: string;
  config: () => RunConfig;
  /** Backends for the config (default: its in-process workload). */
  backends?: (config: RunConfig) => NodeBackend[];
}

function bracha(n: number, messages: number, seed: number, overrides: RunConfig["topology"]["link_overrides"], faults?: FaultPlan, until_ns: number | null = null): RunConfig {
  const config = makeRunConfig({ topology: matrixTopology(regions(n), overrides), workload: brachaConfig({ messages_per_node: messages }), seed, until_ns });
  if (faults) config.faults = faults;
  return config;
}

function others(self: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => i).filter((i) => i !== self);
}

function broadcastFrame(from: number): Uint8Array {
  const f = udpTo(from, 0, 12, from);
  f.fill(0xff, 0, 6);
  return f;
}

export const GOLDEN_CASES: GoldenCase[] = [
  {
    name: "bracha 9 nodes, jitter + loss + bandwidth queues",
    config: () =>
      bracha(9, 12, 3, [
        ...Array.from({ length: 9 }, (_, k) => ({ to: k, from: (k + 1) % 9, jitter_ns: 600_000, loss_rate: 0.05 })),
        ...Array.from({ length: 9 }, (_, k) => ({ to: (k + 4) % 9, from: k, bandwidth_bps: 100_000, queue_packets_max: 2 })),
        { to: 2, from: 7, jitter_ns: 500_000, bandwidth_bps: 1_000_000, queue_bytes_max: 400 },
      ]),
  },
  {
    name: "bracha 16 nodes, node faults and network changes",
    config: () =>
      bracha(16, 6, 11, [{ to: 3, from: 4, jitter_ns: 200_000 }], {
        nodes: [
          { t_ns: 40 * MS, node: 5, action: "pause" },
          { t_ns: 90 * MS, node: 15, action: "poweroff" },
          { t_ns: 260 * MS, node: 5, action: "resume" },
        ],
        network: [
          { t_ns: 30 * MS, action: "link_change", label: "n0 -> n1 slow", links: [{ to: 1, from: 0 }], set: { latency_ns: 150 * MS, jitter_ns: 20 * MS, loss_rate: 0.2 } },
          { t_ns: 120 * MS, action: "partition", label: "n0..n7 | n8..n15", links: others(-1, 16).flatMap((a) => others(-1, 16).filter((b) => (a < 8) !== (b < 8)).map((b) => ({ to: a, from: b }))), set: { down: true } },
          { t_ns: 400 * MS, action: "heal", label: "heal", links: others(-1, 16).flatMap((a) => others(-1, 16).filter((b) => (a < 8) !== (b < 8)).map((b) => ({ to: a, from: b }))), set: { down: false } },
          { t_ns: 450 * MS, action: "link_change", label: "n2 <- n9 bandwidth", links: [{ to: 2, from: 9 }], set: { bandwidth_bps: 500_000, queue_packets_max: 3 } },
        ],
      }),
  },
  {
    name: "bracha 70 nodes, 3 broadcasters, jitter",
    config: () =>
      makeRunConfig({
        topology: matrixTopology(regions(70), [{ to: 0, from: 69, jitter_ns: 400_000 }, { to: 35, from: 1, jitter_ns: 900_000, loss_rate: 0.3 }]),
        workload: brachaConfig({ messages_per_node: 2, broadcasters: 3 }),
        seed: 99,
        until_ns: null,
      }),
  },
  {
    name: "scripted: broadcast MAC, unknown MAC, short frame, exit mid-run, until",
    config: () => makeRunConfig({ topology: matrixTopology(regions(5), [{ to: 1, from: 0, jitter_ns: 700_000, loss_rate: 0.1 }]), workload: null, seed: 5, until_ns: 700 * MS }),
    backends: (config) => {
      const unknown = udpTo(0, 1, 8);
      unknown.set([0x02, 0, 0, 0, 0x7f, 0x7f], 0);
      const nodes = [0, 1, 2, 3, 4].map((self) => {
        const script: { at_ns: number; frame: Uint8Array }[] = [];
        for (let t = self; t < 600; t += 7 + self) {
          script.push({ at_ns: t * MS + self, frame: udpTo(self, (self + 1 + (t % 4)) % 5, 10 + (t % 30), t) });
          if (t % 3 === 0) script.push({ at_ns: t * MS + self, frame: broadcastFrame(self) });
        }
        if (self === 2) script.push({ at_ns: 50 * MS, frame: unknown }, { at_ns: 51 * MS, frame: new Uint8Array(9) });
        return new ScriptedNode(script, self === 3 ? 333 * MS : null);
      });
      return nodes.map((p, i) => new InProcessBackend(i as NodeId, nodes.length, p, config.seed));
    },
  },
];

export async function runGolden(c: GoldenCase, sink: RecordSink, options: { parallel?: boolean } = {}): Promise<void> {
  const config = c.config();
  if (options.parallel) config.parallel = true;
  const backends = c.backends ? c.backends(config) : inProcessBackends(config).backends;
  const engine = createEngine(config, backends, sink);
  await engine.run();
}

