// Aggregates over a stream of records, in memory bounded by nodes and links (not by trace
// length): counts per kind, per-node and per-link traffic. Used by `tapsim info` and diff.
// A VM's console output and its management frames are counted per node apart from the
// simulated frames: management frames never travel on a simulated link.
// Bytes per link need each frame's size at its delivery, which only its emit record carries:
// given the node count, the sizes of frames still in flight are kept (a frame leaves the
// table once every receiver the engine routes it to has a deliver or drop record). Fault
// records are kept whole (there are as many as the run's fault plan holds, not one per frame).

import { ETH_HEADER_BYTES, isGroupMac } from "../engine/net/ethernet.js";
import { RECORD_KIND_NAMES, RecordKind, recordTimeNs, type TraceRecord } from "../engine/trace_records.js";

export interface NodeStats {
  node: number;
  slices: number;
  slice_ns_total: number;
  frames_sent: number;
  bytes_sent: number;
  frames_received: number;
  frames_dropped_to: number;
  marks: number;
  lifecycle: string[];
  /** guest_output records and the UTF-8 bytes of their text. */
  console_records: number;
  console_bytes: number;
  /** Management NIC: frames injected from the host (in) and sent by the guest (out). */
  mgmt_in_frames: number;
  mgmt_in_bytes: number;
  mgmt_out_frames: number;
  mgmt_out_bytes: number;
  /** Scenario commands started and exited in the node (command records). */
  commands_started: number;
  commands_exited: number;
}

/** A fault record: a node fault (node >= 0) or a network change (node -1). */
export interface FaultSeen {
  node: number;
  t_ns: number;
  action: string;
  detail: string;
}

export interface LinkStats {
  from: number;
  to: number;
  frames_delivered: number;
  /** Bytes of the delivered frames; null when not counted (TraceStats made without the node count). */
  bytes_delivered: number | null;
  latency_ns_min: number;
  latency_ns_max: number;
  latency_ns_sum: number;
  drops: Record<string, number>;
}

/**
 * Most frame sizes kept at once. The engine holds at most inflight_frames_max frames in
 * flight, so a consistent trace stays far below; past it (a trace that never resolves its
 * frames) the oldest entries go and their deliveries count in frames_bytes_unknown.
 */
export const FRAME_SIZES_TRACKED_MAX = 1 << 20;

interface FrameInFlight {
  bytes: number;
  /** Receivers without a deliver or drop record yet. */
  outcomes_left: number;
}

export class TraceStats {
  records = 0;
  t_ns_max = 0;
  end_reason: string | null = null;
  /** Indexed by node id (arrays, not Maps: this runs once per record of every trace read). */
  private readonly node_stats: (NodeStats | undefined)[] = [];
  private readonly counts_by_kind = new Float64Array(16);
  /** Keyed by from * 65536 + to (node ids are < 65536). */
  readonly links = new Map<number, LinkStats>();
  /** Drops with no receiver (no route). */
  unrouted_drops = 0;
  /** The trace holds console output or management frames (a VM run's). */
  guest_io = false;
  /** Deliveries whose frame size was not known (no emit record seen, or evicted): not in bytes_delivered. */
  frames_bytes_unknown = 0;
  /** frame_id -> size and receivers still to come; only when the node count is known. */
  private readonly in_flight: Map<number, FrameInFlight> | null;

  /** node_count: the trace's (header config.nodes.length); without it bytes per link are not counted. */
  constructor(private readonly node_count: number | null = null) {
    this.in_flight = node_count === null ? null : new Map();
  }
  /** Every fault record, in trace order. */
  readonly faults: FaultSeen[] = [];
  /** Drops by reason over the whole trace (unrouted ones included). */
  readonly drops_by_reason: Record<string, number> = {};

