// Bracha's reliable broadcast (Bracha 1987) as an in-process node, as in the reference
// experiment: N nodes tolerate f < N/3 faults; each node broadcasts M messages one after
// another, waiting until it has itself delivered its current message before sending the next.
// Messages travel as real Ethernet/IPv4/UDP frames, one unicast frame per peer.
//
// Per instance (origin, seq): on INITIAL send ECHO; on ceil((N+f+1)/2) ECHOs or f+1 READYs
// send READY (once); on 2f+1 READYs deliver. A node's own messages count without the network.
//
// Two options bring the model closer to the reference program (docs/bracha.md): `rules:
// reference` takes its thresholds and vote rules (f = N/3, Ready at ECHO >= floor((N+f)/2),
// ECHO and READY at f+1 READYs, delivery at 2f+1; the originator does not echo its own
// INITIAL; thresholds are checked only when a message of that kind arrives), and `transport:
// tcp_like` its TCP mesh (bracha_tcp.ts: sequential connection setup, Nagle). Both absent:
// the textbook rules over UDP, and a config (and trace) without those fields, as before.

import type { Delivery } from "../../engine/backend.js";
import { InputError } from "../../engine/errors.js";
import { nodeIpv4, nodeMac, udpHeaders, udpPayloadOffsetIn, UDP_FRAME_OVERHEAD_BYTES } from "../../engine/net/ethernet.js";
import type { NodeContext, ProtocolNode } from "./backend.js";
import { TcpMesh, TCP_STARTUP_NS_DEFAULT, TIMER_DIAL_RETRY, TIMER_TCP_START } from "./bracha_tcp.js";

export const BRACHA_PORT = 4000;
const MSG_INITIAL = 1;
const MSG_ECHO = 2;
const MSG_READY = 3;
const MSG_MAGIC = 0x42; // 'B'
const MSG_HEADER_BYTES = 8;
const SENT_ECHO = 1;
const SENT_READY = 2;
const DELIVERED = 4;
const TIMER_START = 1;
/** Bound on N * M so per-instance counters stay within memory. */
export const BRACHA_INSTANCES_MAX = 4_000_000;

export interface BrachaParams {
  messages_per_node: number;
  payload_bytes: number;
  /** Each node starts at a seeded random offset in [0, start_spread_ns]. */
  start_spread_ns: number;
  /** Crash-faulty nodes: they never send or answer (at most f of them). */
  silent_nodes: number[];
  /** How many nodes broadcast (the lowest-numbered correct ones); null = all. Traffic grows as N^2 per broadcast. */
  broadcasters: number | null;
  /** How messages travel (absent: "udp", one datagram per message). */
  transport?: BrachaTransport;
  /** Thresholds and vote rules (absent: "textbook"). */
  rules?: BrachaRules;
  /** tcp_like: from a node's start to its program listening and dialing (absent: TCP_STARTUP_NS_DEFAULT). */
  startup_ns?: number;
}

export const BRACHA_TRANSPORTS = ["udp", "tcp_like"] as const;
export type BrachaTransport = (typeof BRACHA_TRANSPORTS)[number];
export const BRACHA_RULES = ["textbook", "reference"] as const;
export type BrachaRules = (typeof BRACHA_RULES)[number];

export const BRACHA_DEFAULTS: BrachaParams = {
  messages_per_node: 10,
  payload_bytes: 16,
  start_spread_ns: 1_000_000,
  silent_nodes: [],
  broadcasters: null,
};

export function faultsTolerated(n: number, rules: BrachaRules = "textbook"): number {
  return rules === "reference" ? Math.floor(n / 3) : Math.floor((n - 1) / 3);
}

/** Silent nodes the rules can take and still deliver: the reference's f = N/3 can exceed it. */
export function silentNodesMax(n: number, rules: BrachaRules = "textbook"): number {
  const f = faultsTolerated(n, rules);
  return rules === "reference" ? Math.min(f, n - (2 * f + 1)) : f;
}

