// Exports read back by real tools: tshark opens the pcapng (one interface per node, exact
// nanosecond virtual timestamps, direction flags, drops with comments, decoded fields), and
// the Perfetto JSON parses with one track per node, every slice and a flow per delivery.

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { RecordKind } from "../engine/trace_records.js";
import { formatVirtualNs } from "../engine/units.js";
import { consoleTitle } from "../recorder/export_perfetto.js";
import { decodeFrame } from "../recorder/frame_decode.js";
import { TraceReader } from "../recorder/reader.js";
import { REPO_ROOT, tapsim } from "./helpers/cli.js";
import { GUEST_NODES, PING_LINE, writeGuestTrace } from "./helpers/guest_trace.js";

const dir = mkdtempSync(path.join(tmpdir(), "tapsim-export-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

interface Expected {
  iface: string;
  t: string;
  direction: string;
  src_ip: string;
  comment: string;
}

/**
 * What tshark should print per packet, derived from the trace records: by default each
 * delivery on the receiver's interface and each drop on the sender's; with both_ends also
 * each send on the sender's and drops on the receiver's. In time order (ties: record order).
 */
function expectedPackets(trace: string, both_ends = false): Expected[] {
  const reader = TraceReader.open(trace);
  const names = reader.header.config.nodes.map((n) => n.name);
  const bytes = new Map<number, Uint8Array>();
  const out: (Expected & { t_ns: number })[] = [];
  const t = (ns: number) => formatVirtualNs(ns).replace(/s$/, "");
  const add = (iface: number, t_ns: number, direction: number, frame: Uint8Array, comment: string) =>
    out.push({ iface: names[iface]!, t: t(t_ns), t_ns, direction: `0x0000000${direction}`, src_ip: decodeFrame(frame).src_ip ?? "", comment });
  for (const r of reader.records()) {
    if (r[0] === RecordKind.FrameEmit) {
      bytes.set(r[3], r[4]);
      if (both_ends) add(r[1], r[2], 2, r[4], "");
    } else if (r[0] === RecordKind.FrameDeliver) {
      add(r[1], r[2], 1, bytes.get(r[3])!, "");
    } else if (r[0] === RecordKind.FrameDrop) {
      const [, to, t_ns, frame_id, from, reason] = r;
      if (both_ends) add(to >= 0 ? to : from, t_ns, 1, bytes.get(frame_id)!, `tapsim drop: ${reason}`);
      else add(from, t_ns, 2, bytes.get(frame_id)!, `tapsim drop: ${reason}, to ${to >= 0 ? names[to] : "no one"}`);
    }
  }
  reader.close();
  // Array.prototype.sort is stable: equal times keep the trace's order.
  return out.sort((a, b) => a.t_ns - b.t_ns).map(({ t_ns: _, ...p }) => p);
}

function tsharkPackets(pcap: string): Expected[] {
  const fields = ["frame.interface_name", "frame.time_epoch", "frame.packet_flags_direction", "ip.src", "frame.comment"];
  const text = execFileSync("tshark", ["-r", pcap, "-T", "fields", "-E", "occurrence=f", ...fields.flatMap((f) => ["-e", f])], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], maxBuffer: 256 << 20 });
  return text.trimEnd().split("\n").map((line) => {
    const [iface, t, direction, src_ip, comment] = line.split("\t");
    return { iface: iface!, t: t!, direction: direction!, src_ip: src_ip ?? "", comment: comment ?? "" };
  });
}

