// The reference's TCP mesh, as the in-process Bracha model's "tcp_like" transport: what
// makes the reference program slower than one datagram per message, modelled with a few
// control frames instead of a TCP stack (docs/bracha.md measures how close it comes).
//
// - Setup: node i listens after `startup_ns`, then dials every j > i in turn. A dial costs an
//   ARP round trip (the first packet to a peer waits for its address; the request goes to
//   every node, and Linux takes the sender's address from any request it hears when it is
//   itself waiting for that address: a dial to a peer that is asking about someone else at
//   the time is answered sooner, as in the guests) and a SYN round trip;
//   a SYN reaching a node not listening yet is refused and retried 500 ms later, as the
//   reference's program does. A node starts broadcasting once all its N-1 connections are up
//   (its dials done, the others' handshakes completed); data that arrives before then waits.
// - Nagle (no TCP_NODELAY): per direction, a message written while an earlier segment is
//   unacknowledged waits; when the ACK comes, everything waiting leaves as one segment. The
//   receiver acknowledges every segment at once. Linux does so at a connection's start and
//   when a reply carries the ACK, but otherwise it may wait for its 40 ms delayed-ACK timer
//   (its quick-ack and ping-pong heuristics decide): not modelled. That is most of what the
//   model misses at 9 nodes (docs/bracha.md).
// Not modelled: retransmission (links here are lossless unless a fault says otherwise: a
// lost frame stalls its link for good), windows, the guests' CPU time.

import { nodeIpv4, nodeMac, udpHeaders, udpPayloadOffset, ETH_FRAME_BYTES_MAX, UDP_FRAME_OVERHEAD_BYTES } from "../../engine/net/ethernet.js";
import { FrameSlab } from "../../engine/net/frame_slab.js";
import type { NodeContext } from "./backend.js";

export const TCP_DIAL_RETRY_NS = 500_000_000;
/** Measured in the default guest: from the clock read before the Go program starts to its first frame. */
export const TCP_STARTUP_NS_DEFAULT = 4_000_000;
export const TCP_FRAME_MAGIC = 0x54; // 'T': never a UDP-model message (those start with 'B')
const SEGMENT_HEADER_BYTES = 2;
const ARP_TARGET_BYTES = 2;
const SEGMENT_PAYLOAD_BYTES_MAX = ETH_FRAME_BYTES_MAX - UDP_FRAME_OVERHEAD_BYTES - SEGMENT_HEADER_BYTES;

const enum Ctl {
  ArpRequest = 1,
  ArpReply = 2,
  Syn = 3,
  SynAck = 4,
  HandshakeAck = 5,
  Reset = 6,
  Data = 7,
  Ack = 8,
}

export interface TcpMeshHost {
  /** Every connection of this node is up: the program starts its protocol. */
  ready(ctx: NodeContext): void;
  /** One message from a peer, in order, once the node is ready. */
  message(ctx: NodeContext, from: number, msg: Uint8Array): void;
}

export class TcpMesh {
  private readonly slab = new FrameSlab();
  private readonly link_up: Uint8Array;
  private readonly arp_known: Uint8Array;
  private readonly inflight: Uint8Array;
  private readonly pending: Uint8Array[][];
  private listening = false;
  private dial_next: number;
  private dialing_done = false;
  private links_up = 0;
  private is_ready = false;
  /** Messages that arrived before the program was done connecting. */
  private backlog: { from: number; msg: Uint8Array }[] = [];
  malformed_frames = 0;

  constructor(
    private readonly id: number,
    private readonly n: number,
    private readonly msg_bytes: number,
    private readonly host: TcpMeshHost,
  ) {
    this.link_up = new Uint8Array(n);
    this.arp_known = new Uint8Array(n);
    this.inflight = new Uint8Array(n);
    this.pending = Array.from({ length: n }, () => []);
    this.dial_next = id + 1;
    if (msg_bytes > SEGMENT_PAYLOAD_BYTES_MAX) throw new RangeError(`message of ${msg_bytes} bytes exceeds a segment`);
  }

  get ready(): boolean {
    return this.is_ready;
  }

