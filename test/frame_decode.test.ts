// The frame decoder against hand-built frames, and against a real decoder: the same frames
// written to a pcap and read back by tshark must give the same addresses, ports and types.

import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { buildUdpFrame, nodeIpv4, nodeMac } from "../engine/net/ethernet.js";
import { decodeFrame, hexDump } from "../recorder/frame_decode.js";
import { arpRequest, icmpEcho } from "./helpers/netns.js";

const dir = mkdtempSync(path.join(tmpdir(), "tapsim-decode-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function tcpSyn(): Uint8Array {
  const f = new Uint8Array(14 + 20 + 24);
  f.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00], 0);
  f.set([0x45, 0, 0, 44, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2], 14);
  const t = 34;
  f.set([0xc3, 0x50, 0x00, 0x16], t); // 50000 -> 22
  f.set([0, 0, 0x10, 0], t + 4); // seq 4096
  f[t + 12] = 6 << 4; // 24-byte header (4 bytes of options)
  f[t + 13] = 0x02; // SYN
  f.set([0xfa, 0xf0], t + 14); // window 64240
  f.set([2, 4, 5, 0xb4], t + 20); // MSS 1460
  return f;
}

const udp = buildUdpFrame({ mac: nodeMac(0), ip: nodeIpv4(0), port: 4000 }, { mac: nodeMac(1), ip: nodeIpv4(1), port: 5000 }, new Uint8Array(42));
const frames = [arpRequest("02:00:00:00:00:00", "10.0.0.1", "10.0.0.2"), icmpEcho("02:00:00:00:00:00", "02:00:00:00:00:01", "10.0.0.1", "10.0.0.2", 3), udp, tcpSyn()];

test("one-liners and fields for ARP, ICMP, UDP and TCP", () => {
  const [arp, icmp, u, tcp] = frames.map(decodeFrame);
  assert.is(arp!.summary, "ARP, Request who-has 10.0.0.2 tell 10.0.0.1, length 28");
  assert.is(arp!.protocol, "arp");
  assert.is(icmp!.summary, "10.0.0.1 > 10.0.0.2: ICMP echo request, id 4660, seq 3, length 40");
  assert.is(u!.summary, "10.0.0.1.4000 > 10.0.0.2.5000: UDP, length 42");
  assert.equal([u!.src_port, u!.dst_port, u!.payload_offset], [4000, 5000, 42]);
  assert.is(tcp!.summary, "10.0.0.1.50000 > 10.0.0.2.22: Flags [S], seq 4096, win 64240, length 0");
  assert.equal(tcp!.layers.map((l) => l.name), ["Ethernet II", "IPv4", "TCP"]);
  assert.is(u!.dst_mac, "02:00:00:00:00:01");
});

test("truncated and odd frames decode as far as they go and say why, never throw", () => {
  assert.is(decodeFrame(new Uint8Array(5)).summary, "Ethernet truncated: 5 of 14 header bytes");
  assert.is(decodeFrame(udp.subarray(0, 20)).summary, "IPv4 truncated: 6 of 20 header bytes");
  assert.match(decodeFrame(udp.subarray(0, 38)).summary, /UDP truncated: 4 of 8 header bytes/);
  assert.is(decodeFrame(frames[0]!.subarray(0, 30)).protocol, "malformed");
  for (let seed = 1; seed < 2000; seed++) {
    const f = new Uint8Array(seed % 90);
    for (let i = 0; i < f.length; i++) f[i] = (seed * 7919 + i * 104729) & 0xff;
    if (f.length >= 14) f[12] = [0x08, 0x86, 0x08][seed % 3]!, (f[13] = [0x00, 0xdd, 0x06][seed % 3]!);
    assert.type(decodeFrame(f).summary, "string");
  }
});

test("agrees with tshark on addresses, ports, protocols and ICMP/TCP/ARP fields", () => {
  const pcap = path.join(dir, "frames.pcap");
  const parts: Uint8Array[] = [];
  const global = new DataView(new ArrayBuffer(24));
  global.setUint32(0, 0xa1b2c3d4, true);
  global.setUint16(4, 2, true);
  global.setUint16(6, 4, true);
  global.setUint32(16, 65535, true);
  global.setUint32(20, 1, true);
  parts.push(new Uint8Array(global.buffer));
  frames.forEach((f, i) => {
    const h = new DataView(new ArrayBuffer(16));
    h.setUint32(0, i, true);
    h.setUint32(8, f.length, true);
    h.setUint32(12, f.length, true);
    parts.push(new Uint8Array(h.buffer), f);
  });
  writeFileSync(pcap, Buffer.concat(parts));
  const fields = ["eth.src", "eth.dst", "ip.src", "ip.dst", "arp.src.proto_ipv4", "arp.dst.proto_ipv4", "udp.srcport", "udp.dstport", "tcp.srcport", "tcp.dstport", "icmp.type", "icmp.seq"];
  const out = execFileSync("tshark", ["-r", pcap, "-T", "fields", ...fields.flatMap((f) => ["-e", f])], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  const rows = out.trim().split("\n").map((l) => l.split("\t"));
  assert.is(rows.length, frames.length);
  frames.forEach((f, i) => {
    const d = decodeFrame(f);
    const r = Object.fromEntries(fields.map((name, k) => [name, rows[i]![k] ?? ""]));
    assert.is(d.src_mac, r["eth.src"]);
    assert.is(d.dst_mac, r["eth.dst"]);
    assert.is(d.src_ip, r["ip.src"] || r["arp.src.proto_ipv4"]);
    assert.is(d.dst_ip, r["ip.dst"] || r["arp.dst.proto_ipv4"]);
    const ports = r["udp.srcport"] ? [r["udp.srcport"], r["udp.dstport"]] : r["tcp.srcport"] ? [r["tcp.srcport"], r["tcp.dstport"]] : ["", ""];
    assert.equal([d.src_port === undefined ? "" : String(d.src_port), d.dst_port === undefined ? "" : String(d.dst_port)], ports);
    if (r["icmp.type"]) assert.ok(d.layers.at(-1)!.fields.some(([k, v]) => k === "type" && v.startsWith(`${r["icmp.type"]} `)));
    if (r["icmp.seq"]) assert.match(d.summary, new RegExp(`seq ${r["icmp.seq"]},`));
  });
});

test("hexDump shows offset, hex and ASCII, and says how much it left out", () => {
  const dump = hexDump(new TextEncoder().encode("tapsim frame decoder!"), 16);
  assert.is(dump.split("\n")[0], "0000  74 61 70 73 69 6d 20 66 72 61 6d 65 20 64 65 63  tapsim frame dec");
  assert.is(dump.split("\n")[1], "... 5 more bytes");
});

test.run();
