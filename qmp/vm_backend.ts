// A QEMU VM as an engine node: each slice is one RUN/DONE exchange with the VM's slice gate.
// The engine's virtual time is QEMU's virtual clock (both start at 0 when the guest starts),
// so a delivery due at t is injected at exactly t and an emitted frame carries the exact
// virtual time at which it left the guest's NIC.

import type { NodeBackend, SliceOutput, SliceRequest, SliceResult } from "../engine/backend.js";
import { formatVirtualNs, VIRTUAL_NS_NEVER } from "../engine/units.js";
import { ConsoleReader } from "./console_reader.js";
import { GateClosedError, IFACE_MGMT, type GateFrame } from "./gate_channel.js";
import type { QemuVm } from "./launcher.js";
import type { MgmtPort } from "./mgmt.js";

export interface SliceAccuracy {
  slices: number;
  /** Largest |virtual clock at the gate - requested deadline| seen, in ns. */
  error_ns_max: number;
}

export class VmBackend implements NodeBackend {
  readonly kind = "vm" as const;
  readonly accuracy: SliceAccuracy = { slices: 0, error_ns_max: 0 };
  /** Why this VM stopped following the engine (QEMU died, the gate missed a deadline), once it has. */
  crash: string | null = null;
  private booted = false;
  private readonly base_ns: number;

  private readonly console: ConsoleReader;

  constructor(
    readonly vm: QemuVm,
    private readonly onCrash: (backend: VmBackend) => void,
    /** The host's end of the management NIC; null when nobody may talk to the guest (--no-ssh). */
    private readonly mgmt: MgmtPort | null = null,
  ) {
    this.console = new ConsoleReader(vm.console_path);
    const hello = vm.gate.hello_clock_ns;
    if (hello === null) throw new Error(`${vm.spec.name}: backend created before the gate said HELLO`);
    this.base_ns = hello;
  }

  /** Synchronous when the gate uses blocking I/O (the usual case); a Promise otherwise or on a crash. */
  runSlice(request: SliceRequest): SliceResult | Promise<SliceResult> {
    const outputs: SliceOutput[] = [];
    if (!this.booted) {
      this.booted = true;
      outputs.push({ kind: "lifecycle", t_ns: request.start_ns, event: "boot", detail: `qemu pid ${this.vm.pid}` });
    }
    // Management frames from the host enter at the slice's start, before any delivery.
    const frames: GateFrame[] = [];
    for (const bytes of this.mgmt?.takeFrames() ?? []) {
      frames.push({ t_ns: request.start_ns + this.base_ns, bytes, iface: IFACE_MGMT });
      outputs.push({ kind: "mgmt_in", t_ns: request.start_ns, bytes });
    }
    for (const d of request.deliveries) frames.push({ t_ns: d.t_ns + this.base_ns, bytes: d.bytes });
    const gate = this.vm.gate;
    if (!gate.blocking) return this.runSliceAsync(request, frames, outputs);
    try {
      const done = gate.runSync(request.end_ns + this.base_ns, frames);
      return this.sliceDone(request, done.clock_ns - this.base_ns, done.frames, outputs);
    } catch (err) {
      if (!(err instanceof GateClosedError)) throw err;
      return this.crashed(request, err, outputs);
    }
  }

  private async runSliceAsync(request: SliceRequest, frames: GateFrame[], outputs: SliceOutput[]): Promise<SliceResult> {
    try {
      const done = await this.vm.gate.run(request.end_ns + this.base_ns, frames);
      return this.sliceDone(request, done.clock_ns - this.base_ns, done.frames, outputs);
    } catch (err) {
      if (!(err instanceof GateClosedError)) throw err;
      return this.crashed(request, err, outputs);
    }
  }

  async close(): Promise<void> {
    this.console.close();
    await this.vm.stop();
  }

  private sliceDone(request: SliceRequest, clock_ns: number, frames: GateFrame[], outputs: SliceOutput[]): SliceResult {
    const error_ns = Math.abs(clock_ns - request.end_ns);
    this.accuracy.slices += 1;
    if (error_ns > this.accuracy.error_ns_max) this.accuracy.error_ns_max = error_ns;
    // A gate that stopped anywhere but the deadline breaks the engine's causality argument:
    // the run ends, and why is recorded as an input (replay then ends it the same way).
    if (clock_ns !== request.end_ns) {
      const late = clock_ns - request.end_ns;
      return this.failed(request, `${this.vm.spec.name}: the slice gate stopped ${Math.abs(late)} ns ${late > 0 ? "after" : "before"} its deadline (at ${formatVirtualNs(clock_ns)}, deadline ${formatVirtualNs(request.end_ns)})`, outputs);
    }
    const to_host: Uint8Array[] = [];
    for (const f of frames) {
      const t_ns = f.t_ns - this.base_ns;
      if (!(t_ns >= request.start_ns && t_ns <= request.end_ns)) {
        return this.failed(request, `${this.vm.spec.name}: a frame is stamped ${formatVirtualNs(t_ns)}, outside its slice [${formatVirtualNs(request.start_ns)}, ${formatVirtualNs(request.end_ns)}]`, outputs);
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
    if (text !== "") outputs.push({ kind: "guest_output", t_ns: request.end_ns, text });
    return { end_ns: request.end_ns, wake_ns: request.end_ns, outputs };
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
    const exit = await this.vm.exited;
    const how = exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
    const said = this.vm.stderr.split("\n").slice(-2).join(" | ");
    let why = `${this.vm.spec.name}: QEMU (pid ${this.vm.pid}) ${how}${said ? `: ${said}` : ""}`;
    if (!err.message.includes("QEMU exited")) why += ` (${err.message})`;
    // Nothing is known about frames sent since the last gate: none are reported.
    return this.failed(request, why, outputs);
  }
}
