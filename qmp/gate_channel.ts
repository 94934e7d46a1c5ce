// The engine's end of the slice gate (qmp/gate/gate.c): one unix stream socket per VM. The
// gate connects when QEMU loads the plugin, says HELLO from inside the first timer callback
// (virtual time 0, before the guest's first instruction), then answers every RUN with DONE:
// the virtual clock at the deadline and the frames the guest sent, each stamped with the
// virtual time it left the NIC. Message layout is documented at the top of gate.c.

import type { Socket } from "node:net";
import type { FinishWaiter } from "../engine/backend.js";
import { fdReadExact, fdWaitAny, fdWriteAll } from "../nodes/tap/tapio.js";

export const GATE_PROTOCOL_VERSION = 2;
/** Which NIC a frame is for or came from. */
export const IFACE_SIM = 0;
export const IFACE_MGMT = 1;
const HEADER_BYTES = 24;
const FRAME_HEADER_BYTES = 16;
const MSG_HELLO = 1;
const MSG_DONE = 2;
const MSG_TX = 3;
const MSG_ERROR = 4;
const MSG_PARKED = 5;
const MSG_RUN = 1;
const MSG_PARK = 2;
/** Bounds one message from the gate (a corrupt length must not allocate without limit). */
const PAYLOAD_BYTES_MAX = 64 * 1024 * 1024;
const FRAME_BYTES_MAX = 65536 + 64;
/** Frames the gate may report for one slice (TX chunks + DONE) before we call it runaway. */
const SLICE_FRAMES_MAX = 1_000_000;
/** A slice of an idle or busy guest never takes this long in wall time unless QEMU is stuck. */
const SYNC_TIMEOUT_MS = 600_000;

/**
 * Waits for whichever of several blocking gate channels has its DONE (or TX) readable, in one
 * poll: the pipelined schedule collects slices in the order VMs finish them. A closed channel
 * (fd -1) counts as done at once: collecting it reports the close.
 */
export const GATE_FINISH_WAITER: FinishWaiter = {
  waitAny(fds: Int32Array, count: number): number {
    if (!(count >= 1 && count <= fds.length)) throw new RangeError(`waitAny over ${count} of ${fds.length} gate fds`);
    for (let k = 0; k < count; k++) if (fds[k]! < 0) return k;
    return fdWaitAny(fds.subarray(0, count), SYNC_TIMEOUT_MS);
  },
};

export interface GateFrame {
  readonly t_ns: number;
  readonly bytes: Uint8Array;
  /** IFACE_SIM (default) or IFACE_MGMT. */
  readonly iface?: number;
}

export interface SliceDone {
  /** QEMU's virtual clock when the gate closed: equals the deadline when the gate is exact. */
  readonly clock_ns: number;
  readonly frames: GateFrame[];
}

/** The gate went away (QEMU exited or was killed) or reported an error. */
export class GateClosedError extends Error {}

type Pending = { resolve: (value: SliceDone) => void; reject: (err: Error) => void; expect: number };

export class GateChannel {
  private buffered: Buffer[] = [];
  private buffered_bytes = 0;
  private pending: Pending | null = null;
  private frames: GateFrame[] = [];
  private closed_error: GateClosedError | null = null;
  private gate_error: string | null = null;
  hello_clock_ns: number | null = null;
  /** Set by useBlockingIo(): the socket's fd, read and written directly (no event loop). */
  private sync_fd = -1;
  private readonly header = new Uint8Array(HEADER_BYTES);

  constructor(
    private readonly socket: Socket,
    private readonly label: string,
  ) {
    socket.setNoDelay?.(true);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", () => {}); // reported through "close"
    socket.on("close", () => this.onClose());
  }

  /** Resolves with the clock at the first gate (the guest has not run yet). */
  hello(): Promise<number> {
    return this.expect(MSG_HELLO).then((done) => done.clock_ns);
  }

