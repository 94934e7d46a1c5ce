// The example scenarios on real VMs, checked against the scenarios' own numbers: the round
// trips in the guests equal the latencies the topology and faults give them, pings inside a
// partition go unanswered, a TCP transfer survives a partition whole, a crashed node comes
// back, and a scenario run twice (and re-executed) gives the same trace.

import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { RecordKind, type TraceRecord } from "../engine/trace_records.js";
import { TraceReader } from "../recorder/reader.js";
import { tapsimWith, type CliResult } from "./helpers/cli.js";

const tmp = mkdtempSync(path.join(tmpdir(), "tapsim-vm-scenario-"));
const MS = 1_000_000;
const S = 1_000_000_000;
/** A guest's ping adds its own processing to the wire's round trip: microseconds, well under this. */
const RTT_SLACK_MS = 0.5;
// A ping's first request waits for ARP (one more round trip before it reaches the wire):
// seq 0 is left out where round trips are compared with the wire's.

function run(scenario: string, name: string): { dir: string; r: CliResult } {
  const dir = path.join(tmp, name);
  const r = tapsimWith({ timeout_ms: 600_000 }, "run", `scenarios/${scenario}`, "--out", dir, "--no-progress");
  return { dir, r };
}

function records(dir: string): TraceRecord[] {
  const reader = TraceReader.open(path.join(dir, "trace.tapsim"));
  try {
    return [...reader.records()];
  } finally {
    reader.close();
  }
}

/** Console text of a node, and the lines a command printed (the agent prefixes them "[id] "). */
function commandLines(recs: readonly TraceRecord[], node: number, id: string): string[] {
  const text = recs.filter((r) => r[0] === RecordKind.GuestOutput && r[1] === node).map((r) => r[3] as string).join("");
  const prefix = `[${id}] `;
  return text.split("\n").map((l) => l.replace(/\r$/, "")).filter((l) => l.startsWith(prefix)).map((l) => l.slice(prefix.length));
}

/** ICMP echo (type 8) or reply (0) frames a node emitted: seq -> send time. */
function echoes(recs: readonly TraceRecord[], node: number, type: 0 | 8): Map<number, number> {
  const out = new Map<number, number>();
  for (const r of recs) {
    if (r[0] !== RecordKind.FrameEmit || r[1] !== node) continue;
    const b = r[4] as Uint8Array;
    if (b.length < 42 || b[12] !== 0x08 || b[13] !== 0x00 || b[23] !== 1) continue; // IPv4 ICMP
    const icmp = 14 + (b[14]! & 0x0f) * 4;
    if (b[icmp] !== type) continue;
    const seq = (b[icmp + 6]! << 8) | b[icmp + 7]!;
    if (!out.has(seq)) out.set(seq, r[2] as number);
  }
  return out;
}

/** busybox ping's reply lines: seq -> rtt in ms. */
function pingReplies(lines: readonly string[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const l of lines) {
    const m = /seq=(\d+) ttl=\d+ time=([0-9.]+) ms/.exec(l);
    if (m) out.set(Number(m[1]), Number(m[2]));
  }
  return out;
}

function results(dir: string): { commands: { id: string; ok: boolean; result: string; exit_code: number | null }[]; metrics: { name: string; overall: { count: number; mean: number | null } }[] } {
  return JSON.parse(readFileSync(path.join(dir, "results.json"), "utf8"));
}

test("latency doubles at 10 s: each guest-measured round trip is the sum of the two one-way latencies in force when request and reply were sent; twice identical, rerun identical", () => {
  const a = run("latency_doubles.yaml", "latency-a");
  assert.is(a.r.code, 0, a.r.stderr);
  const recs = records(a.dir);
  const requests = echoes(recs, 0, 8);
  const replies_sent = echoes(recs, 1, 0);
  const rtt = pingReplies(commandLines(recs, 0, "n0.ping"));
  const one_way_ms = (t_ns: number) => (t_ns < 10 * S ? 20 : 40);
  assert.is(rtt.size, 24, `24 replies, got ${rtt.size}`);
  let before = 0;
  let after = 0;
  for (const [seq, ms] of rtt) {
    if (seq === 0) continue;
    const expected = one_way_ms(requests.get(seq)!) + one_way_ms(replies_sent.get(seq)!);
    assert.ok(Math.abs(ms - expected) < RTT_SLACK_MS, `seq ${seq}: ${ms} ms, expected ${expected} ms`);
    if (expected === 40) before += 1;
    if (expected === 80) after += 1;
  }
  assert.ok(before >= 10 && after >= 10, `${before} pings at 40 ms, ${after} at 80 ms`);
  const faults = recs.filter((r) => r[0] === RecordKind.Fault);
  assert.equal(faults.map((r) => [r[1], r[2], r[3]]), [[-1, 10 * S, "link_change"]]);
  assert.is(results(a.dir).commands[0]!.ok, true);

  const b = run("latency_doubles.yaml", "latency-b");
  assert.is(b.r.code, 0, b.r.stderr);
  const diff = tapsimWith({}, "diff", path.join(a.dir, "trace.tapsim"), path.join(b.dir, "trace.tapsim"));
  assert.is(diff.code, 0, `two runs of one scenario differ:\n${diff.stdout}${diff.stderr}`);
  const rerun = tapsimWith({ timeout_ms: 600_000 }, "rerun", path.join(a.dir, "trace.tapsim"));
  assert.is(rerun.code, 0, rerun.stdout + rerun.stderr);
  assert.match(rerun.stdout, /^rerun: identical/);
});

