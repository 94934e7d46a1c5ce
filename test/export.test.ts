// tapsim export: the pcapng read back by tshark (timestamps to the nanosecond, interfaces,
// decoded fields, one packet per emit and per delivery) and the Perfetto JSON's structure.

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { RecordKind, type TraceRecord } from "../engine/trace_records.js";
import { formatVirtualNs } from "../engine/units.js";
import { decodeFrame } from "../recorder/frame_decode.js";
import { TraceReader } from "../recorder/reader.js";
import { REPO_ROOT, tapsim } from "./helpers/cli.js";

const tmp = mkdtempSync(path.join(tmpdir(), "tapsim-export-"));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const JITTER_TRACE = path.join(REPO_ROOT, "traces/bracha_aws9_jitter_seed1.trace");

function readAll(trace: string): { names: string[]; records: TraceRecord[] } {
  const reader = TraceReader.open(trace);
  try {
    return { names: reader.header.config.nodes.map((n) => n.name), records: [...reader.records()] };
  } finally {
    reader.close();
  }
}

/** What tshark must print for each packet, in file order: emits outbound, deliveries inbound. */
function expectedRows(trace: string): string[] {
  const { names, records } = readAll(trace);
  const bytes = new Map<number, Uint8Array>();
  const rows: string[] = [];
  const row = (node: number, t_ns: number, b: Uint8Array, dir: string) => {
    const d = decodeFrame(b);
    return [formatVirtualNs(t_ns).replace(/s$/, ""), names[node], d.dst_mac, d.src_ip ?? "", String(d.dst_port ?? ""), dir].join("\t");
  };
  for (const r of records) {
    if (r[0] === RecordKind.FrameEmit) {
      bytes.set(r[3], r[4]);
      rows.push(row(r[1], r[2], r[4], "0x00000002"));
    } else if (r[0] === RecordKind.FrameDeliver) {
      rows.push(row(r[1], r[2], bytes.get(r[3])!, "0x00000001"));
    }
  }
  return rows;
}

function tsharkRows(pcap: string): string[] {
  const fields = ["frame.time_epoch", "frame.interface_name", "eth.dst", "ip.src", "udp.dstport", "frame.packet_flags_direction"];
  const out = execFileSync("tshark", ["-r", pcap, "-T", "fields", ...fields.flatMap((f) => ["-e", f])], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], maxBuffer: 1 << 28 });
  return out.trimEnd().split("\n");
}

interface TraceEvent {
  name: string;
  ph: string;
  tid?: number;
  ts?: number;
  dur?: number;
  id?: number;
  bp?: string;
  cat?: string;
  args?: Record<string, unknown>;
}

test("pcapng: one packet per emit and per delivery, exact ns timestamps, node interfaces, decoded fields", () => {
  const pcap = path.join(tmp, "jitter.pcapng");
  const r = tapsim("export", JITTER_TRACE, "--pcap", pcap);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /4104 frames outbound \+ 4104 inbound on 9 interfaces/);
  const expected = expectedRows(JITTER_TRACE);
  assert.is(expected.length, 4104 * 2);
  const got = tsharkRows(pcap);
  assert.is(got.length, expected.length);
  for (let i = 0; i < expected.length; i++) assert.is(got[i], expected[i], `packet ${i + 1}`);
  // Spot check that jitter made the timestamps non-round (the test would be weak otherwise).
  assert.ok(got.some((row) => !/^\d+\.\d{3}000000\t/.test(row)));
});

test("pcapng: dropped frames are not written; the interface list names every node", () => {
  const topo = path.join(tmp, "lossy.yaml");
  writeFileSync(topo, "nodes: [alpha, beta, gamma]\ndefaults:\n  latency: 2ms\n  loss: 20%\n");
  const trace = path.join(tmp, "lossy.trace");
  assert.is(tapsim("run", "--latency", topo, "--messages", "2", "--trace", trace, "--no-progress").code, 0);
  const { records } = readAll(trace);
  const count = (k: number) => records.filter((x) => x[0] === k).length;
  assert.ok(count(RecordKind.FrameDrop) > 0, "the lossy run drops frames");
  const pcap = path.join(tmp, "lossy.pcapng");
  assert.is(tapsim("export", trace, "--pcap", pcap).code, 0);
  const rows = tsharkRows(pcap);
  assert.is(rows.length, count(RecordKind.FrameEmit) + count(RecordKind.FrameDeliver));
  assert.equal([...new Set(rows.map((row) => row.split("\t")[1]))].sort(), ["alpha", "beta", "gamma"]);
});

test("perfetto: valid JSON, a named thread per node, X per slice, every flow start has its finish, instants for marks", () => {
  const json_path = path.join(tmp, "jitter.json");
  const r = tapsim("export", JITTER_TRACE, "--perfetto", json_path);
  assert.is(r.code, 0, r.stderr);
  const doc = JSON.parse(readFileSync(json_path, "utf8")) as { traceEvents: TraceEvent[] };
  const ev = doc.traceEvents;
  const { names, records } = readAll(JITTER_TRACE);
  const threads = ev.filter((e) => e.ph === "M" && e.name === "thread_name");
  assert.equal(threads.map((e) => [e.tid, e.args!["name"]]), names.map((n, i) => [i, n]));
  const slice_ends = records.filter((x) => x[0] === RecordKind.SliceEnd);
  const xs = ev.filter((e) => e.ph === "X");
  assert.is(xs.length, slice_ends.length);
  const delivers = records.filter((x): x is Extract<TraceRecord, [4, ...unknown[]]> => x[0] === RecordKind.FrameDeliver);
  const starts = ev.filter((e) => e.ph === "s");
  const finishes = new Map(ev.filter((e) => e.ph === "f").map((e) => [e.id, e]));
  assert.is(starts.length, delivers.length);
  assert.is(finishes.size, delivers.length, "flow ids are unique");
  for (const s of starts) {
    const f = finishes.get(s.id);
    assert.ok(f, `flow ${s.id} has its finish`);
    assert.is(f!.bp, "e");
    assert.ok(f!.ts! >= s.ts!, `flow ${s.id} goes forward in time`);
  }
  // ts is µs with the exact ns as decimals: the first delivery's both ends.
  const d0 = delivers[0]!;
  const first = starts.find((s) => s.args!["frame"] === d0[3] && s.args!["to"] === d0[1])!;
  assert.is(Math.round(first.ts! * 1000), d0[5]);
  assert.is(Math.round(finishes.get(first.id)!.ts! * 1000), d0[2]);
  assert.is(first.tid, d0[4]);
  assert.is(finishes.get(first.id)!.tid, d0[1]);
  const marks = ev.filter((e) => e.ph === "i" && e.cat === "mark");
  assert.is(marks.length, records.filter((x) => x[0] === RecordKind.Mark).length);
});

test("export errors are one line, exit 2: missing trace, unwritable output, nothing asked", () => {
  const missing = tapsim("export", path.join(tmp, "nope.trace"), "--pcap", path.join(tmp, "x.pcapng"));
  assert.is(missing.code, 2);
  assert.match(missing.stderr, /^tapsim: .*nope\.trace: no such file\n$/);
  const unwritable = tapsim("export", JITTER_TRACE, "--perfetto", path.join(tmp, "no/such/dir/x.json"));
  assert.is(unwritable.code, 2);
  assert.match(unwritable.stderr, /^tapsim: .*x\.json: cannot write: no such file.*\n$/);
  const nothing = tapsim("export", JITTER_TRACE);
  assert.is(nothing.code, 2);
  assert.is(nothing.stderr.trimEnd().split("\n").length, 1);
});

test.run();