  add(r: TraceRecord): void {
    this.records += 1;
    this.counts_by_kind[r[0]]! += 1;
    const t = recordTimeNs(r);
    if (t > this.t_ns_max) this.t_ns_max = t;
    switch (r[0]) {
      case RecordKind.SliceGrant: {
        const n = this.node(r[1]);
        n.slices += 1;
        n.slice_ns_total += r[3] - r[2];
        break;
      }
      case RecordKind.FrameEmit: {
        const n = this.node(r[1]);
        n.frames_sent += 1;
        n.bytes_sent += r[4].length;
        this.frameEmitted(r[3], r[4]);
        break;
      }
      case RecordKind.FrameDeliver: {
        this.node(r[1]).frames_received += 1;
        const l = this.link(r[4], r[1]);
        const latency = r[2] - r[5];
        l.frames_delivered += 1;
        const bytes = this.frameOutcome(r[3]);
        if (l.bytes_delivered !== null) {
          if (bytes === null) this.frames_bytes_unknown += 1;
          else l.bytes_delivered += bytes;
        }
        l.latency_ns_sum += latency;
        if (latency < l.latency_ns_min) l.latency_ns_min = latency;
        if (latency > l.latency_ns_max) l.latency_ns_max = latency;
        break;
      }
      case RecordKind.FrameDrop:
        this.frameOutcome(r[3]);
        this.drops_by_reason[r[5]] = (this.drops_by_reason[r[5]] ?? 0) + 1;
        if (r[1] < 0) {
          this.unrouted_drops += 1;
        } else {
          this.node(r[1]).frames_dropped_to += 1;
          const drops = this.link(r[4], r[1]).drops;
          drops[r[5]] = (drops[r[5]] ?? 0) + 1;
        }
        break;
      case RecordKind.Lifecycle:
        this.node(r[1]).lifecycle.push(r[3]);
        break;
      case RecordKind.Mark:
        if (r[1] >= 0) this.node(r[1]).marks += 1;
        break;
      case RecordKind.RunEnd:
        this.end_reason = r[2];
        break;
      case RecordKind.GuestOutput: {
        const n = this.node(r[1]);
        n.console_records += 1;
        n.console_bytes += Buffer.byteLength(r[3], "utf8");
        this.guest_io = true;
        break;
      }
      case RecordKind.MgmtIn: {
        const n = this.node(r[1]);
        n.mgmt_in_frames += 1;
        n.mgmt_in_bytes += r[3].length;
        this.guest_io = true;
        break;
      }
      case RecordKind.MgmtOut: {
        const n = this.node(r[1]);
        n.mgmt_out_frames += 1;
        n.mgmt_out_bytes += r[3].length;
        this.guest_io = true;
        break;
      }
      case RecordKind.Fault:
        this.faults.push({ node: r[1], t_ns: r[2], action: r[3], detail: r[4] });
        break;
      case RecordKind.Command: {
        const n = this.node(r[1]);
        if (r[3] === "start") n.commands_started += 1;
        else n.commands_exited += 1;
        break;
      }
    }
  }

  /** Record counts by kind name, kinds in numeric order. */
  get kind_counts(): Record<string, number> {
    const out: Record<string, number> = {};
    this.counts_by_kind.forEach((count, kind) => {
      if (count > 0) out[RECORD_KIND_NAMES[kind] ?? `kind_${kind}`] = count;
    });
    return out;
  }

  get nodes(): ReadonlyMap<number, NodeStats> {
    return new Map(this.nodeList().map((n) => [n.node, n]));
  }

  nodeList(): NodeStats[] {
    return this.node_stats.filter((n): n is NodeStats => n !== undefined);
  }

  linkList(): LinkStats[] {
    return [...this.links.values()].sort((a, b) => a.from - b.from || a.to - b.to);
  }

  /** Frames whose deliveries are still to come (the table's size). */
  get frames_in_flight(): number {
    return this.in_flight?.size ?? 0;
  }

  /** Remembers the frame's size for as many outcomes as the engine's routing gives it. */
  private frameEmitted(frame_id: number, frame: Uint8Array): void {
    const table = this.in_flight;
    if (table === null) return;
    // As Engine.route: a short frame is dropped unrouted (one outcome), a group frame goes to
    // every other node, anything else to one node or nowhere (one outcome either way).
    const outcomes_left = frame.length >= ETH_HEADER_BYTES && isGroupMac(frame) ? this.node_count! - 1 : 1;
    if (outcomes_left <= 0) return;
    if (table.size >= FRAME_SIZES_TRACKED_MAX) table.delete(table.keys().next().value!);
    table.set(frame_id, { bytes: frame.length, outcomes_left });
  }

  /** A deliver or drop of frame_id: its size (null if unknown); forgets it after its last outcome. */
  private frameOutcome(frame_id: number): number | null {
    const f = this.in_flight?.get(frame_id);
    if (f === undefined) return null;
    f.outcomes_left -= 1;
    if (f.outcomes_left <= 0) this.in_flight!.delete(frame_id);
    return f.bytes;
  }

  private node(id: number): NodeStats {
    let n = this.node_stats[id];
    if (n === undefined) {
      n = {
        node: id,
        slices: 0,
        slice_ns_total: 0,
        frames_sent: 0,
        bytes_sent: 0,
        frames_received: 0,
        frames_dropped_to: 0,
        marks: 0,
        lifecycle: [],
        console_records: 0,
        console_bytes: 0,
        mgmt_in_frames: 0,
        mgmt_in_bytes: 0,
        mgmt_out_frames: 0,
        mgmt_out_bytes: 0,
        commands_started: 0,
        commands_exited: 0,
      };
      this.node_stats[id] = n;
    }
    return n;
  }

  private link(from: number, to: number): LinkStats {
    const key = from * 65536 + to;
    let l = this.links.get(key);
    if (!l) {
      l = { from, to, frames_delivered: 0, bytes_delivered: this.in_flight === null ? null : 0, latency_ns_min: Number.MAX_SAFE_INTEGER, latency_ns_max: 0, latency_ns_sum: 0, drops: {} };
      this.links.set(key, l);
    }
    return l;
  }
}
