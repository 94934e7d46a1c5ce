// A QEMU VM as an engine node: each slice is one RUN/DONE exchange with the VM's slice gate.
// Engine time and QEMU's virtual clock differ by a fixed offset (qemu = engine + base_ns),
// so a delivery due at t is injected at exactly t and an emitted frame carries the exact
// virtual time at which it left the guest's NIC. The offset is the gate's HELLO clock at
// first (both clocks start at 0), and changes only with node faults: a restart boots a
// fresh QEMU at engine time t0 (base = hello - t0), a pause stops QEMU's clock while the
// engine's runs on (base shrinks by the pause's length).
//
// Scenario commands and file collection go through the guest agent (qmp/agent.ts): its
// messages are management frames injected at exact engine times, never recorded as
// mgmt_in (a scenario re-run derives them again), and its console markers become
// `command` outputs.

import { rmSync } from "node:fs";
import path from "node:path";
import type { NodeBackend, NodeControl, SliceCollector, SliceOutput, SliceRequest, SliceResult } from "../engine/backend.js";
import { formatVirtualNs, VIRTUAL_NS_NEVER } from "../engine/units.js";
import { agentFrame, AgentParser, encodeAgentMessage, type AgentEvent, type AgentMessage } from "./agent.js";
import { ConsoleReader } from "./console_reader.js";
import { GATE_FINISH_WAITER, GateClosedError, IFACE_MGMT, type GateFrame } from "./gate_channel.js";
import { mgmtMac, type QemuVm } from "./launcher.js";
import { MGMT_NET_DEFAULT, type MgmtPort } from "./mgmt.js";
import { IDENTITY_CHUNK_SPACING_NS } from "./snapshot.js";

export interface SliceAccuracy {
  slices: number;
  /** Largest |virtual clock at the gate - requested deadline| seen, in ns. */
  error_ns_max: number;
}

export interface VmBackendOptions {
  /** First two octets of the management network the guest was booted with (default 10.254). */
  readonly mgmt_net?: string;
  /** Boots a fresh QEMU of this node's spec whose guest clock starts at engine time t0_ns (restart). */
  readonly restart?: (t0_ns: number) => Promise<QemuVm>;
  /**
   * A snapshot clone's identity (qmp/snapshot.ts): the frames that make the parked guest this
   * node, injected on the management NIC from t0_ns on (the node's start: 0, or a restart's).
   */
  readonly identity?: (t0_ns: number) => readonly Uint8Array[];
}

/** A file the agent handed back (bytes checked against its size and sha256), or why not. */
export interface CollectedFile {
  readonly node: number;
  readonly guest_path: string;
  readonly bytes: Buffer | null;
  readonly error: string | null;
}

type Power = "on" | "paused" | "off";

interface QueuedMessage {
  readonly t_ns: number;
  readonly frame: Uint8Array;
}

/** Host frames taken (and dropped) at a restart: what reached a powered-off NIC. */
const MGMT_DRAIN_BATCHES_MAX = 64;

export class VmBackend implements NodeBackend {
  readonly kind = "vm" as const;
  readonly accuracy: SliceAccuracy = { slices: 0, error_ns_max: 0 };
  /** Why this VM stopped following the engine (QEMU died, the gate missed a deadline), once it has. */
  crash: string | null = null;
  private booted = false;
  private current: QemuVm;
  /** QEMU's virtual clock = engine time + base_ns. */
  private base_ns: number;
  /** Engine time where this node's next slice starts (end of the last slice, or the last fault). */
  private clock_ns = 0;
  private power: Power = "on";
  private paused_at_ns = 0;
  /** Agent messages by due time (stable for equal times). */
  private queue: QueuedMessage[] = [];
  private readonly command_lines = new Map<string, string>();
  private parser = new AgentParser();
  private collected: CollectedFile[] = [];
  private console: ConsoleReader;
  private restarting: Promise<QemuVm> | null = null;

