// A VM-like trace without booting a VM: the real engine runs scripted backends that print
// on their consoles and exchange management frames besides their simulated frames, and a
// TraceWriter records it. The trace therefore replays (and the debugger re-executes it)
// exactly like a VM run's, with guest_output, mgmt_in and mgmt_out records in it.

import type { NodeBackend, SliceOutput, SliceRequest, SliceResult } from "../../engine/backend.js";
import { makeRunConfig, createEngine } from "../../engine/run.js";
import type { TraceHeader, TraceRecord } from "../../engine/trace_records.js";
import { VIRTUAL_NS_NEVER } from "../../engine/units.js";
import { FORMAT_VERSION } from "../../recorder/format.js";
import { TraceReader } from "../../recorder/reader.js";
import { TraceWriter } from "../../recorder/writer.js";
import { udpTo, uniformTopology } from "./engine_fixtures.js";

export const GUEST_NODES = 3;
export const GUEST_LATENCY_MS = 5;
const MS = 1_000_000;

/** Ethernet + IPv4 + TCP header (no payload) between two addresses: what SSH on the management NIC looks like. */
export function tcpFrame(src_mac: number, dst_mac: number, src_ip: number, dst_ip: number, src_port: number, dst_port: number, flags: number): Uint8Array {
  const b = new Uint8Array(14 + 20 + 20);
  const v = new DataView(b.buffer);
  v.setUint16(0, dst_mac / 2 ** 32);
  v.setUint32(2, dst_mac >>> 0);
  v.setUint16(6, src_mac / 2 ** 32);
  v.setUint32(8, src_mac >>> 0);
  v.setUint16(12, 0x0800);
  b[14] = 0x45;
  v.setUint16(16, 40); // total length
  b[22] = 64; // ttl
  b[23] = 6; // TCP
  v.setUint32(26, src_ip);
  v.setUint32(30, dst_ip);
  v.setUint16(34, src_port);
  v.setUint16(36, dst_port);
  v.setUint32(38, 1000); // seq
  b[46] = 5 << 4; // data offset
  b[47] = flags;
  v.setUint16(48, 64240); // window
  return b;
}

const HOST_MAC = 0x525400123502;
const GUEST_MGMT_MAC = 0x525400123456;
const HOST_IP = (10 << 24) | (0 << 16) | (2 << 8) | 2;
const GUEST_MGMT_IP = (10 << 24) | (0 << 16) | (2 << 8) | 15;
/** The management frames of the script: the host opens SSH to node 1, node 1 answers. */
export const MGMT_SYN = tcpFrame(HOST_MAC, GUEST_MGMT_MAC, HOST_IP >>> 0, GUEST_MGMT_IP >>> 0, 40000, 22, 0x02);
export const MGMT_SYN_ACK = tcpFrame(GUEST_MGMT_MAC, HOST_MAC, GUEST_MGMT_IP >>> 0, HOST_IP >>> 0, 22, 40000, 0x12);

/** Node 1 prints this once node 0's ping reached it: ANSI escapes and a DEL, as consoles do. */
export const PING_LINE = "got ping from 10.0.0.1 \u001b[1mok\u001b[0m\u007f\r\n";

/**
 * What each node does, by virtual time. Node 0 pings node 1 at 2 ms, node 1 prints and
 * answers at 8 ms (after the 5 ms flight), node 0 prints the pong; node 1 takes an SSH SYN on
 * its management NIC and answers it; node 2 prints one line in two pieces.
 */
export function guestScript(variant = ""): SliceOutput[][] {
  return [
    [
      { kind: "guest_output", t_ns: 0, text: "Booting n0\r\n" },
      { kind: "emit", t_ns: 2 * MS, bytes: udpTo(0, 1, 16, 1) },
      { kind: "guest_output", t_ns: 14 * MS, text: `got pong from 10.0.0.2${variant}\r\n` },
    ],
    [
      { kind: "guest_output", t_ns: 0, text: "Booting n1\r\n" },
      { kind: "mgmt_in", t_ns: 3 * MS, bytes: MGMT_SYN },
      { kind: "mgmt_out", t_ns: 3 * MS + 200_000, bytes: MGMT_SYN_ACK },
      { kind: "guest_output", t_ns: 7 * MS + 500_000, text: PING_LINE },
      { kind: "emit", t_ns: 8 * MS, bytes: udpTo(1, 0, 16, 2) },
    ],
    [
      { kind: "guest_output", t_ns: 0, text: "Booting n2\r\n" },
      { kind: "guest_output", t_ns: 4 * MS, text: "READY: serv" },
      { kind: "guest_output", t_ns: 6 * MS, text: "ice up\r\nlogin: " },
    ],
  ];
}

/** Plays its script: every output due in the slice, then sleeps until the next one. */
class ScriptedGuest implements NodeBackend {
  readonly kind = "inprocess" as const;
  constructor(private readonly script: readonly SliceOutput[]) {}

  runSlice(request: SliceRequest): SliceResult {
    const outputs = this.script.filter((o) => o.t_ns >= request.start_ns && o.t_ns < request.end_ns);
    const next = this.script.find((o) => o.t_ns >= request.end_ns);
    return { end_ns: request.end_ns, wake_ns: next === undefined ? VIRTUAL_NS_NEVER : next.t_ns, outputs };
  }
}

export function guestHeader(): TraceHeader {
  const config = makeRunConfig({ topology: uniformTopology(GUEST_NODES, GUEST_LATENCY_MS), workload: null, seed: 7, until_ns: null, backend: "vm" });
  return { format: "tapsim-trace", format_version: FORMAT_VERSION, tapsim_version: "0.0.0-test", created_at: "2026-01-02T03:04:05.000Z", config };
}

/** Runs the script through the engine into `file`; returns the records as read back. */
export async function writeGuestTrace(file: string, variant = ""): Promise<TraceRecord[]> {
  const header = guestHeader();
  const writer = TraceWriter.create(file, header);
  const engine = createEngine(header.config, guestScript(variant).map((s) => new ScriptedGuest(s)), writer);
  await engine.run();
  writer.close();
  const reader = TraceReader.open(file);
  try {
    return [...reader.records()];
  } finally {
    reader.close();
  }
}
