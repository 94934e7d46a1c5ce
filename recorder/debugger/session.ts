// The debugger's model: a trace re-executed by the real engine (ReplayDriver) one record at
// a time. The engine writes several records per step (a slice: grant, deliveries, emits,
// end, routing drops); the replay sink hands each one over while the engine is still inside
// the write, so the state captured with it is the engine's own state at that record. The
// session keeps those (record, state) pairs of the current engine step in a queue and
// moves its cursor through them. Going back re-executes from the start (replay is exact,
// so the state at record i is always the same); nothing is reconstructed from the trace.

import type { Engine, LinkView, NodeRunState, PendingFrame } from "../../engine/engine.js";
import { InputError } from "../../engine/errors.js";
import { RECORD_KIND_NAMES, RecordKind, recordTimeNs, type TraceHeader, type TraceRecord } from "../../engine/trace_records.js";
import { VIRTUAL_NS_NEVER, type NodeId } from "../../engine/units.js";
import { TraceReader } from "../reader.js";
import { Diverged, EndOfTrace, ReplayDriver } from "../replay.js";
import { ConsoleLines, outputMatches, type ConsoleAppend } from "./console.js";
import { frameMatches, type FrameFilter } from "./filter.js";

export interface NodeState {
  clock_ns: number;
  wake_ns: number;
  /** Earliest frame due into the node (VIRTUAL_NS_NEVER: none). */
  inbox_ns: number;
  alive: boolean;
  /** up, down (powered off), paused (scheduled faults), or exited. */
  run_state: NodeRunState;
}

/** The engine's state after a record took effect (before the next record was written). */
export interface EngineState {
  nodes: NodeState[];
  /** Per node, the frames waiting in its inbox, in delivery order. */
  inbox: PendingFrame[][];
  /** Links that have carried a frame; transmit queue as of the sender's clock. */
  links: LinkView[];
}

export interface Executed {
  /** 0-based position of the record in the trace. */
  index: number;
  record: TraceRecord;
  state: EngineState;
}

export interface FrameSeen {
  frame_id: number;
  from: number;
  sent_ns: number;
  bytes: Uint8Array;
  /** Deliveries and drops seen so far: [index, record]. */
  outcomes: Array<{ index: number; record: TraceRecord }>;
}

export type BreakpointSpec =
  | { kind: "time"; t_ns: number }
  | { kind: "node"; node: number }
  | { kind: "kind"; record_kind: number }
  | { kind: "frame"; filter: FrameFilter; text: string }
  /** A node (any when node is undefined) prints a line matching pattern. */
  | { kind: "output"; pattern: RegExp; node?: number }
  /** A fault record: a node fault of `node`, or any fault and network change when node is undefined. */
  | { kind: "fault"; node?: number }
  | { kind: "watch"; node: number };
export type Breakpoint = BreakpointSpec & { id: number };

export type StopReason = "step" | "breakpoint" | "end" | "goto" | "start";
export interface Stop {
  reason: StopReason;
  /** The record the cursor is on (null: before the first record). */
  at: Executed | null;
  hit: Breakpoint[];
}

const HISTORY_RECORDS = 16;

export class DebugSession {
  readonly header: TraceHeader;
  readonly breakpoints: Breakpoint[] = [];
  private next_breakpoint_id = 1;
  private reader!: TraceReader;
  private driver!: ReplayDriver;
  /** Records the engine has written but the cursor has not reached yet. */
  private queue: Executed[] = [];
  private queue_head = 0;
  private ended = false;
  private current: Executed | null = null;
  private history: Executed[] = [];
  private frames = new Map<number, FrameSeen>();
  /** Each node's console up to the cursor. */
  private consoles: ConsoleLines[] = [];
  /** What the record at the cursor printed (null: it is not a guest_output). */
  private output_seen: ConsoleAppend | null = null;
  /** Latest record time executed so far (time breakpoints fire when it first reaches T). */
  private max_t_ns = -1;
  /** max_t_ns before the record just executed. */
  private prev_max_t_ns = -1;

  private constructor(readonly path: string) {
    this.header = TraceReader.open(path).header;
    this.restart();
  }

  static open(path: string): DebugSession {
    return new DebugSession(path);
  }

  /** Records executed so far: the cursor is on record position-1. */
  get position(): number {
    return this.current === null ? 0 : this.current.index + 1;
  }

  get at(): Executed | null {
    return this.current;
  }

  get atEnd(): boolean {
    return this.ended && this.queue_head === this.queue.length;
  }

  close(): void {
    this.reader.close();
  }

  /** Steps n records (breakpoints do not stop a step). */
  async step(n = 1): Promise<Stop> {
    assertCount(n, "step");
    for (let k = 0; k < n; k++) if ((await this.advance()) === null) return this.stop("end");
    return this.stop("step");
  }

