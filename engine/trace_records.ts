// The vocabulary of a run: every record the engine produces, as compact tuples (they are
// msgpack arrays in the trace). "input" records carry what entered the engine from a node
// backend (nondeterministic for VMs); "decision" records are what the engine decided from
// those inputs. Replay feeds the inputs back and checks every decision.

import type { TopologySpec } from "./topology.js";

export const RecordKind = {
  /** decision: [1, node, start_ns, end_ns] — node may run over [start, end). */
  SliceGrant: 1,
  /** input: [2, node, end_ns, wake_ns] — slice over; node next acts on its own at wake_ns (-1: never). */
  SliceEnd: 2,
  /** input: [3, node, t_ns, frame_id, bytes] — node put an Ethernet frame on the wire at t. */
  FrameEmit: 3,
  /** decision: [4, to, t_ns, frame_id, from, sent_ns] — frame handed to `to` at t. */
  FrameDeliver: 4,
  /** decision: [5, to, t_ns, frame_id, from, reason] — frame lost on the way to `to` (-1: no receiver). */
  FrameDrop: 5,
  /** input: [6, node, t_ns, event, detail] — node lifecycle: boot, exit, crash. */
  Lifecycle: 6,
  /** input: [7, node, t_ns, text] — annotation from a node (-1: from the run itself). */
  Mark: 7,
  /** decision or input: [8, t_ns, reason] or [8, t_ns, reason, detail] — the run ended (quiescent, duration, interrupted, error: detail says what went wrong). */
  RunEnd: 8,
  /** input: [9, node, t_ns, text] — what the guest printed on its console (boot command output included) up to t. */
  GuestOutput: 9,
  /** input: [10, node, t_ns, bytes] — a frame from the host's management TAP, injected into the guest's management NIC at t. */
  MgmtIn: 10,
  /** input: [11, node, t_ns, bytes] — a frame the guest sent on its management NIC at t (handed to the host's TAP). */
  MgmtOut: 11,
  /** decision: [12, node, t_ns, action, detail] — a scheduled fault or network change took effect at t (node -1: the network). */
  Fault: 12,
  /** input: [13, node, t_ns, event, id, detail] — a scenario command started (detail: its command line) or exited (detail: "0", "1", "signal 9", "timeout"). */
  Command: 13,
} as const;
export type RecordKindValue = (typeof RecordKind)[keyof typeof RecordKind];
/** The highest record kind this version writes and reads. */
export const RECORD_KIND_MAX = 13;

export const RECORD_KIND_NAMES: Readonly<Record<number, string>> = Object.freeze({
  1: "slice_grant",
  2: "slice_end",
  3: "frame_emit",
  4: "frame_deliver",
  5: "frame_drop",
  6: "lifecycle",
  7: "mark",
  8: "run_end",
  9: "guest_output",
  10: "mgmt_in",
  11: "mgmt_out",
  12: "fault",
  13: "command",
});

// The values of the string fields, once: the types come from them, and the trace reader
// checks decoded strings against them.
// New values are appended (readers of older traces see only older values).
export const DROP_REASONS = ["loss", "queue_full", "no_route", "node_exited", "link_down", "node_down"] as const;
export const LIFECYCLE_EVENTS = ["boot", "exit", "crash"] as const;
/** "condition": a scenario's `until:` condition was met. */
export const RUN_END_REASONS = ["quiescent", "duration", "interrupted", "error", "condition"] as const;
/** What a fault record says happened (NodeFault actions, then NetworkChange actions). */
export const FAULT_ACTIONS = ["poweroff", "restart", "pause", "resume", "partition", "heal", "link_down", "link_up", "link_change"] as const;
export const COMMAND_EVENTS = ["start", "exit"] as const;
export type DropReason = (typeof DROP_REASONS)[number];
export type LifecycleEvent = (typeof LIFECYCLE_EVENTS)[number];
export type RunEndReason = (typeof RUN_END_REASONS)[number];
export type FaultAction = (typeof FAULT_ACTIONS)[number];
export type CommandEvent = (typeof COMMAND_EVENTS)[number];

export type SliceGrantRecord = [1, number, number, number];
export type SliceEndRecord = [2, number, number, number];
export type FrameEmitRecord = [3, number, number, number, Uint8Array];
export type FrameDeliverRecord = [4, number, number, number, number, number];
export type FrameDropRecord = [5, number, number, number, number, DropReason];
export type LifecycleRecord = [6, number, number, LifecycleEvent, string];
export type MarkRecord = [7, number, number, string];
export type RunEndRecord = [8, number, RunEndReason] | [8, number, RunEndReason, string];
export type GuestOutputRecord = [9, number, number, string];
export type MgmtInRecord = [10, number, number, Uint8Array];
export type MgmtOutRecord = [11, number, number, Uint8Array];
export type FaultRecord = [12, number, number, FaultAction, string];
export type CommandRecord = [13, number, number, CommandEvent, string, string];