export function checkBrachaParams(params: BrachaParams, n: number): void {
  const rules = params.rules ?? "textbook";
  const f = faultsTolerated(n, rules);
  const silent_max = silentNodesMax(n, rules);
  const check = (ok: boolean, field: string, message: string) => {
    if (!ok) throw new InputError(`workload.${field}: ${message}`);
  };
  check(Number.isSafeInteger(params.messages_per_node) && params.messages_per_node >= 1, "messages_per_node", `must be an integer >= 1, got ${params.messages_per_node}`);
  check(n * params.messages_per_node <= BRACHA_INSTANCES_MAX, "messages_per_node", `nodes x messages must be <= ${BRACHA_INSTANCES_MAX}, got ${n * params.messages_per_node}`);
  check(Number.isSafeInteger(params.payload_bytes) && params.payload_bytes >= 0 && params.payload_bytes <= 1400, "payload_bytes", `must be an integer within 0..1400, got ${params.payload_bytes}`);
  check(Number.isSafeInteger(params.start_spread_ns) && params.start_spread_ns >= 0, "start_spread_ns", `must be a non-negative integer, got ${params.start_spread_ns}`);
  check(BRACHA_RULES.includes(rules), "rules", `must be one of ${BRACHA_RULES.join(", ")}, got ${JSON.stringify(rules)}`);
  check(BRACHA_TRANSPORTS.includes(params.transport ?? "udp"), "transport", `must be one of ${BRACHA_TRANSPORTS.join(", ")}, got ${JSON.stringify(params.transport)}`);
  check(params.startup_ns === undefined || (Number.isSafeInteger(params.startup_ns) && params.startup_ns >= 0), "startup_ns", `must be a non-negative integer, got ${params.startup_ns}`);
  check(params.silent_nodes.length <= silent_max, "silent_nodes", `${params.silent_nodes.length} silent nodes exceed f = ${f} for ${n} nodes${silent_max < f ? ` (${rules} rules: at most ${silent_max})` : ""}`);
  for (const id of params.silent_nodes) check(Number.isInteger(id) && id >= 0 && id < n, "silent_nodes", `no node ${id} among ${n}`);
  const b = params.broadcasters;
  check(b === null || (Number.isSafeInteger(b) && b >= 1 && b <= n - params.silent_nodes.length), "broadcasters", `must be within 1..${n - params.silent_nodes.length} (correct nodes), got ${b}`);
}

/** The nodes that broadcast: the lowest-numbered correct ones, `broadcasters` of them. */
export function broadcastingNodes(params: BrachaParams, n: number): number[] {
  const correct = Array.from({ length: n }, (_, id) => id).filter((id) => !params.silent_nodes.includes(id));
  return params.broadcasters === null ? correct : correct.slice(0, params.broadcasters);
}

/** Slots of BrachaStats' deliver-mark cache (a power of two). */
const DELIVER_MARK_SLOTS = 1024;

/** What the experiment measures, gathered from every node (instrumentation, not protocol state). */
export class BrachaStats {
  readonly broadcast_ns: Float64Array;
  readonly last_delivery_ns: Float64Array;
  readonly deliveries_per_instance: Uint16Array;
  deliveries = 0;
  /** -0: zero, but a double from the start (see GrantSlot in engine/scheduler.ts). */
  latency_sum_ns = -0;
  /** Node finishing time: when it delivered every message of every correct node. */
  readonly done_ns: Float64Array;
  /**
   * The deliver mark's text by instance, direct-mapped: every correct node delivers an
   * instance, close together in time, and building the string per node was a third of the
   * garbage per event at 4 nodes. Fixed size, whatever the number of instances.
   */
  private readonly deliver_mark_instance = new Int32Array(DELIVER_MARK_SLOTS).fill(-1);
  private readonly deliver_mark_text: string[] = new Array<string>(DELIVER_MARK_SLOTS).fill("");

  constructor(
    readonly node_count: number,
    readonly messages_per_node: number,
  ) {
    const instances = node_count * messages_per_node;
    this.broadcast_ns = new Float64Array(instances).fill(-1);
    this.last_delivery_ns = new Float64Array(instances).fill(-1);
    this.deliveries_per_instance = new Uint16Array(instances);
    this.done_ns = new Float64Array(node_count).fill(-1);
  }