  /** The program starts: it listens, then dials. */
  start(ctx: NodeContext): void {
    this.listening = true;
    this.dial(ctx);
  }

  /** The dial retry timer fired: SYN again (the address is known by now). */
  retryDial(ctx: NodeContext): void {
    this.control(ctx, this.dial_next, Ctl.Syn);
  }

  /** A message to a peer: out now, or held by Nagle until the link's segment is acknowledged. */
  send(ctx: NodeContext, to: number, msg: Uint8Array): void {
    if (this.link_up[to] !== 1) throw new Error(`node ${this.id}: send to ${to} before its connection is up`);
    if (this.inflight[to] === 1) this.pending[to]!.push(msg);
    else this.segment(ctx, to, [msg]);
  }

  /** Returns false when the frame is not one of ours (the caller counts it malformed). */
  onFrame(ctx: NodeContext, frame: Uint8Array): boolean {
    const o = udpPayloadOffset(frame);
    if (o < 0 || frame.length - o < SEGMENT_HEADER_BYTES || frame[o] !== TCP_FRAME_MAGIC) return false;
    const from = peerOf(frame);
    if (from < 0 || from >= this.n || from === this.id) return false;
    const kind = frame[o + 1]!;
    if (kind === Ctl.Data) this.onData(ctx, from, frame.subarray(o + SEGMENT_HEADER_BYTES));
    else if (kind === Ctl.Ack) this.onAck(ctx, from);
    else if (kind === Ctl.ArpRequest) this.onArpRequest(ctx, from, frame, o);
    else if (kind === Ctl.ArpReply) this.onArpReply(ctx, from);
    else if (kind === Ctl.Syn) this.control(ctx, from, this.listening ? Ctl.SynAck : Ctl.Reset);
    else if (kind === Ctl.SynAck) this.onSynAck(ctx, from);
    else if (kind === Ctl.HandshakeAck) this.linkUp(ctx, from);
    else if (kind === Ctl.Reset) this.onReset(ctx, from);
    else return false;
    return true;
  }

  private dial(ctx: NodeContext): void {
    if (this.dial_next >= this.n) {
      this.dialing_done = true;
      this.checkReady(ctx);
      return;
    }
    if (this.arp_known[this.dial_next] === 1) this.control(ctx, this.dial_next, Ctl.Syn);
    else this.arpRequest(ctx, this.dial_next);
  }

  /** A broadcast: one frame to every other node, naming the node asked about. */
  private arpRequest(ctx: NodeContext, target: number): void {
    for (let k = 0; k < this.n; k++) {
      if (k === this.id) continue;
      const frame = this.frame(k, Ctl.ArpRequest, ARP_TARGET_BYTES);
      frame[UDP_FRAME_OVERHEAD_BYTES + SEGMENT_HEADER_BYTES] = target >>> 8;
      frame[UDP_FRAME_OVERHEAD_BYTES + SEGMENT_HEADER_BYTES + 1] = target & 0xff;
      ctx.send(frame);
    }
  }

  /**
   * Asked about us: the kernel answers (whether or not the program runs yet) and learns the
   * asker's address. Asked about another: only a node waiting for the asker's address learns it.
   */
  private onArpRequest(ctx: NodeContext, from: number, frame: Uint8Array, o: number): void {
    const target = (frame[o + SEGMENT_HEADER_BYTES]! << 8) | frame[o + SEGMENT_HEADER_BYTES + 1]!;
    if (target === this.id) {
      this.arp_known[from] = 1;
      this.control(ctx, from, Ctl.ArpReply);
      return;
    }
    if (this.listening && from === this.dial_next && !this.dialing_done && this.arp_known[from] === 0) this.onArpReply(ctx, from);
  }

  private onArpReply(ctx: NodeContext, from: number): void {
    if (this.arp_known[from] === 1) return; // resolved already, by a request we heard
    this.arp_known[from] = 1;
    if (from === this.dial_next && !this.dialing_done) this.control(ctx, from, Ctl.Syn);
  }

  private onSynAck(ctx: NodeContext, from: number): void {
    if (from !== this.dial_next) return;
    this.control(ctx, from, Ctl.HandshakeAck);
    this.linkUp(ctx, from);
    this.dial_next += 1;
    this.dial(ctx);
  }