  /** Steps to the next record about the current record's node. */
  async next(): Promise<Stop> {
    const node = this.current === null ? -1 : recordNode(this.current.record);
    if (node < 0) return this.step(1);
    for (;;) {
      const e = await this.advance();
      if (e === null) return this.stop("end");
      if (involves(e.record, node)) return this.stop("step");
    }
  }

  /** Runs to the next breakpoint or watch that fires, or the end. */
  async continue(): Promise<Stop> {
    for (;;) {
      const before = this.current;
      const e = await this.advance();
      if (e === null) return this.stop("end");
      const hit = this.breakpoints.filter((b) => this.fires(b, before, e));
      if (hit.length > 0) return this.stop("breakpoint", hit);
    }
  }

  /** Re-executes from the start to record position-1-n (n records back). */
  async back(n = 1): Promise<Stop> {
    assertCount(n, "back");
    const target = Math.max(0, this.position - n);
    await this.runTo(target);
    return this.stop(target === 0 ? "start" : "step");
  }

  /** Moves to the first record (in trace order) at or after t_ns; re-executes from the start if that lies behind. */
  async goto(t_ns: number): Promise<Stop> {
    if (!(Number.isFinite(t_ns) && t_ns >= 0)) throw new InputError(`goto: time must be >= 0, got ${t_ns}`);
    if (this.max_t_ns >= t_ns) await this.runTo(0);
    for (;;) {
      const e = await this.advance();
      if (e === null) return this.stop("end");
      if (recordTimeNs(e.record) >= t_ns) return this.stop("goto");
    }
  }

  addBreakpoint(spec: BreakpointSpec): Breakpoint {
    if (spec.kind === "node" || spec.kind === "watch") this.checkNode(spec.node);
    if ((spec.kind === "output" || spec.kind === "fault") && spec.node !== undefined) this.checkNode(spec.node);
    const b = { ...spec, id: this.next_breakpoint_id++ } as Breakpoint;
    this.breakpoints.push(b);
    return b;
  }

  /** Deletes one breakpoint, or all without an id; returns how many went. */
  deleteBreakpoint(id?: number): number {
    if (id === undefined) return this.breakpoints.splice(0).length;
    const i = this.breakpoints.findIndex((b) => b.id === id);
    if (i < 0) throw new InputError(`no breakpoint ${id}`);
    this.breakpoints.splice(i, 1);
    return 1;
  }

  /** The engine state at the cursor (before the first record: the engine as built). */
  state(): EngineState {
    return this.current?.state ?? snapshot(this.driver.engine);
  }

  frame(frame_id: number): FrameSeen | undefined {
    return this.frames.get(frame_id);
  }

  /** What node printed up to the cursor. */
  console(node: number): ConsoleLines {
    this.checkNode(node);
    return this.consoles[node]!;
  }

  /** Up to `before` records up to the cursor (inclusive) and `after` past it. */
  async around(before: number, after: number): Promise<{ done: Executed[]; ahead: Array<{ index: number; record: TraceRecord }> }> {
    const done = this.history.slice(-Math.min(before, HISTORY_RECORDS));
    const ahead: Array<{ index: number; record: TraceRecord }> = [];
    for (let k = this.queue_head; k < this.queue.length && ahead.length < after; k++) ahead.push(this.queue[k]!);
    // Past the engine's current step: the trace's own next records (not executed yet).
    let index = this.position + ahead.length;
    for (let k = 0; ahead.length < after; k++) {
      const r = this.driver.cursor.peek(k);
      if (r === undefined) break;
      ahead.push({ index: index++, record: r });
    }
    return { done, ahead };
  }

  checkNode(node: number): void {
    const n = this.header.config.nodes.length;
    if (!(Number.isInteger(node) && node >= 0 && node < n)) throw new InputError(`no node ${node} (the trace has nodes 0..${n - 1})`);
  }

  private stop(reason: StopReason, hit: Breakpoint[] = []): Stop {
    return { reason, at: this.current, hit };
  }

  private fires(b: Breakpoint, before: Executed | null, e: Executed): boolean {
    const r = e.record;
    switch (b.kind) {
      case "time":
        return recordTimeNs(r) >= b.t_ns && this.prev_max_t_ns < b.t_ns;
      case "node":
        return involves(r, b.node);
      case "kind":
        return r[0] === b.record_kind;
      case "frame": {
        const f = frameOf(r) === null ? undefined : this.frames.get(frameOf(r)!);
        return f !== undefined && frameMatches(b.filter, r, f.bytes, this.header);
      }
      case "output":
        return this.output_seen !== null && (b.node === undefined || r[1] === b.node) && outputMatches(b.pattern, this.output_seen);
      case "fault":
        return r[0] === RecordKind.Fault && (b.node === undefined || r[1] === b.node);
      case "watch": {
        const was = (before?.state ?? e.state).nodes[b.node]!.clock_ns;
        return before !== null && e.state.nodes[b.node]!.clock_ns !== was;
      }
    }
  }