test("partition 6 s to 9 s: pings whose request or reply was sent inside it go unanswered, the others take the matrix's 20 ms; the TCP download stalls and completes whole", () => {
  const { dir, r } = run("partition_tcp.yaml", "partition");
  assert.is(r.code, 0, r.stderr);
  const recs = records(dir);
  const inside = (t_ns: number) => t_ns >= 6 * S && t_ns < 9 * S;
  const requests = echoes(recs, 2, 8);
  const replies_sent = echoes(recs, 0, 0);
  const rtt = pingReplies(commandLines(recs, 2, "n2.ping"));
  assert.is(requests.size, 40);
  let lost = 0;
  for (const [seq, sent_ns] of requests) {
    const reply_ns = replies_sent.get(seq);
    const crossed = !inside(sent_ns) && reply_ns !== undefined && !inside(reply_ns);
    if (!crossed) {
      lost += 1;
      assert.not.ok(rtt.has(seq), `seq ${seq} sent at ${sent_ns} inside the partition got a reply`);
      continue;
    }
    assert.ok(rtt.has(seq), `seq ${seq} sent at ${sent_ns} outside the partition got no reply`);
    if (seq === 0) continue;
    assert.ok(Math.abs(rtt.get(seq)! - 20) < RTT_SLACK_MS, `seq ${seq}: ${rtt.get(seq)} ms`);
  }
  assert.ok(lost >= 11 && lost <= 13, `3 s of pings at 4/s lost, got ${lost}`);
  // Every frame dropped for the partition was sent inside it, between n0 and the others.
  const cut = recs.filter((x) => x[0] === RecordKind.FrameDrop && x[5] === "link_down");
  assert.ok(cut.length > 0);
  for (const x of cut) {
    assert.ok(inside(x[2] as number), `link_down drop at ${x[2]}`);
    assert.ok((x[1] === 0) !== (x[4] === 0), "a link across the partition");
  }
  // The download: stalled by the partition, whole in the end.
  assert.equal(commandLines(recs, 0, "n0.download"), ["1048576"]);
  assert.is(readFileSync(path.join(dir, "collected/n0/tmp/blob")).length, 1 << 20);
  const exit = recs.find((x) => x[0] === RecordKind.Command && x[4] === "n0.download" && x[3] === "exit")!;
  assert.ok((exit[2] as number) > 9 * S, "the transfer outlasted the partition");
  assert.ok(results(dir).commands.every((c) => c.ok));
});

test("crash at 5 s, restart at 7 s: the peer's TCP connection is reset once n1 is back, the peer sees it answer again, the trace holds the faults and both boots", () => {
  const { dir, r } = run("crash_restart.yaml", "crash");
  assert.is(r.code, 0, r.stderr);
  const recs = records(dir);
  const lines = commandLines(recs, 0, "n0.client");
  const closed = lines.find((l) => l.startsWith("connection closed"));
  const back = lines.find((l) => l.startsWith("n1 is back"));
  assert.ok(closed !== undefined && back !== undefined, lines.join("\n"));
  const closed_ns = Number(/t=(\d+)/.exec(closed!)![1]);
  assert.ok(closed_ns > 7 * S, `the connection survived the crash until the restart (closed at ${closed_ns})`);
  const faults = recs.filter((x) => x[0] === RecordKind.Fault).map((x) => [x[1], x[2], x[3]]);
  assert.equal(faults, [[1, 5 * S, "poweroff"], [1, 7 * S, "restart"]]);
  const boots = recs.filter((x) => x[0] === RecordKind.Lifecycle && x[1] === 1 && x[3] === "boot").map((x) => x[2]);
  assert.equal(boots, [0, 7 * S]);
  assert.ok(recs.some((x) => x[0] === RecordKind.FrameDrop && x[1] === 1 && x[5] === "node_down"), "frames to the powered-off node are dropped");
});

test("the demo's ping mesh: every node's round trips equal the 3x3 matrix's sums", () => {
  const { dir, r } = run("ping_mesh.yaml", "mesh");
  assert.is(r.code, 0, r.stderr);
  const recs = records(dir);
  const one_way_ms = [[0, 50, 150], [50, 0, 100], [150, 100, 0]];
  for (let node = 0; node < 3; node++) {
    const lines = commandLines(recs, node, `n${node}.ping`);
    for (const l of lines) {
      const m = /^64 bytes from 10\.0\.0\.(\d+): seq=(\d+) ttl=\d+ time=([0-9.]+) ms/.exec(l);
      if (!m || m[2] === "0") continue;
      const peer = Number(m[1]) - 1;
      const expected = one_way_ms[node]![peer]! + one_way_ms[peer]![node]!;
      assert.ok(Math.abs(Number(m[3]) - expected) < RTT_SLACK_MS, `n${node} -> n${peer}: ${m[3]} ms, expected ${expected}`);
    }
    assert.is(lines.filter((l) => /time=/.test(l)).length, 10, `n${node}: 5 replies from each of two peers`);
  }
  const rtt = results(dir).metrics.find((m) => m.name === "rtt")!;
  assert.is(rtt.overall.count, 30);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
