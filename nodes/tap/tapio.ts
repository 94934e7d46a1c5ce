// TypeScript face of the tapio-rs addon: TAP devices owned by this process, with batched,
// non-blocking frame I/O (one call moves many frames, each stamped with CLOCK_MONOTONIC at
// read) and a readiness wait that blocks a libuv worker in poll(), never the event loop.

import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { InputError } from "../../engine/errors.js";
import { ETH_HEADER_BYTES } from "../../engine/net/ethernet.js";

interface NativeTap {
  readonly name: string;
  readonly fd: number;
  readonly ifindex: number;
  readBatch(out: Uint8Array, lens: Uint32Array, stamps_ns: Float64Array, frames_max: number): number;
  writeBatch(data: Uint8Array, lens: Uint32Array, count: number): number;
  waitReadable(timeout_ms: number): Promise<boolean>;
  close(): void;
}

interface NativeModule {
  TapDevice: { create(name: string, mtu?: number | null): NativeTap };
  monotonicNs(): number;
  fdWriteAll(fd: number, data: Uint8Array, timeout_ms: number): void;
  fdReadExact(fd: number, buf: Uint8Array, len: number, timeout_ms: number): number;
  fdWaitAny(fds: Int32Array, timeout_ms: number): number;
}

const ADDON_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../tapio-rs/build/tapio.node");
/** Frames one readBatch/writeBatch moves at most (the addon's BATCH_FRAMES_MAX). */
export const BATCH_FRAMES_MAX = 4096;
export const FRAME_BYTES_MAX = 65_535 + ETH_HEADER_BYTES;

let native: NativeModule | null = null;
function addon(): NativeModule {
  if (native === null) {
    try {
      native = createRequire(import.meta.url)(ADDON_PATH) as NativeModule;
    } catch (err) {
      throw new InputError(`tapio-rs addon not built (${(err as NodeJS.ErrnoException).code ?? "load failed"}): run scripts/build_tapio.sh`);
    }
  }
  return native;
}

export interface ReadBatch {
  /** Frames packed back to back. */
  readonly bytes: Uint8Array;
  readonly lens: Uint32Array;
  /** Host CLOCK_MONOTONIC (ns) when each frame was read. */
  readonly stamps_ns: Float64Array;
  readonly count: number;
}

export class TapDevice {
  private readonly read_bytes: Uint8Array;
  private readonly read_lens = new Uint32Array(BATCH_FRAMES_MAX);
  private readonly read_stamps = new Float64Array(BATCH_FRAMES_MAX);

  private constructor(
    private readonly dev: NativeTap,
    readonly mtu: number,
    read_buffer_bytes: number,
  ) {
    this.read_bytes = new Uint8Array(read_buffer_bytes);
  }

  /** Creates and brings up the TAP `name` (1..15 chars); it disappears when closed or when this process dies. */
  static create(name: string, opts: { mtu?: number; read_buffer_bytes?: number } = {}): TapDevice {
    const mtu = opts.mtu ?? 1500;
    let dev: NativeTap;
    try {
      dev = addon().TapDevice.create(name, opts.mtu ?? null);
    } catch (err) {
      if (err instanceof InputError) throw err;
      throw new InputError((err as Error).message);
    }
    return new TapDevice(dev, mtu, opts.read_buffer_bytes ?? 1 << 20);
  }

  get name(): string {
    return this.dev.name;
  }

  get fd(): number {
    return this.dev.fd;
  }

  get ifindex(): number {
    return this.dev.ifindex;
  }

  /** Whatever is ready now (possibly nothing). The returned views are reused by the next call. */
  readBatch(frames_max = BATCH_FRAMES_MAX): ReadBatch {
    const count = this.dev.readBatch(this.read_bytes, this.read_lens, this.read_stamps, Math.min(frames_max, BATCH_FRAMES_MAX));
    let bytes = 0;
    for (let i = 0; i < count; i++) {
      const len = this.read_lens[i]!;
      if (!(len >= ETH_HEADER_BYTES && len <= this.mtu + 18)) throw new Error(`TAP ${this.name}: read a frame of ${len} bytes`);
      bytes += len;
    }
    return { bytes: this.read_bytes.subarray(0, bytes), lens: this.read_lens, stamps_ns: this.read_stamps, count };
  }

  /** Writes frames in order until the device would block; returns how many went out. */
  writeBatch(frames: readonly Uint8Array[]): number {
    if (frames.length === 0) return 0;
    const count = Math.min(frames.length, BATCH_FRAMES_MAX);
    const lens = new Uint32Array(count);
    let total = 0;
    for (let i = 0; i < count; i++) {
      const len = frames[i]!.length;
      if (!(len >= ETH_HEADER_BYTES && len <= FRAME_BYTES_MAX)) throw new RangeError(`TAP ${this.name}: frame ${i} has ${len} bytes`);
      lens[i] = len;
      total += len;
    }
    const packed = new Uint8Array(total);
    let off = 0;
    for (let i = 0; i < count; i++) {
      packed.set(frames[i]!, off);
      off += frames[i]!.length;
    }
    return this.dev.writeBatch(packed, lens, count);
  }

  /** Resolves true when frames are ready, false on timeout or close (timeout_ms < 0: none). */
  waitReadable(timeout_ms: number): Promise<boolean> {
    return this.dev.waitReadable(timeout_ms);
  }

  close(): void {
    this.dev.close();
  }
}

/** CLOCK_MONOTONIC now, in ns: the clock of ReadBatch.stamps_ns. */
export function monotonicNs(): number {
  return addon().monotonicNs();
}

/**
 * Blocking write of all of `data` to a stream fd (e.g. a paused net.Socket's), for lock-step
 * exchanges where the caller has nothing else to do meanwhile: no event-loop round trip.
 */
export function fdWriteAll(fd: number, data: Uint8Array, timeout_ms: number): void {
  if (!(Number.isInteger(fd) && fd >= 0)) throw new RangeError(`not a file descriptor: ${fd}`);
  addon().fdWriteAll(fd, data, timeout_ms);
}

/** Blocking read of exactly `len` bytes into `buf`; returns fewer only when the peer closed. */
export function fdReadExact(fd: number, buf: Uint8Array, len: number, timeout_ms: number): number {
  if (!(Number.isInteger(fd) && fd >= 0)) throw new RangeError(`not a file descriptor: ${fd}`);
  if (!(len >= 0 && len <= buf.length)) throw new RangeError(`read of ${len} bytes into a buffer of ${buf.length}`);
  return addon().fdReadExact(fd, buf, len, timeout_ms);
}

/** Blocks until one of `fds` is readable or closed (poll); its index, the lowest if several. Throws after `timeout_ms`. */
export function fdWaitAny(fds: Int32Array, timeout_ms: number): number {
  if (!(fds.length >= 1 && fds.every((fd) => Number.isInteger(fd) && fd >= 0))) throw new RangeError(`not file descriptors: ${fds.join(", ")}`);
  const index = addon().fdWaitAny(fds, timeout_ms);
  if (!(index >= 0 && index < fds.length)) throw new RangeError(`fdWaitAny returned ${index} for ${fds.length} fds`);
  return index;
}