test("pcapng of an example trace: by default each frame once, on the receiver's interface at its delivery, in time order; --pcap-both-ends adds each send", () => {
  const trace = path.join(REPO_ROOT, "traces/bracha_3x3.trace");
  const pcap = path.join(dir, "b.pcapng");
  const r = tapsim("export", trace, "--pcap", pcap);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^pcapng: .*: 210 packets \(210 sent, 210 delivered, 0 dropped; each frame once, at delivery\), timestamps virtual time\n$/);
  const want = expectedPackets(trace);
  assert.is(want.length, 210);
  const got = tsharkPackets(pcap);
  assert.equal(got, want);
  assert.ok(got.every((p) => p.direction === "0x00000001"), "every packet is a delivery (inbound)");
  assertTimeOrdered(got.map((p) => p.t));
  const ifaces = execFileSync("tshark", ["-r", pcap, "-T", "fields", "-e", "frame.interface_name"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  assert.equal([...new Set(ifaces.trim().split("\n"))].sort(), ["n0", "n1", "n2"]);
  const both = path.join(dir, "b2.pcapng");
  const r2 = tapsim("export", trace, "--pcap", both, "--pcap-both-ends");
  assert.is(r2.code, 0, r2.stderr);
  assert.match(r2.stdout, /: 420 packets \(210 sent, 210 delivered, 0 dropped; each frame at send and at delivery\)/);
  const got_both = tsharkPackets(both);
  assert.equal(got_both, expectedPackets(trace, true));
  assertTimeOrdered(got_both.map((p) => p.t));
});

test("pcapng of a run with queue drops: each drop once, on the sender's interface, with its reason and receiver as a comment", () => {
  const trace = path.join(dir, "auction.trace");
  const run = tapsim("run", "--latency", "latency_configs/auction_10.yaml", "--payload-bytes", "1200", "--messages", "3", "--trace", trace, "--json");
  assert.is(run.code, 0, run.stderr);
  const pcap = path.join(dir, "a.pcapng");
  assert.is(tapsim("export", trace, "--pcap", pcap).code, 0);
  const want = expectedPackets(trace);
  const got = tsharkPackets(pcap);
  const drops = got.filter((p) => p.comment !== "");
  assert.ok(drops.length > 0, "the run dropped frames");
  for (const d of drops) assert.match(d.comment, /^tapsim drop: queue_full, to \S+$/);
  assert.ok(drops.every((d) => d.direction === "0x00000002"), "a drop is shown where it was sent (outbound)");
  assert.equal(got, want);
  assertTimeOrdered(got.map((p) => p.t));
  const both = path.join(dir, "a2.pcapng");
  assert.is(tapsim("export", trace, "--pcap", both, "--pcap-both-ends").code, 0);
  assert.equal(tsharkPackets(both), expectedPackets(trace, true));
});

test("Perfetto JSON: a named track per node, every slice, a flow per delivery with matching ends", () => {
  const trace = path.join(REPO_ROOT, "traces/bracha_aws9.trace");
  const json = path.join(dir, "p.json");
  assert.is(tapsim("export", trace, "--perfetto", json).code, 0);
  const doc = JSON.parse(readFileSync(json, "utf8")) as { traceEvents: Array<Record<string, unknown>> };
  const ev = doc.traceEvents;
  const reader = TraceReader.open(trace);
  let slices = 0;
  let deliveries = 0;
  for (const r of reader.records()) {
    if (r[0] === RecordKind.SliceEnd) slices++;
    if (r[0] === RecordKind.FrameDeliver) deliveries++;
  }
  const nodes = reader.header.config.nodes.map((n) => n.name);
  reader.close();
  assert.equal(ev.filter((e) => e.name === "thread_name").map((e) => (e.args as { name: string }).name), nodes);
  assert.is(ev.filter((e) => e.ph === "X").length, slices);
  const starts = new Map(ev.filter((e) => e.ph === "s").map((e) => [e.id, e]));
  const ends = ev.filter((e) => e.ph === "f");
  assert.is(starts.size, deliveries);
  assert.is(ends.length, deliveries);
  for (const f of ends) {
    const s = starts.get(f.id)!;
    assert.ok(s && (f.ts as number) >= (s.ts as number), `flow ${String(f.id)} ends after it starts`);
  }
});

test("Perfetto JSON of a VM-like trace: console output on the node's track, management frames on a per-node mgmt track", async () => {
  const trace = path.join(dir, "guest.trace");
  const records = await writeGuestTrace(trace);
  const json = path.join(dir, "g.json");
  const r = tapsim("export", trace, "--perfetto", json);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /\(5 slices, 2 frame flows, 7 console outputs, 2 management frames\)/);
  const ev = (JSON.parse(readFileSync(json, "utf8")) as { traceEvents: Array<Record<string, unknown>> }).traceEvents;
  const us = (ns: number) => ns / 1000;
  const outputs = records.filter((x) => x[0] === RecordKind.GuestOutput);
  const console_events = ev.filter((e) => e.cat === "console");
  assert.equal(
    console_events.map((e) => [e.ph, e.tid, e.ts, e.name, (e.args as { text: string }).text]),
    outputs.map((x) => ["i", x[1], us(x[2]), consoleTitle(x[3] as string), x[3]]),
  );
  assert.is(consoleTitle(PING_LINE), "console: got ping from 10.0.0.1 ok", "ANSI escapes and DEL left out of the name");
  const track = ev.find((e) => e.name === "thread_name" && (e.args as { name: string }).name === "n1 mgmt");
  assert.ok(track, "node 1 has a management track");
  assert.is(track!.tid, GUEST_NODES + 1, "apart from every node's own track");
  assert.is(ev.filter((e) => e.name === "thread_name").length, GUEST_NODES + 1, "no management track for nodes without management frames");
  const mgmt = records.filter((x) => x[0] === RecordKind.MgmtIn || x[0] === RecordKind.MgmtOut);
  assert.equal(
    ev.filter((e) => e.cat === "mgmt").map((e) => [e.ph, e.tid, e.ts, e.name]),
    mgmt.map((x) => ["i", GUEST_NODES + 1, us(x[2]), `mgmt ${x[0] === RecordKind.MgmtIn ? "in" : "out"}: ${decodeFrame(x[3] as Uint8Array).summary}`]),
  );
  assert.is(ev.filter((e) => e.ph === "s").length, 2, "management frames have no flow arrows");
});

test("export errors are one line: no output chosen, missing trace, unwritable output, --pcap-both-ends alone", () => {
  assert.match(tapsim("export", "traces/bracha_3x3.trace").stderr, /^tapsim: tapsim export: give --pcap FILE and\/or --perfetto FILE\n$/);
  const alone = tapsim("export", "traces/bracha_3x3.trace", "--perfetto", path.join(dir, "x.json"), "--pcap-both-ends");
  assert.is(alone.code, 2);
  assert.match(alone.stderr, /^tapsim: tapsim export: --pcap-both-ends needs --pcap FILE\n$/);
  const missing = tapsim("export", "nope.trace", "--pcap", path.join(dir, "x.pcapng"));
  assert.is(missing.code, 2);
  assert.match(missing.stderr, /^tapsim: nope\.trace: .*\n$/);
  const unwritable = tapsim("export", "traces/bracha_3x3.trace", "--pcap", "/nonexistent-dir/x.pcapng");
  assert.is(unwritable.code, 2);
  assert.match(unwritable.stderr, /^tapsim: \/nonexistent-dir\/x\.pcapng: /);
});

/** tshark's epoch times ("s.nnnnnnnnn") never go back. */
export function assertTimeOrdered(times: string[]): void {
  const ns = times.map((t) => BigInt(t.replace(".", "")));
  for (let i = 1; i < ns.length; i++) assert.ok(ns[i]! >= ns[i - 1]!, `packet ${i + 1} at ${times[i]} comes after one at ${times[i - 1]}`);
}

test.run();