  constructor(
    vm: QemuVm,
    private readonly onCrash: (backend: VmBackend) => void,
    /** The host's end of the management NIC; null when nobody may talk to the guest (--no-ssh). */
    private readonly mgmt: MgmtPort | null = null,
    private readonly options: VmBackendOptions = {},
  ) {
    this.current = vm;
    this.console = new ConsoleReader(vm.console_path);
    this.base_ns = helloOf(vm);
    this.enqueueIdentity(0);
  }

  /** The node's QEMU (a new one after each restart). */
  get vm(): QemuVm {
    return this.current;
  }

  /** Engine time at which the next slice starts. */
  get next_slice_ns(): number {
    return this.clock_ns;
  }

  /** Starts `command` (sh -c in the guest) at engine time t_ns exactly; its start and exit become command outputs. */
  runCommand(t_ns: number, id: string, command: string): void {
    this.enqueue(t_ns, { kind: "run", id, command });
    this.command_lines.set(id, command);
  }

  /** SIGKILLs the command's process group at engine time t_ns (its exit says `signal 9`). */
  killCommand(t_ns: number, id: string): void {
    this.enqueue(t_ns, { kind: "kill", id });
  }

  /** Asks the agent for a guest file at engine time t_ns; the result comes from takeCollected(). */
  collectFile(t_ns: number, guest_path: string): void {
    this.enqueue(t_ns, { kind: "collect", guest_path });
  }

  /** Files the agent has handed back since the last call. */
  takeCollected(): CollectedFile[] {
    const out = this.collected;
    this.collected = [];
    return out;
  }

  private enqueue(t_ns: number, message: AgentMessage): void {
    if (!(Number.isSafeInteger(t_ns) && t_ns >= this.clock_ns)) {
      throw new RangeError(`${this.current.spec.name}: agent message due at ${t_ns} ns, before the node's next slice at ${this.clock_ns} ns`);
    }
    const node = this.current.spec.node;
    const frame = agentFrame({ mgmt_net: this.options.mgmt_net ?? MGMT_NET_DEFAULT, node, guest_mac: mgmtMac(node) }, encodeAgentMessage(message));
    let at = this.queue.length;
    while (at > 0 && this.queue[at - 1]!.t_ns > t_ns) at--;
    this.queue.splice(at, 0, { t_ns, frame });
  }

  /** Identity frames IDENTITY_CHUNK_SPACING_NS apart from t0_ns, ahead of any message due then. */
  private enqueueIdentity(t0_ns: number): void {
    const frames = this.options.identity?.(t0_ns) ?? [];
    const identity = frames.map((frame, i) => ({ t_ns: t0_ns + i * IDENTITY_CHUNK_SPACING_NS, frame }));
    const rest = this.queue;
    this.queue = [];
    for (const m of [...identity, ...rest].sort((a, b) => a.t_ns - b.t_ns)) this.queue.push(m);
  }

  /** Synchronous when the gate uses blocking I/O (the usual case); a Promise otherwise or on a crash. */
  runSlice(request: SliceRequest): SliceResult | Promise<SliceResult> {
    if (this.power === "off") throw new Error(`${this.current.spec.name}: slice [${request.start_ns}, ${request.end_ns}) asked of a powered-off VM`);
    if (!(request.start_ns >= this.clock_ns && request.end_ns > request.start_ns)) {
      throw new RangeError(`${this.current.spec.name}: slice [${request.start_ns}, ${request.end_ns}) does not follow the node's clock ${this.clock_ns}`);
    }
    if (this.power === "paused") return this.pausedSlice(request);
    const outputs: SliceOutput[] = [];
    if (!this.booted) {
      this.booted = true;
      outputs.push({ kind: "lifecycle", t_ns: request.start_ns, event: "boot", detail: `qemu pid ${this.current.pid}` });
    }
    const frames = this.sliceFrames(request, outputs);
    const gate = this.current.gate;
    if (!gate.blocking) return this.runSliceAsync(request, frames, outputs);
    try {
      const done = gate.runSync(request.end_ns + this.base_ns, frames);
      return this.sliceDone(request, done.clock_ns - this.base_ns, done.frames, outputs);
    } catch (err) {
      if (!(err instanceof GateClosedError)) throw err;
      return this.crashed(request, err, outputs);
    }
  }

