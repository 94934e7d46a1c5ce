// The host's side of the guest agent (guest/agent.c): agent messages as complete Ethernet
// frames for a node's management NIC (the backend injects them through the slice gate at
// an exact virtual time, so a command starts at the same instant in every run), and a
// parser of the console text the agent answers with. The protocol is in guest/README.md.

import { createHash } from "node:crypto";
import { buildUdpFrame, ETH_HEADER_BYTES, IPV4_HEADER_BYTES, parseMac, UDP_FRAME_OVERHEAD_BYTES } from "../engine/net/ethernet.js";
import { guestMgmtAddr, hostMgmtAddr } from "./mgmt.js";

export const AGENT_PORT = 5999;
/** One frame's UDP payload (1514 - 42): an agent message is never fragmented. */
export const AGENT_MESSAGE_BYTES_MAX = 1472;
/** Files larger than this are refused by the agent (nofile). */
export const AGENT_FILE_BYTES_MAX = 16 << 20;
export const AGENT_ID_RE = /^[A-Za-z0-9._-]{1,64}$/;
/** Absolute, no whitespace or control characters (the markers are split on spaces). */
const AGENT_PATH_RE = /^\/[^\s\x00-\x1f\x7f]+$/;
const AGENT_PATH_BYTES_MAX = 1024;
/** Source MAC of agent datagrams: locally administered, never a guest's (52:54:00:…) or a node's (02:00:…). */
export const AGENT_HOST_MAC = "02:74:73:00:00:01";
/** Source port of agent datagrams (nothing answers them). */
const AGENT_SRC_PORT = 5998;
/** A console line longer than this is not the agent's (its lines stay under 2 KiB): dropped. */
const LINE_CHARS_MAX = 64 * 1024;

export type AgentMessage =
  | { readonly kind: "run"; readonly id: string; readonly command: string }
  | { readonly kind: "kill"; readonly id: string }
  | { readonly kind: "collect"; readonly guest_path: string };

/** The datagram's text; RangeError for an id, path or size the agent would refuse. */
export function encodeAgentMessage(m: AgentMessage): Buffer {
  let text: string;
  if (m.kind === "collect") {
    if (!AGENT_PATH_RE.test(m.guest_path) || Buffer.byteLength(m.guest_path) > AGENT_PATH_BYTES_MAX) {
      throw new RangeError(`collect ${JSON.stringify(m.guest_path)}: expected an absolute guest path without spaces or control characters, at most ${AGENT_PATH_BYTES_MAX} bytes`);
    }
    text = `collect ${m.guest_path}\n`;
  } else {
    if (!AGENT_ID_RE.test(m.id)) throw new RangeError(`command id ${JSON.stringify(m.id)}: expected 1-64 of A-Z a-z 0-9 . _ -`);
    if (m.kind === "kill") text = `kill ${m.id}\n`;
    else {
      if (m.command === "" || m.command.includes("\0")) throw new RangeError(`command ${m.id}: empty or holding a NUL byte`);
      text = `run ${m.id}\n${m.command}`;
    }
  }
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length > AGENT_MESSAGE_BYTES_MAX) throw new RangeError(`agent message for ${m.kind === "collect" ? m.guest_path : m.id}: ${bytes.length} bytes, at most ${AGENT_MESSAGE_BYTES_MAX}`);
  return bytes;
}

export interface AgentAddress {
  /** First two octets of the management network. */
  readonly mgmt_net: string;
  readonly node: number;
  /** The guest's management NIC (launcher's mgmtMac). */
  readonly guest_mac: string;
}

/**
 * Ethernet/IPv4/UDP from the host's management address <net>.i.1 (a fixed MAC) to the
 * agent at <net>.i.2:5999, IPv4 and UDP checksums filled in.
 */
export function agentFrame(to: AgentAddress, payload: Uint8Array): Uint8Array {
  return udpToAgent(hostMgmtAddr(to.mgmt_net, to.node), guestMgmtAddr(to.mgmt_net, to.node), to.guest_mac, payload);
}