  private onReset(ctx: NodeContext, from: number): void {
    ctx.mark(`bracha tcp dial refused by ${from}: retry in 500 ms`);
    ctx.setTimer(ctx.now_ns + TCP_DIAL_RETRY_NS, TIMER_DIAL_RETRY);
  }

  private linkUp(ctx: NodeContext, peer: number): void {
    if (this.link_up[peer] === 1) return;
    this.link_up[peer] = 1;
    this.links_up += 1;
    this.checkReady(ctx);
  }

  private checkReady(ctx: NodeContext): void {
    if (this.is_ready || !this.dialing_done || this.links_up < this.n - 1) return;
    this.is_ready = true;
    ctx.mark(`bracha tcp connected to ${this.n - 1} peers`);
    this.host.ready(ctx);
    const backlog = this.backlog;
    this.backlog = [];
    for (const { from, msg } of backlog) this.host.message(ctx, from, msg);
  }

  /** The kernel acknowledges a segment at once, whether or not the program reads yet. */
  private onData(ctx: NodeContext, from: number, payload: Uint8Array): void {
    this.control(ctx, from, Ctl.Ack);
    if (payload.length % this.msg_bytes !== 0) {
      this.malformed_frames += 1;
      return;
    }
    for (let k = 0; k < payload.length; k += this.msg_bytes) {
      const msg = payload.subarray(k, k + this.msg_bytes);
      if (this.is_ready) this.host.message(ctx, from, msg);
      else this.backlog.push({ from, msg: msg.slice() });
    }
  }

  private onAck(ctx: NodeContext, from: number): void {
    this.inflight[from] = 0;
    const waiting = this.pending[from]!;
    if (waiting.length === 0) return;
    this.pending[from] = [];
    this.segment(ctx, from, waiting);
  }

  /** Messages as back-to-back segments of at most one frame each; the link then waits for an ACK. */
  private segment(ctx: NodeContext, to: number, msgs: readonly Uint8Array[]): void {
    const per_frame = Math.floor(SEGMENT_PAYLOAD_BYTES_MAX / this.msg_bytes);
    for (let first = 0; first < msgs.length; first += per_frame) {
      const batch = msgs.slice(first, first + per_frame);
      const frame = this.frame(to, Ctl.Data, batch.length * this.msg_bytes);
      let o = UDP_FRAME_OVERHEAD_BYTES + SEGMENT_HEADER_BYTES;
      for (const msg of batch) {
        frame.set(msg, o);
        o += msg.length;
      }
      ctx.send(frame);
    }
    this.inflight[to] = 1;
  }

  private control(ctx: NodeContext, to: number, kind: Ctl): void {
    ctx.send(this.frame(to, kind, 0));
  }

  private frame(to: number, kind: Ctl, body_bytes: number): Uint8Array {
    const payload_bytes = SEGMENT_HEADER_BYTES + body_bytes;
    const frame = this.slab.alloc(UDP_FRAME_OVERHEAD_BYTES + payload_bytes);
    udpHeaders({ mac: nodeMac(this.id), ip: nodeIpv4(this.id), port: TCP_PORT }, { mac: nodeMac(to), ip: nodeIpv4(to), port: TCP_PORT }, payload_bytes, frame);
    frame[UDP_FRAME_OVERHEAD_BYTES] = TCP_FRAME_MAGIC;
    frame[UDP_FRAME_OVERHEAD_BYTES + 1] = kind;
    return frame;
  }
}

/** The reference's port (the UDP model's frames use BRACHA_PORT). */
export const TCP_PORT = 42512;
export const TIMER_TCP_START = 2;
export const TIMER_DIAL_RETRY = 3;

/** The sender's node id, from its IPv4 source address (nodeIpv4: 10.0.0.(id+1) and up). */
function peerOf(frame: Uint8Array): number {
  const src = ((frame[26]! << 24) | (frame[27]! << 16) | (frame[28]! << 8) | frame[29]!) >>> 0;
  return src - nodeIpv4(0);
}