  /**
   * Parallel slices (RunConfig.parallel): the RUN goes to the gate now, the DONE is read
   * when the engine collects the result, after it has started the other VMs of the set.
   */
  beginSlice(request: SliceRequest): SliceCollector {
    if (this.power === "off") throw new Error(`${this.current.spec.name}: slice [${request.start_ns}, ${request.end_ns}) asked of a powered-off VM`);
    if (!(request.start_ns >= this.clock_ns && request.end_ns > request.start_ns)) {
      throw new RangeError(`${this.current.spec.name}: slice [${request.start_ns}, ${request.end_ns}) does not follow the node's clock ${this.clock_ns}`);
    }
    if (this.power === "paused") {
      const result = this.pausedSlice(request);
      return () => result;
    }
    const outputs: SliceOutput[] = [];
    if (!this.booted) {
      this.booted = true;
      outputs.push({ kind: "lifecycle", t_ns: request.start_ns, event: "boot", detail: `qemu pid ${this.current.pid}` });
    }
    const frames = this.sliceFrames(request, outputs);
    const gate = this.current.gate;
    const collect = gate.begin(request.end_ns + this.base_ns, frames);
    const crashed = (err: unknown): SliceResult | Promise<SliceResult> => {
      if (!(err instanceof GateClosedError)) throw err;
      return this.crashed(request, err, outputs);
    };
    const collector = (): SliceResult | Promise<SliceResult> => {
      try {
        const done = collect();
        if (done instanceof Promise) return done.then((d) => this.sliceDone(request, d.clock_ns - this.base_ns, d.frames, outputs), crashed);
        return this.sliceDone(request, done.clock_ns - this.base_ns, done.frames, outputs);
      } catch (err) {
        return crashed(err);
      }
    };
    if (!gate.blocking) return collector;
    // The fd is read when waited on, not now: a channel closed meanwhile reads as done (-1).
    return Object.assign(collector, { finish: { get key() { return gate.finish_fd; }, waiter: GATE_FINISH_WAITER } });
  }

  /** A paused VM does not run: its clock stands still; frames for it must wait (the engine holds them). */
  private pausedSlice(request: SliceRequest): SliceResult {
    if (request.deliveries.length > 0) throw new Error(`${this.current.spec.name}: ${request.deliveries.length} deliveries handed to a paused VM`);
    this.clock_ns = request.end_ns;
    return { end_ns: request.end_ns, wake_ns: request.end_ns, outputs: [] };
  }

  /**
   * What the gate injects in this slice, in time order: host management frames at the
   * slice's start (recorded as mgmt_in), deliveries, and agent messages due before its end
   * (one due while the VM was paused enters at the start: it waited in the NIC).
   */
  private sliceFrames(request: SliceRequest, outputs: SliceOutput[]): GateFrame[] {
    const frames: GateFrame[] = [];
    for (const bytes of this.mgmt?.takeFrames() ?? []) {
      frames.push({ t_ns: request.start_ns + this.base_ns, bytes, iface: IFACE_MGMT });
      outputs.push({ kind: "mgmt_in", t_ns: request.start_ns, bytes });
    }
    for (const d of request.deliveries) frames.push({ t_ns: d.t_ns + this.base_ns, bytes: d.bytes });
    let due = 0;
    while (due < this.queue.length && this.queue[due]!.t_ns < request.end_ns) due++;
    for (const m of this.queue.splice(0, due)) {
      frames.push({ t_ns: Math.max(m.t_ns, request.start_ns) + this.base_ns, bytes: m.frame, iface: IFACE_MGMT });
    }
    // Stable: equal times keep management, deliveries, agent order.
    return frames.sort((a, b) => a.t_ns - b.t_ns);
  }

  private async runSliceAsync(request: SliceRequest, frames: GateFrame[], outputs: SliceOutput[]): Promise<SliceResult> {
    try {
      const done = await this.current.gate.run(request.end_ns + this.base_ns, frames);
      return this.sliceDone(request, done.clock_ns - this.base_ns, done.frames, outputs);
    } catch (err) {
      if (!(err instanceof GateClosedError)) throw err;
      return this.crashed(request, err, outputs);
    }
  }