export type TraceRecord =
  | SliceGrantRecord
  | SliceEndRecord
  | FrameEmitRecord
  | FrameDeliverRecord
  | FrameDropRecord
  | LifecycleRecord
  | MarkRecord
  | RunEndRecord
  | GuestOutputRecord
  | MgmtInRecord
  | MgmtOutRecord
  | FaultRecord
  | CommandRecord;

/** Virtual time of a record (every record has one). */
export function recordTimeNs(r: TraceRecord): number {
  return r[0] === RecordKind.RunEnd ? r[1] : r[2];
}

export interface NodeConfig {
  id: number;
  name: string;
  /** "02:00:00:00:00:01" */
  mac: string;
  /** "10.0.0.1" */
  ip: string;
  backend: "inprocess" | "vm" | "tap";
}

export interface WorkloadConfig {
  kind: string;
  [param: string]: unknown;
}

/** Everything needed to re-run or replay a run; stored whole in the trace header. */
export interface RunConfig {
  seed: number;
  topology: TopologySpec;
  nodes: NodeConfig[];
  workload: WorkloadConfig | null;
  /** Stop at this virtual time; null = run until quiescent or interrupted. */
  until_ns: number | null;
  /** Upper bound on one slice, whatever the lookahead allows. */
  slice_len_max_ns: number;
  /** Memory guard: most frames in flight at once (exceeding it ends the run with an error). */
  inflight_frames_max: number;
  /** How the VMs were run (VM runs only): what a re-run needs to boot the same guests. */
  vm?: VmRunConfig;
  /** Faults and network changes at virtual times (absent: none). */
  faults?: FaultPlan;
  /** The experiment file the run came from (tapsim run SCENARIO.yaml): commands, until, collect, metrics. */
  scenario?: ScenarioRunConfig;
  /**
   * The grant-set schedule (EngineOptions.parallel; engine/README.md "Parallel slices"):
   * absent or false in every trace written before it existed, whose schedule (one slice at a
   * time) replay keeps using for them.
   */
  parallel?: boolean;
  /**
   * With parallel: the pipelined grant-set schedule (EngineOptions.pipelined): each set is
   * computed from the planned ends of the set before it. Absent in traces written before it.
   */
  pipelined?: boolean;
}

/**
 * Everything scheduled to go wrong in a run, compiled from a scenario: plain JSON in the
 * header, so replay and rerun apply the same faults at the same virtual times.
 */
export interface FaultPlan {
  /** Applied to the node exactly at t_ns, between two of its slices; sorted by (t_ns, node). */
  nodes: NodeFault[];
  /** Applied to frames sent at or after t_ns on the listed links; sorted by t_ns (stable). */
  network: NetworkChange[];
}

export interface NodeFault {
  t_ns: number;
  node: number;
  /**
   * poweroff: the node stops (a VM's QEMU is killed); frames to it are dropped (node_down).
   * restart: a powered-off node boots again (a VM cold-boots, clock = RTC base + t).
   * pause / resume: the node is frozen (a stalled host, a long GC pause); frames that
   * reach it meanwhile wait in its NIC and are delivered at resume. A VM's clock stands
   * still while frozen, as under a hypervisor's pause.
   */
  action: "poweroff" | "restart" | "pause" | "resume";
}

export interface NetworkChange {
  t_ns: number;
  action: "partition" | "heal" | "link_down" | "link_up" | "link_change";
  /** What the fault record's detail says ("n0,n1 | n2"). */
  label: string;
  /** Directed links (to, from) the change applies to. */
  links: { to: number; from: number }[];
  /** New values; absent fields keep their current value. down: frames sent are dropped (link_down). */
  set: LinkChange;
}

export interface LinkChange {
  down?: boolean;
  latency_ns?: number;
  jitter_ns?: number;
  bandwidth_bps?: number;
  loss_rate?: number;
  queue_packets_max?: number;
  queue_bytes_max?: number;
}

/** A scenario as the run used it (compiled: node names resolved to ids, times in ns). */
export interface ScenarioRunConfig {
  /** The file as given, and the sha256 of its bytes. */
  source: string;
  sha256: string;
  commands: ScenarioCommand[];
  until: { duration_ns: number | null; all_exited: boolean; output: { node: number; pattern: string }[] };
  collect: { node: number; guest_path: string }[];
  metrics: ScenarioMetric[];
}