  /** "bracha deliver origin=O seq=S" for instance O * M + S (the same text for every node). */
  deliverMark(instance: number, origin: number, seq: number): string {
    const slot = instance & (DELIVER_MARK_SLOTS - 1);
    if (this.deliver_mark_instance[slot] === instance) return this.deliver_mark_text[slot]!;
    const text = `bracha deliver origin=${origin} seq=${seq}`;
    this.deliver_mark_instance[slot] = instance;
    this.deliver_mark_text[slot] = text;
    return text;
  }

  recordBroadcast(instance: number, t_ns: number): void {
    this.broadcast_ns[instance] = t_ns;
  }

  recordDelivery(instance: number, t_ns: number): void {
    this.deliveries += 1;
    this.deliveries_per_instance[instance]! += 1;
    this.latency_sum_ns += t_ns - this.broadcast_ns[instance]!;
    if (t_ns > this.last_delivery_ns[instance]!) this.last_delivery_ns[instance] = t_ns;
  }
}

export class BrachaNode implements ProtocolNode {
  private readonly n: number;
  private readonly m: number;
  private readonly f: number;
  private readonly echo_threshold: number;
  private readonly reference_rules: boolean;
  private readonly state: Uint8Array;
  private readonly echo_count: Uint16Array;
  private readonly ready_count: Uint16Array;
  /**
   * Ethernet/IPv4/UDP headers towards each peer, for this message size, one after another
   * (UDP_FRAME_OVERHEAD_BYTES each): copied, not rebuilt. One buffer, not an array per peer:
   * at 1,024 nodes that would be a million small arrays.
   */
  private readonly header_templates: Uint8Array;
  /**
   * Header bytes that differ between peers (destination MAC and IP, IP checksum): the rest
   * of the scratch frame's header is the same for every peer, so a send copies only these.
   */
  private readonly header_varying: Uint8Array;
  /** The frame being sent: ctx.send copies it, so one buffer serves every frame. */
  private readonly frame: Uint8Array;
  /** `frame` as a DataView: the message is written a word at a time (encodeMessageWords). */
  private readonly frame_view: DataView;
  /** transport tcp_like: the reference's TCP mesh; null: one datagram per message. */
  private readonly tcp: TcpMesh | null;
  private readonly silent: boolean;
  private readonly broadcaster: boolean;
  private readonly delivered_goal: number;
  /** params.payload_bytes, read per message from here (see Engine.sink in engine/engine.ts: a literal's map may differ between runs). */
  private readonly payload_bytes: number;
  private next_seq = 0;
  private delivered = 0;
  private malformed_udp_frames = 0;

  constructor(
    private readonly id: number,
    node_count: number,
    private readonly params: BrachaParams,
    private readonly stats: BrachaStats,
  ) {
    this.n = node_count;
    this.m = params.messages_per_node;
    this.payload_bytes = params.payload_bytes;
    this.reference_rules = params.rules === "reference";
    this.f = faultsTolerated(node_count, params.rules);
    this.echo_threshold = this.reference_rules ? Math.floor((node_count + this.f) / 2) : Math.ceil((node_count + this.f + 1) / 2);
    this.state = new Uint8Array(this.n * this.m);
    this.echo_count = new Uint16Array(this.n * this.m);
    this.ready_count = new Uint16Array(this.n * this.m);
    const self = { mac: nodeMac(id), ip: nodeIpv4(id), port: BRACHA_PORT };
    const payload_bytes = MSG_HEADER_BYTES + params.payload_bytes;
    this.frame = new Uint8Array(UDP_FRAME_OVERHEAD_BYTES + payload_bytes);
    this.frame_view = new DataView(this.frame.buffer, this.frame.byteOffset, this.frame.byteLength);
    this.header_templates = new Uint8Array(node_count * UDP_FRAME_OVERHEAD_BYTES);
    for (let j = 0; j < node_count; j++) {
      this.frame.fill(0); // udpHeaders sums the checksum field as it finds it
      const headers = udpHeaders(self, { mac: nodeMac(j), ip: nodeIpv4(j), port: BRACHA_PORT }, payload_bytes, this.frame);
      this.header_templates.set(headers.subarray(0, UDP_FRAME_OVERHEAD_BYTES), j * UDP_FRAME_OVERHEAD_BYTES);
    }
    this.header_varying = varyingOffsets(this.header_templates, node_count, UDP_FRAME_OVERHEAD_BYTES);
    this.frame.set(this.header_templates.subarray(0, UDP_FRAME_OVERHEAD_BYTES)); // the common bytes, once
    this.silent = params.silent_nodes.includes(id);
    const broadcasters = broadcastingNodes(params, node_count);
    this.broadcaster = broadcasters.includes(id);
    this.delivered_goal = broadcasters.length * this.m;
    this.tcp = params.transport === "tcp_like" ? new TcpMesh(id, node_count, payload_bytes, { ready: (ctx) => this.onMeshReady(ctx), message: (ctx, _from, msg) => this.onMessage(ctx, msg, 0, msg.length) }) : null;
  }