  /** Starts over: a fresh reader, engine and cursor. */
  private restart(): void {
    this.reader?.close();
    this.reader = TraceReader.open(this.path);
    this.driver = new ReplayDriver(this.reader);
    const engine = this.driver.engine;
    let index = 0;
    // The engine writes a record before acting on it (a grant before popping the inbox, a
    // slice_end before the clock moves and the slice's frames are routed). So the state
    // *after* record i is the state when record i+1 is written, or when the step returns.
    let pending: Executed | null = null;
    this.driver.observe = (record) => {
      const state = snapshot(engine);
      if (pending !== null) pending.state = state;
      pending = { index: index++, record, state };
      this.queue.push(pending);
    };
    this.settle = () => {
      if (pending !== null) pending.state = snapshot(engine);
      pending = null;
    };
    this.queue = [];
    this.queue_head = 0;
    this.ended = false;
    this.current = null;
    this.history = [];
    this.frames = new Map();
    this.consoles = this.header.config.nodes.map(() => new ConsoleLines());
    this.output_seen = null;
    this.max_t_ns = -1;
    this.prev_max_t_ns = -1;
  }

  /** Re-executes from the start until `target` records are done. */
  private async runTo(target: number): Promise<void> {
    this.restart();
    for (let k = 0; k < target; k++) if ((await this.advance()) === null) break;
  }

  /** Moves the cursor one record, running an engine step when the queue is empty; null at the end. */
  private async advance(): Promise<Executed | null> {
    while (this.queue_head === this.queue.length) {
      if (this.ended) return null;
      this.queue.length = 0;
      this.queue_head = 0;
      this.ended = !(await this.engineStepChecked());
    }
    const e = this.queue[this.queue_head++]!;
    this.current = e;
    this.history.push(e);
    if (this.history.length > HISTORY_RECORDS) this.history.shift();
    this.remember(e);
    this.prev_max_t_ns = this.max_t_ns;
    this.max_t_ns = Math.max(this.max_t_ns, recordTimeNs(e.record));
    return e;
  }

  private settle: () => void = () => {};

  private async engineStep(): Promise<boolean> {
    try {
      return await this.driver.step();
    } finally {
      this.settle();
    }
  }

  private async engineStepChecked(): Promise<boolean> {
    try {
      return await this.engineStep();
    } catch (err) {
      if (err instanceof EndOfTrace) return false; // a killed run's trace: stop where it stops
      if (err instanceof Diverged) throw new InputError(`${this.path}: replay diverged at record #${this.driver.cursor.consumed}: ${err.message} (the trace does not re-execute)`);
      throw err;
    }
  }

  private remember(e: Executed): void {
    const r = e.record;
    this.output_seen = r[0] === RecordKind.GuestOutput ? this.consoles[r[1]]!.append(r[3]) : null;
    if (r[0] === RecordKind.FrameEmit) {
      this.frames.set(r[3], { frame_id: r[3], from: r[1], sent_ns: r[2], bytes: r[4], outcomes: [] });
    } else if (r[0] === RecordKind.FrameDeliver || r[0] === RecordKind.FrameDrop) {
      this.frames.get(r[3])?.outcomes.push({ index: e.index, record: r });
    }
  }
}

function assertCount(n: number, what: string): void {
  if (!(Number.isInteger(n) && n >= 1)) throw new InputError(`${what}: count must be an integer >= 1, got ${n}`);
}

function snapshot(engine: Engine): EngineState {
  const s = engine.scheduler;
  const nodes: NodeState[] = [];
  const inbox: PendingFrame[][] = [];
  for (let i = 0; i < s.node_count; i++) {
    nodes.push({ clock_ns: s.clock_ns[i]!, wake_ns: s.wake_ns[i]!, inbox_ns: s.inbox_ns[i]!, alive: s.alive[i] === 1, run_state: engine.nodeRunState(i as NodeId) });
    inbox.push(engine.pendingFrames(i as NodeId));
  }
  return { nodes, inbox, links: engine.linkViews() };
}

/** The node a record is about (-1: the run itself). */
export function recordNode(r: TraceRecord): number {
  return r[0] === RecordKind.RunEnd ? -1 : r[1];
}

export function frameOf(r: TraceRecord): number | null {
  return r[0] === RecordKind.FrameEmit || r[0] === RecordKind.FrameDeliver || r[0] === RecordKind.FrameDrop ? r[3] : null;
}

/** A record about `node`: its slices and outputs, frames to or from it, network changes, the run's end. */
export function involves(r: TraceRecord, node: number): boolean {
  if (r[0] === RecordKind.RunEnd) return true;
  if (r[0] === RecordKind.Fault && r[1] < 0) return true;
  if (r[0] === RecordKind.FrameDeliver || r[0] === RecordKind.FrameDrop) return r[1] === node || r[4] === node;
  return r[1] === node;
}

export function recordKindByName(name: string): number | undefined {
  const hit = Object.entries(RECORD_KIND_NAMES).find(([, n]) => n === name);
  return hit === undefined ? undefined : Number(hit[0]);
}

export const NEVER_NS = VIRTUAL_NS_NEVER;