/** A snapshot template's agent, parked before it knows its node: eth0 is 10.255.0.15/24 (guest/init.sh). */
export const TEMPLATE_AGENT_IP = "10.255.0.15";
const TEMPLATE_HOST_IP = "10.255.0.1";

/** A datagram for the parked agent of a snapshot clone (its identity and extra archive), to `guest_mac`, the template's. */
export function templateAgentFrame(guest_mac: string, payload: Uint8Array): Uint8Array {
  return udpToAgent(TEMPLATE_HOST_IP, TEMPLATE_AGENT_IP, guest_mac, payload);
}

function udpToAgent(src_ip: string, dst_ip: string, guest_mac: string, payload: Uint8Array): Uint8Array {
  if (payload.length > AGENT_MESSAGE_BYTES_MAX) throw new RangeError(`agent payload of ${payload.length} bytes`);
  const src = { mac: parseMac(AGENT_HOST_MAC), ip: ipv4(src_ip), port: AGENT_SRC_PORT };
  const dst = { mac: parseMac(guest_mac), ip: ipv4(dst_ip), port: AGENT_PORT };
  const frame = buildUdpFrame(src, dst, payload);
  const sum = udpChecksum(frame);
  frame[UDP_CHECKSUM_AT] = sum >>> 8;
  frame[UDP_CHECKSUM_AT + 1] = sum & 0xff;
  return frame;
}

const UDP_AT = ETH_HEADER_BYTES + IPV4_HEADER_BYTES;
const UDP_CHECKSUM_AT = UDP_AT + 6;

/** RFC 768: ones' complement sum over the pseudo-header and the datagram; 0 is sent as 0xffff. */
export function udpChecksum(frame: Uint8Array): number {
  const udp_bytes = frame.length - UDP_AT;
  let sum = 17 + udp_bytes; // protocol and UDP length of the pseudo-header
  const add16 = (o: number) => (sum += (frame[o]! << 8) | (o + 1 < frame.length ? frame[o + 1]! : 0));
  for (let o = ETH_HEADER_BYTES + 12; o < ETH_HEADER_BYTES + 20; o += 2) add16(o); // addresses
  for (let o = UDP_AT; o < frame.length; o += 2) if (o !== UDP_CHECKSUM_AT) add16(o);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  const out = ~sum & 0xffff;
  return out === 0 ? 0xffff : out;
}

