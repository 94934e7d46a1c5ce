// The in-process Bracha model's options that bring it to the reference program:
// `rules: reference` and `transport: tcp_like` (docs/bracha.md). Their figures are pinned
// to what the Go program measured on VMs (test/vm_bracha.test.ts checks the VMs against the
// model), and a run without them is the UDP model as before.

import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { encodeMessage, encodeMessageWords } from "../nodes/inprocess/bracha.js";
import { brachaConfig } from "../nodes/inprocess/workloads.js";
import { tapsim } from "./helpers/cli.js";

const tmp = mkdtempSync(path.join(tmpdir(), "tapsim-bracha-model-"));

interface Summary {
  deliveries: number;
  deliveries_expected: number;
  faults_tolerated: number;
  done_ms: (number | null)[];
}

function model(matrix: string, ...flags: string[]): Summary {
  const r = tapsim("run", "--latency", `latency_configs/${matrix}`, "--json", "--no-progress", "--trace", path.join(tmp, "t.trace"), ...flags);
  assert.is(r.code, 0, r.stderr);
  return JSON.parse(r.stdout).workload as Summary;
}

test("without the options the config holds no new fields (traces of the UDP model are unchanged)", () => {
  const config = brachaConfig({ messages_per_node: 3 });
  assert.not.ok("transport" in config || "rules" in config || "startup_ns" in config);
});

test("tcp_like, reference rules, 4 nodes at 50 ms, M = 5: every node done at 2.054 s (the VMs measured 2.0546-2.0550 s); UDP says 0.75 s", () => {
  const tcp = model("delays_4x4_50ms.txt", "--messages", "5", "--start-spread", "0", "--transport", "tcp_like", "--rules", "reference");
  assert.is(tcp.deliveries, tcp.deliveries_expected);
  assert.equal(tcp.done_ms, [2054, 2054, 2054, 2054]);
  const udp = model("delays_4x4_50ms.txt", "--messages", "5", "--start-spread", "0");
  assert.equal(udp.done_ms, [750, 750, 750, 750]);
});

test("reference rules: f = N/3 (3 at 9 nodes), and at most 2 silent nodes there (2f+1 = 7 Ready votes must come from correct nodes)", () => {
  const nine = model("delays_9x9_aws.txt", "--messages", "2", "--rules", "reference", "--transport", "tcp_like", "--silent", "7,8");
  assert.is(nine.faults_tolerated, 3);
  assert.is(nine.deliveries, nine.deliveries_expected);
  assert.equal(nine.done_ms.slice(7), [null, null]);
  const r = tapsim("run", "--latency", "latency_configs/delays_9x9_aws.txt", "--rules", "reference", "--silent", "6,7,8", "--trace", path.join(tmp, "x.trace"));
  assert.is(r.code, 2);
  assert.match(r.stderr, /3 silent nodes exceed f = 3 for 9 nodes \(reference rules: at most 2\)/);
});

test("tcp_like: a dial that reaches a node not listening yet is refused and retried 500 ms later; everything is still delivered", () => {
  // Starts spread over 2 s: some node dials a peer that has not started.
  const late = model("delays_4x4_50ms.txt", "--messages", "2", "--start-spread", "2s", "--transport", "tcp_like", "--rules", "reference", "--seed", "3");
  assert.is(late.deliveries, late.deliveries_expected);
  const marks = tapsim("dump", path.join(tmp, "t.trace"), "--kind", "mark", "--limit", "10000").stdout;
  assert.match(marks, /1\.381413217s mark node=1 "bracha tcp dial refused by 2: retry in 500 ms"/);
  assert.match(marks, /1\.981413217s mark node=1 "bracha tcp dial refused by 2: retry in 500 ms"/);
  const silent = model("delays_4x4_50ms.txt", "--messages", "2", "--start-spread", "0", "--transport", "tcp_like", "--silent", "3");
  assert.is(silent.deliveries, silent.deliveries_expected);
  assert.is(silent.done_ms[3], null);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test("a message written a word at a time has the bytes of the plain encoder (any offset, payload size, origin, seq)", () => {
  for (const payload_bytes of [0, 1, 3, 4, 5, 16, 17, 255, 1400]) {
    for (const [type, origin, seq] of [[1, 0, 0], [2, 3, 11_999], [3, 1023, 255], [3, 65_535, 0xffff_ffff], [2, 255, 4093]] as const) {
      for (const o of [0, 1, 42, 43]) {
        const plain = new Uint8Array(o + 8 + payload_bytes + 3).fill(0xa5);
        const words = plain.slice();
        encodeMessage(type, origin, seq, payload_bytes, plain, o);
        encodeMessageWords(type, origin, seq, payload_bytes, new DataView(words.buffer), o);
        assert.equal(words, plain, `payload ${payload_bytes}, type ${type}, origin ${origin}, seq ${seq}, offset ${o}`);
      }
    }
  }
});

test.run();