  /** Lets the guest run to `deadline_ns`, injecting `frames` at their due times (sorted, < deadline). */
  run(deadline_ns: number, frames: readonly GateFrame[]): Promise<SliceDone> {
    if (this.sync_fd >= 0) {
      try {
        return Promise.resolve(this.runSync(deadline_ns, frames));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    this.socket.write(encodeRun(deadline_ns, frames));
    return this.expect(MSG_DONE);
  }

  /**
   * Stops the VM where the gate is frozen now (the end of the last slice) and resolves with
   * that clock; QEMU's main loop, hence QMP, runs from then on (qmp/snapshot.ts saves the
   * state). No RUN may follow.
   */
  park(): Promise<number> {
    const message = Buffer.alloc(HEADER_BYTES);
    message.writeUInt32LE(MSG_PARK, 0);
    if (this.sync_fd >= 0) {
      try {
        if (this.closed_error) throw this.closed_error;
        this.syncIo(() => fdWriteAll(this.sync_fd, message, SYNC_TIMEOUT_MS));
        const { type, count, t_ns, payload } = this.readMessageSync();
        const outcome = applyMessage(type, count, Buffer.from(payload.buffer, payload.byteOffset, payload.length), MSG_PARKED, []);
        if (outcome !== "done") throw this.closeSync(typeof outcome === "object" ? `gate error: ${outcome.error}` : "frames after PARK");
        return Promise.resolve(t_ns);
      } catch (err) {
        return Promise.reject(err);
      }
    }
    this.socket.write(message);
    return this.expect(MSG_PARKED).then((done) => done.clock_ns);
  }

  /**
   * Switches to blocking exchanges on the socket's fd through the native addon: a slice then
   * costs two syscalls on each side and no event-loop round trip (see BENCHMARKS.md). The
   * engine has nothing else to do while a VM runs; signals are handled between slices.
   */
  useBlockingIo(): void {
    if (this.pending || this.buffered_bytes > 0) throw new Error(`${this.label}: cannot switch to blocking I/O mid-exchange`);
    const handle = (this.socket as unknown as { _handle?: { fd?: number; reading?: boolean; readStop?: () => number } })._handle;
    const fd = handle?.fd;
    if (handle === undefined || typeof fd !== "number" || fd < 0 || typeof handle.readStop !== "function") return; // stays on the event-loop path
    // A paused net.Socket still has libuv read the fd into its buffer whenever the event loop
    // runs; a DONE taken that way never reaches the blocking reads (with a slice in flight
    // while the engine yields, as the pipelined schedule does, the run hung). Stop libuv too.
    if (handle.readStop() !== 0) return; // still reading: stays on the event-loop path
    handle.reading = false;
    this.socket.pause();
    this.sync_fd = fd;
  }

  get blocking(): boolean {
    return this.sync_fd >= 0;
  }

  /** For GATE_FINISH_WAITER: the fd a DONE arrives on (readable once the slice is done), -1 once closed. */
  get finish_fd(): number {
    return this.sync_fd;
  }

  /**
   * Parallel slices: sends RUN now and returns how to collect the DONE (blocking reads, or
   * the event-loop path's Promise), so that the engine can start several VMs before waiting
   * for any. Errors surface when collecting.
   */
  begin(deadline_ns: number, frames: readonly GateFrame[]): () => SliceDone | Promise<SliceDone> {
    if (this.sync_fd < 0) {
      const done = this.run(deadline_ns, frames);
      done.catch(() => {}); // rejected before it is collected: reported then
      return () => done;
    }
    try {
      if (this.closed_error) throw this.closed_error;
      this.syncIo(() => fdWriteAll(this.sync_fd, encodeRun(deadline_ns, frames), SYNC_TIMEOUT_MS));
    } catch (err) {
      return () => {
        throw err;
      };
    }
    return () => this.collectSync();
  }

  /** runSync: like run(), blocking; throws GateClosedError when QEMU has gone. */
  runSync(deadline_ns: number, frames: readonly GateFrame[]): SliceDone {
    if (this.sync_fd < 0) throw new Error(`${this.label}: blocking I/O not enabled`);
    if (this.closed_error) throw this.closed_error;
    this.syncIo(() => fdWriteAll(this.sync_fd, encodeRun(deadline_ns, frames), SYNC_TIMEOUT_MS));
    return this.collectSync();
  }

  /** Reads the TX messages and the DONE of the slice whose RUN was sent. */
  private collectSync(): SliceDone {
    const frames_out: GateFrame[] = [];
    for (let guard = 0; guard <= SLICE_FRAMES_MAX; guard++) {
      const { type, count, t_ns, payload } = this.readMessageSync();
      const outcome = applyMessage(type, count, Buffer.from(payload.buffer, payload.byteOffset, payload.length), MSG_DONE, frames_out);
      if (typeof outcome === "object") throw this.closeSync(`gate error: ${outcome.error}`);
      if (outcome === "done") return { clock_ns: t_ns, frames: frames_out };
    }
    throw this.closeSync(`more than ${SLICE_FRAMES_MAX} TX messages in one slice`);
  }

  private readMessageSync(): { type: number; count: number; t_ns: number; payload: Uint8Array } {
    this.readExactSync(this.header, HEADER_BYTES);
    const head = Buffer.from(this.header.buffer, this.header.byteOffset, HEADER_BYTES);
    const payload_bytes = readU64(head, 16);
    if (payload_bytes > PAYLOAD_BYTES_MAX) throw this.closeSync(`message of ${payload_bytes} bytes exceeds the bound`);
    const payload = new Uint8Array(payload_bytes);
    this.readExactSync(payload, payload_bytes);
    return { type: head.readUInt32LE(0), count: head.readUInt32LE(4), t_ns: readU64(head, 8), payload };
  }

  private readExactSync(buf: Uint8Array, len: number): void {
    if (len === 0) return;
    const got = this.syncIo(() => fdReadExact(this.sync_fd, buf, len, SYNC_TIMEOUT_MS));
    if (got < len) throw this.closeSync("the gate channel closed (QEMU exited)");
  }

  private syncIo<T>(io: () => T): T {
    try {
      return io();
    } catch (err) {
      throw this.closeSync(`gate channel: ${(err as Error).message}`);
    }
  }

  private closeSync(why: string): GateClosedError {
    this.closed_error ??= new GateClosedError(`${this.label}: ${why}`);
    this.sync_fd = -1;
    this.socket.destroy();
    return this.closed_error;
  }

  get is_closed(): boolean {
    return this.closed_error !== null;
  }

  /** Closing the channel makes the gate exit QEMU (it reads EOF while the guest is frozen). */
  close(): void {
    this.socket.destroy();
  }

  private expect(type: number): Promise<SliceDone> {
    if (this.pending) throw new Error(`${this.label}: a gate request is already outstanding`);
    if (this.closed_error) return Promise.reject(this.closed_error);
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject, expect: type };
      this.parse();
    });
  }

  private onData(chunk: Buffer): void {
    this.buffered.push(chunk);
    this.buffered_bytes += chunk.length;
    this.parse();
  }

  private onClose(): void {
    const why = this.gate_error ? `gate error: ${this.gate_error}` : "the gate channel closed (QEMU exited)";
    this.closed_error = new GateClosedError(`${this.label}: ${why}`);
    const pending = this.pending;
    this.pending = null;
    pending?.reject(this.closed_error);
  }

  private parse(): void {
    for (let guard = 0; guard < SLICE_FRAMES_MAX && this.pending; guard++) {
      if (this.buffered_bytes < HEADER_BYTES) return;
      const head = this.peek(HEADER_BYTES);
      const type = head.readUInt32LE(0);
      const count = head.readUInt32LE(4);
      const t_ns = readU64(head, 8);
      const payload_bytes = readU64(head, 16);
      if (payload_bytes > PAYLOAD_BYTES_MAX) return this.fail(`message of ${payload_bytes} bytes exceeds the bound`);
      if (this.buffered_bytes < HEADER_BYTES + payload_bytes) return;
      const message = this.take(HEADER_BYTES + payload_bytes);
      this.handle(type, count, t_ns, message.subarray(HEADER_BYTES));
    }
  }

  private handle(type: number, count: number, t_ns: number, payload: Buffer): void {
    const pending = this.pending!;
    const outcome = applyMessage(type, count, payload, pending.expect, this.frames);
    if (typeof outcome === "object") return this.fail(outcome.error);
    if (outcome === "more") return;
    if (type === MSG_HELLO) this.hello_clock_ns = t_ns;
    const frames = this.frames;
    this.frames = [];
    this.pending = null;
    pending.resolve({ clock_ns: t_ns, frames });
  }

  private fail(why: string): void {
    this.gate_error ??= why;
    this.socket.destroy(); // onClose rejects the pending request with the reason
  }

  private peek(bytes: number): Buffer {
    if (this.buffered[0]!.length < bytes) this.coalesce();
    return this.buffered[0]!.subarray(0, bytes);
  }

  private take(bytes: number): Buffer {
    if (this.buffered[0]!.length < bytes) this.coalesce();
    const first = this.buffered[0]!;
    const out = first.subarray(0, bytes);
    if (first.length === bytes) this.buffered.shift();
    else this.buffered[0] = first.subarray(bytes);
    this.buffered_bytes -= bytes;
    return out;
  }

  private coalesce(): void {
    this.buffered = [Buffer.concat(this.buffered, this.buffered_bytes)];
  }
}