  get malformed_frames(): number {
    return this.malformed_udp_frames + (this.tcp?.malformed_frames ?? 0);
  }

  start(ctx: NodeContext): void {
    // Over TCP even a silent node joins the mesh (the others wait for all N-1 connections).
    if (this.tcp !== null) {
      ctx.setTimer(ctx.now_ns + ctx.prng.nextBelow(this.params.start_spread_ns + 1) + (this.params.startup_ns ?? TCP_STARTUP_NS_DEFAULT), TIMER_TCP_START);
      return;
    }
    if (!this.broadcaster) return;
    ctx.setTimer(ctx.now_ns + ctx.prng.nextBelow(this.params.start_spread_ns + 1), TIMER_START);
  }

  onTimer(ctx: NodeContext, timer_id: number): void {
    if (timer_id === TIMER_START) this.broadcastNext(ctx);
    else if (timer_id === TIMER_TCP_START) this.tcp!.start(ctx);
    else if (timer_id === TIMER_DIAL_RETRY) this.tcp!.retryDial(ctx);
  }

  onFrame(ctx: NodeContext, frame: Uint8Array, delivery: Delivery): void {
    this.onFrameIn(ctx, frame, 0, frame.length, delivery);
  }

  onFrameIn(ctx: NodeContext, buf: Uint8Array, offset: number, length: number, _delivery: Delivery): void {
    if (this.tcp !== null) {
      if (!this.tcp.onFrame(ctx, offset === 0 && length === buf.length ? buf : buf.subarray(offset, offset + length))) this.malformed_udp_frames += 1;
      return;
    }
    if (this.silent) return;
    const o = udpPayloadOffsetIn(buf, offset, length);
    if (o < 0) {
      this.malformed_udp_frames += 1;
      return;
    }
    this.onMessage(ctx, buf, o, offset + length);
  }

  private onMeshReady(ctx: NodeContext): void {
    if (this.broadcaster && !this.silent) this.broadcastNext(ctx);
  }

  /** One message in bytes[o, end): checked, then handled by the rules in force. */
  private onMessage(ctx: NodeContext, bytes: Uint8Array, o: number, end: number): void {
    if (this.silent) return;
    if (end - o < MSG_HEADER_BYTES || bytes[o] !== MSG_MAGIC) {
      this.malformed_udp_frames += 1;
      return;
    }
    const type = bytes[o + 1]!;
    const origin = (bytes[o + 2]! << 8) | bytes[o + 3]!;
    const seq = ((bytes[o + 4]! << 24) | (bytes[o + 5]! << 16) | (bytes[o + 6]! << 8) | bytes[o + 7]!) >>> 0;
    if (origin >= this.n || seq >= this.m || type < MSG_INITIAL || type > MSG_READY) {
      this.malformed_udp_frames += 1;
      return;
    }
    if (this.reference_rules) this.handleReference(ctx, type, origin, seq);
    else this.handle(ctx, type, origin, seq);
  }