function ipv4(text: string): number {
  const o = text.split(".").map(Number);
  if (o.length !== 4 || !o.every((v) => Number.isInteger(v) && v >= 0 && v <= 255)) throw new RangeError(`not an IPv4 address: ${text}`);
  return ((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0;
}

/** What the agent said, line by line. guest_ns: the guest's TSC (QEMU's virtual clock). */
export type AgentEvent =
  | { readonly kind: "listening" }
  | { readonly kind: "start"; readonly id: string; readonly guest_ns: number }
  | { readonly kind: "exit"; readonly id: string; readonly guest_ns: number; readonly code: number | null; readonly signal: number | null }
  | { readonly kind: "output"; readonly id: string; readonly line: string }
  | { readonly kind: "file"; readonly guest_path: string; readonly bytes: Buffer | null; readonly error: string | null }
  | { readonly kind: "error"; readonly reason: string };

const START_RE = /^tapsim-agent: start ([A-Za-z0-9._-]{1,64}) t=(\d+)$/;
const EXIT_RE = /^tapsim-agent: exit ([A-Za-z0-9._-]{1,64}) (code|signal)=(\d+) t=(\d+)$/;
const OUTPUT_RE = /^\[([A-Za-z0-9._-]{1,64})\] (.*)$/s;
const FILE_RE = /^tapsim-agent: file (\S+) size=(\d+)$/;
const DATA_RE = /^tapsim-agent: data ([A-Za-z0-9+/=]*)$/;
const END_RE = /^tapsim-agent: end (\S+) sha256=([0-9a-f]{64})$/;
const NOFILE_RE = /^tapsim-agent: nofile (\S+) (.*)$/;
const ERROR_RE = /^tapsim-agent: error (.*)$/;

/**
 * Console text in, agent events out. Text arrives in arbitrary pieces (one per slice); a
 * line is parsed once its newline has come. The console turns "\n" into "\r\n".
 */
export class AgentParser {
  private partial = "";
  private file: { guest_path: string; size: number; chunks: Buffer[]; bytes: number } | null = null;

  push(text: string): AgentEvent[] {
    const events: AgentEvent[] = [];
    const lines = (this.partial + text).split("\n");
    this.partial = lines.pop()!;
    if (this.partial.length > LINE_CHARS_MAX) this.partial = "";
    for (const raw of lines) {
      const line = raw.replace(/\r/g, "");
      if (line.length <= LINE_CHARS_MAX) this.parseLine(line, events);
    }
    return events;
  }

  private parseLine(line: string, events: AgentEvent[]): void {
    if (line.startsWith("[")) {
      const m = OUTPUT_RE.exec(line);
      if (m) events.push({ kind: "output", id: m[1]!, line: m[2]! });
      return;
    }
    // A marker may follow another writer's unterminated text on the same line (busybox
    // init's "Please press Enter to activate this console. " has no newline).
    const at = line.indexOf("tapsim-agent: ");
    if (at < 0) return;
    if (at > 0) line = line.slice(at);
    let m: RegExpExecArray | null;
    if ((m = DATA_RE.exec(line))) return this.data(m[1]!, events);
    if ((m = START_RE.exec(line))) events.push({ kind: "start", id: m[1]!, guest_ns: Number(m[2]) });
    else if ((m = EXIT_RE.exec(line))) {
      const n = Number(m[3]);
      events.push({ kind: "exit", id: m[1]!, guest_ns: Number(m[4]), code: m[2] === "code" ? n : null, signal: m[2] === "signal" ? n : null });
    } else if ((m = FILE_RE.exec(line))) this.fileStart(m[1]!, Number(m[2]), events);
    else if ((m = END_RE.exec(line))) this.fileEnd(m[1]!, m[2]!, events);
    else if ((m = NOFILE_RE.exec(line))) this.fileFailed(m[1]!, m[2]!, events);
    else if ((m = ERROR_RE.exec(line))) events.push({ kind: "error", reason: m[1]! });
    else if (line.startsWith("tapsim-agent: listening ")) events.push({ kind: "listening" });
  }

  private fileStart(guest_path: string, size: number, events: AgentEvent[]): void {
    if (this.file !== null) this.fileFailed(this.file.guest_path, "incomplete (a new file began)", events);
    this.file = { guest_path, size, chunks: [], bytes: 0 };
  }

  private data(b64: string, events: AgentEvent[]): void {
    const f = this.file;
    if (f === null) return;
    const chunk = Buffer.from(b64, "base64");
    f.chunks.push(chunk);
    f.bytes += chunk.length;
    if (f.bytes > f.size || f.bytes > AGENT_FILE_BYTES_MAX) this.fileFailed(f.guest_path, `more data than its size ${f.size}`, events);
  }

  private fileEnd(guest_path: string, sha256: string, events: AgentEvent[]): void {
    const f = this.file;
    if (f === null || f.guest_path !== guest_path) return;
    this.file = null;
    const bytes = Buffer.concat(f.chunks, f.bytes);
    let error: string | null = null;
    if (bytes.length !== f.size) error = `${bytes.length} bytes arrived, the agent announced ${f.size}`;
    else if (createHash("sha256").update(bytes).digest("hex") !== sha256) error = "sha256 mismatch (console data damaged)";
    events.push(error === null ? { kind: "file", guest_path, bytes, error: null } : { kind: "file", guest_path, bytes: null, error });
  }

  private fileFailed(guest_path: string, reason: string, events: AgentEvent[]): void {
    if (this.file?.guest_path === guest_path) this.file = null;
    events.push({ kind: "file", guest_path, bytes: null, error: reason });
  }
}

/** For tests and tools: the UDP payload of an agent frame (checks it is one). */
export function agentPayload(frame: Uint8Array): Uint8Array {
  if (frame.length < UDP_FRAME_OVERHEAD_BYTES) throw new RangeError("too short for an agent frame");
  return frame.subarray(UDP_FRAME_OVERHEAD_BYTES);
}
