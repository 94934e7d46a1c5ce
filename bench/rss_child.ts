// Child process for memory_bench.ts where /usr/bin/time is missing: does what `tapsim replay`
// or `tapsim info` does with a trace, then prints {maxrss_kb, result} as JSON.
// Usage: node dist/bench/rss_child.js replay|info|noop [trace]

import { TraceReader } from "../recorder/reader.js";
import { replayTrace } from "../recorder/replay.js";
import { TraceStats } from "../recorder/stats.js";

async function main(): Promise<void> {
  const [what, trace] = process.argv.slice(2);
  let result: unknown = null;
  if (what === "replay") {
    const { header: _header, ...outcome } = await replayTrace(trace!);
    result = outcome;
  } else if (what === "info") {
    const reader = TraceReader.open(trace!);
    const stats = new TraceStats();
    for (const r of reader.records()) stats.add(r);
    const status = reader.status();
    reader.close();
    result = { status, records: stats.records, counts: stats.kind_counts };
  } else if (what !== "noop") {
    throw new Error(`usage: rss_child.js replay|info|noop [trace]`);
  }
  console.log(JSON.stringify({ maxrss_kb: process.resourceUsage().maxRSS, result }, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString("hex") : v)));
}

await main();