  private handle(ctx: NodeContext, type: number, origin: number, seq: number): void {
    const instance = origin * this.m + seq;
    const state = this.state[instance]!;
    if (type === MSG_INITIAL) {
      if ((state & SENT_ECHO) === 0) {
        this.state[instance] = state | SENT_ECHO;
        this.broadcast(ctx, MSG_ECHO, origin, seq);
      }
      return;
    }
    if (type === MSG_ECHO) {
      const echoes = ++this.echo_count[instance]!;
      if (echoes >= this.echo_threshold && (this.state[instance]! & SENT_READY) === 0) this.sendReady(ctx, instance, origin, seq);
      return;
    }
    const readies = ++this.ready_count[instance]!;
    if (readies >= this.f + 1 && (this.state[instance]! & SENT_READY) === 0) this.sendReady(ctx, instance, origin, seq);
    if (readies >= 2 * this.f + 1 && (this.state[instance]! & DELIVERED) === 0) this.deliver(ctx, instance, origin, seq);
  }

  /**
   * The reference program's rules, step for step (workloads/bracha/protocol.go does the same):
   * a vote we send counts here at once, and thresholds are looked at only when a vote of
   * that kind arrives. States: none, echoed (SENT_ECHO), readied (SENT_ECHO | SENT_READY).
   */
  private handleReference(ctx: NodeContext, type: number, origin: number, seq: number): void {
    const instance = origin * this.m + seq;
    const echoed = () => (this.state[instance]! & SENT_ECHO) !== 0;
    const readied = () => (this.state[instance]! & SENT_READY) !== 0;
    if (type === MSG_INITIAL) {
      if (!echoed()) this.sendVote(ctx, instance, MSG_ECHO, origin, seq);
      return;
    }
    if (type === MSG_ECHO) {
      this.echo_count[instance]! += 1;
      if (this.echo_count[instance]! >= this.echo_threshold && !echoed()) this.sendVote(ctx, instance, MSG_ECHO, origin, seq);
      if (this.echo_count[instance]! >= this.echo_threshold && !readied()) this.sendVote(ctx, instance, MSG_READY, origin, seq);
      return;
    }
    this.ready_count[instance]! += 1;
    if (this.ready_count[instance]! >= this.f + 1 && !echoed()) this.sendVote(ctx, instance, MSG_ECHO, origin, seq);
    if (this.ready_count[instance]! >= this.f + 1 && !readied()) this.sendVote(ctx, instance, MSG_READY, origin, seq);
    if (this.ready_count[instance]! >= 2 * this.f + 1 && readied() && (this.state[instance]! & DELIVERED) === 0) this.deliver(ctx, instance, origin, seq);
  }

  /** Reference rules: an ECHO or READY to every peer, counted as our own vote here. */
  private sendVote(ctx: NodeContext, instance: number, type: number, origin: number, seq: number): void {
    if (type === MSG_ECHO) {
      this.state[instance]! |= SENT_ECHO;
      this.echo_count[instance]! += 1;
    } else {
      this.state[instance]! |= SENT_READY;
      this.ready_count[instance]! += 1;
    }
    this.broadcast(ctx, type, origin, seq);
  }

  private sendReady(ctx: NodeContext, instance: number, origin: number, seq: number): void {
    this.state[instance]! |= SENT_READY;
    this.broadcast(ctx, MSG_READY, origin, seq);
  }

  private deliver(ctx: NodeContext, instance: number, origin: number, seq: number): void {
    this.state[instance]! |= DELIVERED;
    this.delivered += 1;
    this.stats.recordDelivery(instance, ctx.now_ns);
    ctx.mark(this.stats.deliverMark(instance, origin, seq));
    if (this.delivered === this.delivered_goal) {
      this.stats.done_ns[this.id] = ctx.now_ns;
      ctx.mark(`bracha done delivered=${this.delivered}`);
    }
    if (origin === this.id && seq === this.next_seq - 1) this.broadcastNext(ctx);
  }