  /**
   * A node fault, applied between slices when the node's clock is t_ns (the engine calls
   * it). poweroff: QEMU stopped quietly (not a crash). restart: a fresh QEMU, guest clock
   * RTC base + t_ns. pause/resume: QEMU's clock stands still in between.
   */
  async control(c: NodeControl): Promise<void> {
    const name = this.current.spec.name;
    if (!(Number.isSafeInteger(c.t_ns) && c.t_ns >= this.clock_ns)) throw new RangeError(`${name}: ${c.action} at ${c.t_ns} ns, before the node's clock ${this.clock_ns} ns`);
    const expected: Record<NodeControl["action"], readonly Power[]> = { poweroff: ["on", "paused"], restart: ["off"], pause: ["on"], resume: ["paused"] };
    if (!expected[c.action].includes(this.power)) throw new Error(`${name}: ${c.action} at ${formatVirtualNs(c.t_ns)} of a VM that is ${this.power === "on" ? "running" : this.power === "off" ? "powered off" : "paused"}`);
    this.clock_ns = c.t_ns;
    if (c.action === "poweroff") await this.powerOff();
    else if (c.action === "restart") await this.restart(c.t_ns);
    else if (c.action === "pause") {
      this.power = "paused";
      this.paused_at_ns = c.t_ns;
    } else {
      this.base_ns -= c.t_ns - this.paused_at_ns;
      this.power = "on";
    }
  }

  private async powerOff(): Promise<void> {
    this.power = "off";
    this.console.close();
    await this.current.stop();
    removeVmFiles(this.current);
    // Nothing of the old guest survives: its commands never report an exit, half a line or file is gone.
    this.parser = new AgentParser();
    this.command_lines.clear();
  }

  private async restart(t0_ns: number): Promise<void> {
    const boot = this.options.restart;
    if (boot === undefined) throw new Error(`${this.current.spec.name}: restart needs a restart factory (VmBackendOptions.restart)`);
    this.restarting = boot(t0_ns);
    try {
      this.current = await this.restarting;
    } finally {
      this.restarting = null;
    }
    this.base_ns = helloOf(this.current) - t0_ns;
    this.console = new ConsoleReader(this.current.console_path);
    this.booted = false;
    this.power = "on";
    // Messages due while the node was off had no agent to reach; host frames sent meanwhile hit a dead NIC.
    this.queue = this.queue.filter((m) => m.t_ns >= t0_ns);
    this.enqueueIdentity(t0_ns);
    for (let i = 0; i < MGMT_DRAIN_BATCHES_MAX && (this.mgmt?.takeFrames().length ?? 0) > 0; i++);
  }

  async close(): Promise<void> {
    this.console.close();
    if (this.restarting !== null) {
      try {
        this.current = await this.restarting;
      } catch {
        // It never started: nothing more to stop.
      }
    }
    await this.current.stop();
  }