export interface ScenarioCommand {
  /** Unique in the scenario: "<node name>.<name or index>". */
  id: string;
  node: number;
  /** Shell command line (sh -c), run by the guest agent. */
  run: string;
  /** Start at this virtual time, or after another command's exit (+ delay_ns). */
  at_ns: number | null;
  after: string | null;
  delay_ns: number;
  /** Exit codes that count as success. */
  ok_exit: number[];
  /** Killed (and failed) after this long; null: never. */
  timeout_ns: number | null;
}

export interface ScenarioMetric {
  name: string;
  /** The first capture group of `pattern` over each output line of these nodes (null: all). */
  nodes: number[] | null;
  pattern: string;
  unit: string;
}

export interface VmRunConfig {
  qemu_version: string;
  gate_protocol_version: number;
  image: { kind: "initramfs" | "qcow2"; identity: string; source: string };
  memory_mib: number;
  /** Per node, where a scenario gives nodes different memory (absent: memory_mib for all). */
  node_memory_mib?: number[];
  /** Every guest's RTC starts here (`-rtc base=...,clock=vm`). */
  rtc_base: string;
  icount_shift: number;
  ssh_port_base: number;
  /** Shell command each node runs at boot, or null. */
  boot_commands: (string | null)[];
  /** First two octets of the management network (guest i is <net>.i.2); absent in older traces. */
  mgmt_net?: string;
  /** Whether the host could reach the guests (SSH): management frames are inputs then. */
  mgmt_live?: boolean;
  /** Default guest: what was added to each node's initramfs (absent in older traces). */
  additions?: VmAdditionsConfig;
  /** VMs started from snapshots (qmp/snapshot.ts), one per memory size; absent: every VM booted. */
  snapshots?: VmSnapshotConfig[];
}

/** A snapshot a run's VMs started from: a re-run needs one whose saved state is this one. */
export interface VmSnapshotConfig {
  key: string;
  memory_mib: number;
  state_sha256: string;
  /** QEMU's virtual clock in the saved state (engine time 0 of a clone). */
  park_clock_ns: number;
}

/**
 * The extra initramfs archives of a default-guest run (tapsim run --add, --packages, and
 * the SSH access files): everything that entered a guest besides the image, by hash.
 */
export interface VmAdditionsConfig {
  /** Per node: its own archive (files, SSH access) and that archive's sha256; appended after the packages' one. */
  nodes: { sources: { host_path: string; guest_path: string }[]; files: GuestFileRecord[]; archive_sha256: string; packages?: PackagesRecordConfig | null }[];
  /** --packages: the names asked for, every package unpacked for them, and the shared archive's sha256. */
  packages: PackagesRecordConfig | null;
  /** Whether the guests' dropbear accepts passwords (tapsim run --password); keys always. */
  ssh_password_login: boolean;
}

/** A --packages archive: the names asked for, every package unpacked for them, the archive's sha256. Per node when a scenario gives nodes their own. */
export interface PackagesRecordConfig {
  requested: string[];
  resolved: { name: string; version: string; deb_sha256: string }[];
  archive_sha256: string;
}

export interface GuestFileRecord {
  /** Absolute path in the guest. */
  path: string;
  kind: "file" | "dir" | "symlink";
  mode: number;
  bytes: number;
  /** sha256 hex of the contents (a symlink's target; of nothing for a folder). */
  sha256: string;
}

export interface TraceHeader {
  format: "tapsim-trace";
  format_version: number;
  tapsim_version: string;
  created_at: string;
  config: RunConfig;
}

/** Where records go. The recorder's file writer and replay's checker implement it. */
export interface RecordSink {
  write(record: TraceRecord): void;
  /**
   * The sink is done with a record's byte fields when write() returns (it encodes, compares
   * or drops them): the engine may then pass views of its own buffers, which it reuses.
   * Absent or false: byte fields are the sink's to keep (the engine copies where needed).
   */
  readonly transient_bytes?: boolean;
  /**
   * The sink is done with the whole record when write() returns (it keeps no reference to
   * the array): the engine may then reuse one array per hot record kind (slice grant and
   * end, frame emit and delivery, mark) instead of allocating one per event.
   */
  readonly transient_records?: boolean;
  /**
   * Optional: writes the frame_emit record [3, node, t_ns, frame_id, bytes] exactly as
   * write() would, bytes being buf[offset, offset + length), read during the call only. The
   * engine then makes no view per emitted frame (in-process runs).
   */
  writeFrameEmitIn?(node: number, t_ns: number, frame_id: number, buf: Uint8Array, offset: number, length: number): void;
  /** Called now and then from the run loop (about every 25 ms of wall time): flush if due. */
  tick?(): void;
}
