// Golden record streams: a few deterministic in-process runs (Bracha with jitter, loss,
// bandwidth queues; scheduled node faults and network changes; scripted nodes sending to a
// broadcast MAC, to nobody and exiting mid-run) hashed record by record.
//
// Why golden hashes: the engine's throughput work (issue #12 item 5: typed-array batches,
// frames in an engine-owned arena, struct-of-arrays links and inboxes) claims to change
// *nothing* the engine decides. The old code cannot run inside this test to compare against,
// so the hashes below were computed with the engine as it was before that work (commit
// 393f856) and must never change for these configurations and seeds. A run is a
// deterministic function of its configuration, so one differing record anywhere changes
// the hash. If a later change alters the engine's decisions on purpose, that is a change of
// trace semantics (old traces would stop replaying): it needs a new trace header flag, not
// new hashes here.

import { test } from "uvu";
import * as assert from "uvu/assert";
import type { TraceRecord } from "../engine/trace_records.js";
import { GOLDEN_CASES, HashingSink, runGolden } from "./helpers/golden_cases.js";

/** Computed before the engine throughput work (commit 393f856); see the comment at the top. */
const GOLDEN: Record<string, { records: number; sha256: string }> = {
  "bracha 9 nodes, jitter + loss + bandwidth queues": { records: 44857, sha256: "f9fd40a409ab17e6f5a447b19344fc14" },
  "bracha 16 nodes, node faults and network changes": { records: 16410, sha256: "859d0f1ca5186c1e15dcc5fb06a160b9" },
  "bracha 70 nodes, 3 broadcasters, jitter": { records: 119229, sha256: "417dda6b1a34effa2dd67ee9b80637e2" },
  "scripted: broadcast MAC, unknown MAC, short frame, exit mid-run, until": { records: 1932, sha256: "ef2f44cf81427e09c5084329347ec316" },
};

for (const c of GOLDEN_CASES) {
  test(`golden record stream: ${c.name}`, async () => {
    const sink = new HashingSink();
    await runGolden(c, sink);
    const got = { records: sink.count, sha256: sink.digest() };
    const want = GOLDEN[c.name];
    assert.equal(got, want);
  });
}

// The hashes above go through the sink fast paths (reused record arrays, frame_emit bytes as
// buffer + offset). A sink that keeps every record, with none of them, must see the same stream.
test("golden record streams: a sink keeping its records (no fast paths) sees the same records", async () => {
  for (const c of GOLDEN_CASES) {
    const kept: TraceRecord[] = [];
    await runGolden(c, { write: (record) => kept.push(record) });
    const rehashed = new HashingSink();
    for (const record of kept) rehashed.write(record);
    assert.equal({ records: rehashed.count, sha256: rehashed.digest() }, GOLDEN[c.name], c.name);
  }
});

test.run();