/**
 * What one message from the gate means to a request expecting a message of type `expect`
 * (the event-loop and the blocking paths share it): an error, "more" (frames sent mid-slice:
 * keep reading) or "done". Frames it carries are appended to `frames`.
 */
function applyMessage(type: number, count: number, payload: Buffer, expect: number, frames: GateFrame[]): { error: string } | "more" | "done" {
  if (type === MSG_ERROR) return { error: payload.toString("utf8") };
  if (type === MSG_HELLO && count !== GATE_PROTOCOL_VERSION) {
    return { error: `gate protocol version ${count}, expected ${GATE_PROTOCOL_VERSION} (rebuild with scripts/build_gate.sh)` };
  }
  if (type === MSG_TX || type === MSG_DONE) {
    if (!decodeFrames(payload, count, frames)) return { error: "malformed frame table from the gate" };
    if (frames.length > SLICE_FRAMES_MAX) return { error: `more than ${SLICE_FRAMES_MAX} frames in one slice` };
    if (type === MSG_TX) return "more";
  }
  if (type !== expect) return { error: `unexpected message type ${type} (expected ${expect})` };
  return "done";
}

function encodeRun(deadline_ns: number, frames: readonly GateFrame[]): Buffer {
  let payload_bytes = 0;
  for (const f of frames) payload_bytes += FRAME_HEADER_BYTES + f.bytes.length;
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload_bytes);
  out.writeUInt32LE(MSG_RUN, 0);
  out.writeUInt32LE(frames.length, 4);
  writeU64(out, 8, deadline_ns);
  writeU64(out, 16, payload_bytes);
  let off = HEADER_BYTES;
  let last_ns = 0;
  for (const f of frames) {
    if (!(f.t_ns >= last_ns && f.t_ns < deadline_ns)) throw new RangeError(`frame due at ${f.t_ns} outside the slice ending ${deadline_ns}`);
    if (f.bytes.length > FRAME_BYTES_MAX) throw new RangeError(`frame of ${f.bytes.length} bytes`);
    writeU64(out, off, f.t_ns);
    out.writeUInt32LE(f.bytes.length, off + 8);
    out.writeUInt32LE(f.iface ?? IFACE_SIM, off + 12);
    out.set(f.bytes, off + FRAME_HEADER_BYTES);
    off += FRAME_HEADER_BYTES + f.bytes.length;
    last_ns = f.t_ns;
  }
  return out;
}