  private broadcastNext(ctx: NodeContext): void {
    if (this.next_seq >= this.m) return;
    const seq = this.next_seq++;
    this.stats.recordBroadcast(this.id * this.m + seq, ctx.now_ns);
    ctx.mark(`bracha broadcast origin=${this.id} seq=${seq}`);
    this.broadcast(ctx, MSG_INITIAL, this.id, seq);
  }

  /**
   * The message to every peer (a frame each, or through the TCP mesh); textbook rules then
   * hand it to ourselves without the network (reference rules counted it in sendVote).
   */
  private broadcast(ctx: NodeContext, type: number, origin: number, seq: number): void {
    if (this.tcp !== null) {
      // The mesh queues the message (Nagle): a buffer of its own, shared by every peer's queue.
      const payload = new Uint8Array(MSG_HEADER_BYTES + this.payload_bytes);
      encodeMessage(type, origin, seq, this.payload_bytes, payload, 0);
      for (let j = 0; j < this.n; j++) if (j !== this.id) this.tcp.send(ctx, j, payload);
    } else {
      const frame = this.frame;
      encodeMessageWords(type, origin, seq, this.payload_bytes, this.frame_view, UDP_FRAME_OVERHEAD_BYTES);
      const templates = this.header_templates;
      const varying = this.header_varying;
      for (let j = 0; j < this.n; j++) {
        if (j === this.id) continue;
        const base = j * UDP_FRAME_OVERHEAD_BYTES;
        for (let v = 0; v < varying.length; v++) {
          const k = varying[v]!;
          frame[k] = templates[base + k]!;
        }
        ctx.send(frame);
      }
    }
    if (!this.reference_rules) this.handle(ctx, type, origin, seq);
  }
}

/** Offsets in [0, size) at which any of `count` records of `size` bytes in `records` differs from the first. */
function varyingOffsets(records: Uint8Array, count: number, size: number): Uint8Array {
  const offsets: number[] = [];
  for (let k = 0; k < size; k++) {
    for (let j = 1; j < count; j++) {
      if (records[j * size + k] !== records[k]) {
        offsets.push(k);
        break;
      }
    }
  }
  return Uint8Array.from(offsets);
}

/** Writes the message into buf at offset o (MSG_HEADER_BYTES + payload_bytes bytes). */
export function encodeMessage(type: number, origin: number, seq: number, payload_bytes: number, buf: Uint8Array, o: number): void {
  buf[o] = MSG_MAGIC;
  buf[o + 1] = type;
  buf[o + 2] = origin >>> 8;
  buf[o + 3] = origin & 0xff;
  buf[o + 4] = seq >>> 24;
  buf[o + 5] = (seq >>> 16) & 0xff;
  buf[o + 6] = (seq >>> 8) & 0xff;
  buf[o + 7] = seq & 0xff;
  for (let i = 0; i < payload_bytes; i++) buf[o + MSG_HEADER_BYTES + i] = (origin + seq + i) & 0xff;
}

/** Payload words: RAMP_WORDS[x] holds the four payload bytes x, x+1, x+2, x+3 (mod 256), big-endian. */
const RAMP_WORDS = Uint32Array.from({ length: 256 }, (_, x) => ((x << 24) | (((x + 1) & 0xff) << 16) | (((x + 2) & 0xff) << 8) | ((x + 3) & 0xff)) >>> 0);

/**
 * encodeMessage's bytes, written a 32-bit word at a time: 6 stores instead of 24 for the
 * default 16-byte payload (every broadcast encodes one; test/bracha_model.test.ts checks the
 * bytes are the same).
 */
export function encodeMessageWords(type: number, origin: number, seq: number, payload_bytes: number, view: DataView, o: number): void {
  view.setUint32(o, ((MSG_MAGIC << 24) | (type << 16) | (origin & 0xffff)) >>> 0);
  view.setUint32(o + 4, seq);
  const first = (origin + seq) & 0xff;
  const p = o + MSG_HEADER_BYTES;
  let i = 0;
  for (; i + 4 <= payload_bytes; i += 4) view.setUint32(p + i, RAMP_WORDS[(first + i) & 0xff]!);
  for (; i < payload_bytes; i++) view.setUint8(p + i, (first + i) & 0xff);
}