  private sliceDone(request: SliceRequest, clock_ns: number, frames: GateFrame[], outputs: SliceOutput[]): SliceResult {
    const error_ns = Math.abs(clock_ns - request.end_ns);
    this.accuracy.slices += 1;
    if (error_ns > this.accuracy.error_ns_max) this.accuracy.error_ns_max = error_ns;
    // A gate that stopped anywhere but the deadline breaks the engine's causality argument:
    // the run ends, and why is recorded as an input (replay then ends it the same way).
    if (clock_ns !== request.end_ns) {
      const late = clock_ns - request.end_ns;
      return this.failed(request, `${this.current.spec.name}: the slice gate stopped ${Math.abs(late)} ns ${late > 0 ? "after" : "before"} its deadline (at ${formatVirtualNs(clock_ns)}, deadline ${formatVirtualNs(request.end_ns)})`, outputs);
    }
    const to_host: Uint8Array[] = [];
    for (const f of frames) {
      const t_ns = f.t_ns - this.base_ns;
      if (!(t_ns >= request.start_ns && t_ns <= request.end_ns)) {
        return this.failed(request, `${this.current.spec.name}: a frame is stamped ${formatVirtualNs(t_ns)}, outside its slice [${formatVirtualNs(request.start_ns)}, ${formatVirtualNs(request.end_ns)}]`, outputs);
      }
      if (f.iface === IFACE_MGMT) {
        outputs.push({ kind: "mgmt_out", t_ns, bytes: f.bytes });
        to_host.push(f.bytes);
      } else {
        outputs.push({ kind: "emit", t_ns, bytes: f.bytes });
      }
    }
    this.mgmt?.giveFrames(to_host);
    // The serial console is written synchronously in the vCPU thread: all of this slice's
    // output is in the file once the gate has said DONE.
    const text = this.console.read();
    if (text !== "") {
      for (const e of this.parser.push(text)) this.agentEvent(e, request, outputs);
      outputs.push({ kind: "guest_output", t_ns: request.end_ns, text });
    }
    this.clock_ns = request.end_ns;
    // Stable: records of equal times keep the order they were produced in.
    outputs.sort((a, b) => a.t_ns - b.t_ns);
    return { end_ns: request.end_ns, wake_ns: request.end_ns, outputs };
  }

  /**
   * An agent marker as an output. Its time is the guest's TSC (QEMU's clock) mapped to
   * engine time, kept within the slice: a line written just after a gate carries a time
   * from the slice before.
   */
  private agentEvent(e: AgentEvent, request: SliceRequest, outputs: SliceOutput[]): void {
    const at = (guest_ns: number) => Math.min(request.end_ns, Math.max(request.start_ns, guest_ns - this.base_ns));
    if (e.kind === "start") {
      outputs.push({ kind: "command", t_ns: at(e.guest_ns), event: "start", id: e.id, detail: this.command_lines.get(e.id) ?? "" });
    } else if (e.kind === "exit") {
      this.command_lines.delete(e.id);
      outputs.push({ kind: "command", t_ns: at(e.guest_ns), event: "exit", id: e.id, detail: e.signal !== null ? `signal ${e.signal}` : String(e.code) });
    } else if (e.kind === "file") {
      this.collected.push({ node: this.current.spec.node, guest_path: e.guest_path, bytes: e.bytes, error: e.error });
    }
  }

  /** The VM can no longer be trusted to follow the engine: record why, end its part of the run. */
  private failed(request: SliceRequest, why: string, outputs: SliceOutput[]): SliceResult {
    this.crash = why;
    const kept = outputs.filter((o) => o.kind !== "emit" && o.kind !== "mgmt_out");
    kept.push({ kind: "lifecycle", t_ns: request.start_ns, event: "crash", detail: why });
    this.onCrash(this);
    return { end_ns: request.start_ns, wake_ns: VIRTUAL_NS_NEVER, outputs: kept, deliveries_taken: 0 };
  }

  private async crashed(request: SliceRequest, err: GateClosedError, outputs: SliceOutput[]): Promise<SliceResult> {
    const vm = this.current;
    const exit = await vm.exited;
    const how = exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
    const said = vm.stderr.split("\n").slice(-2).join(" | ");
    let why = `${vm.spec.name}: QEMU (pid ${vm.pid}) ${how}${said ? `: ${said}` : ""}`;
    if (!err.message.includes("QEMU exited")) why += ` (${err.message})`;
    // Nothing is known about frames sent since the last gate: none are reported.
    return this.failed(request, why, outputs);
  }
}

function helloOf(vm: QemuVm): number {
  const hello = vm.gate.hello_clock_ns;
  if (hello === null) throw new Error(`${vm.spec.name}: backend created before the gate said HELLO`);
  return hello;
}

/** QEMU removes its own files when the gate closes; one killed by the stop's SIGKILL cannot. */
function removeVmFiles(vm: QemuVm): void {
  const base = path.join(vm.spec.run_dir, `node${vm.spec.node}`);
  for (const suffix of [".gate", ".qmp", ".console.log", ".overlay.qcow2", ".initrd"]) rmSync(base + suffix, { force: true });
}