/** Appends `count` frames from a gate frame table; false if the table is malformed. */
function decodeFrames(payload: Buffer, count: number, into: GateFrame[]): boolean {
  let off = 0;
  for (let i = 0; i < count; i++) {
    if (off + FRAME_HEADER_BYTES > payload.length) return false;
    const t_ns = readU64(payload, off);
    const len = payload.readUInt32LE(off + 8);
    const iface = payload.readUInt32LE(off + 12);
    off += FRAME_HEADER_BYTES;
    if (len > FRAME_BYTES_MAX || off + len > payload.length || iface > IFACE_MGMT) return false;
    // Copy: the payload buffer is reused by later reads only through subarray, but frames
    // outlive the slice (they sit in inboxes), so they must not pin the whole message.
    into.push({ t_ns, bytes: Uint8Array.prototype.slice.call(payload, off, off + len), iface });
    off += len;
  }
  return off === payload.length;
}

function readU64(buf: Buffer, off: number): number {
  return buf.readUInt32LE(off) + buf.readUInt32LE(off + 4) * 0x1_0000_0000;
}

function writeU64(buf: Buffer, off: number, value: number): void {
  if (!(Number.isSafeInteger(value) && value >= 0)) throw new RangeError(`not a u64 nanosecond value: ${value}`);
  buf.writeUInt32LE(value % 0x1_0000_0000, off);
  buf.writeUInt32LE(Math.floor(value / 0x1_0000_0000), off + 4);
}
