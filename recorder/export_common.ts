// Shared by the exporters: an output file written in large synchronous pieces (constant
// memory, one line of error on failure), and the bytes of frames still in flight (a
// delivery record names its frame by id only; the bytes are in the earlier frame_emit).

import { isGroupMac, ETH_HEADER_BYTES } from "../engine/net/ethernet.js";
import { InputError, fsErrorText } from "../engine/errors.js";
import { closeSync, openSync, writeSync } from "node:fs";

const FLUSH_BYTES = 1 << 20;

/** Buffered writer to a file; errors are InputErrors that name the file. */
export class OutputFile {
  private readonly fd: number;
  private readonly parts: Uint8Array[] = [];
  private pending_bytes = 0;
  bytes_written = 0;

  constructor(readonly path: string) {
    try {
      this.fd = openSync(path, "w");
    } catch (err) {
      throw new InputError(`${path}: cannot write: ${fsErrorText(err)}`);
    }
  }

  write(part: Uint8Array | string): void {
    const bytes = typeof part === "string" ? Buffer.from(part, "utf8") : part;
    this.parts.push(bytes);
    this.pending_bytes += bytes.length;
    if (this.pending_bytes >= FLUSH_BYTES) this.flush();
  }

  flush(): void {
    if (this.pending_bytes === 0) return;
    const all = Buffer.concat(this.parts, this.pending_bytes);
    this.parts.length = 0;
    this.pending_bytes = 0;
    try {
      for (let off = 0; off < all.length; ) off += writeSync(this.fd, all, off, all.length - off);
    } catch (err) {
      throw new InputError(`${this.path}: cannot write: ${fsErrorText(err)}`);
    }
    this.bytes_written += all.length;
  }

  close(): void {
    try {
      this.flush();
    } finally {
      closeSync(this.fd);
    }
  }
}

/**
 * Bytes of emitted frames until every receiver has had its delivery or drop. A unicast (or
 * unroutable) frame has one outcome; a group frame one per other node. Memory is bounded by
 * the frames in flight, as in the engine itself.
 */
export class InFlightFrames {
  private readonly frames = new Map<number, { bytes: Uint8Array; outcomes_left: number }>();

  constructor(private readonly node_count: number) {
    if (!(Number.isInteger(node_count) && node_count > 0)) throw new RangeError(`node_count must be > 0, got ${node_count}`);
  }

  emitted(frame_id: number, bytes: Uint8Array): void {
    const group = bytes.length >= ETH_HEADER_BYTES && isGroupMac(bytes);
    this.frames.set(frame_id, { bytes, outcomes_left: group ? this.node_count - 1 : 1 });
  }

  /** The frame's bytes for a delivery or drop; forgets the frame after its last outcome. */
  outcome(frame_id: number): Uint8Array | undefined {
    const f = this.frames.get(frame_id);
    if (f === undefined) return undefined;
    f.outcomes_left -= 1;
    if (f.outcomes_left <= 0) this.frames.delete(frame_id);
    return f.bytes;
  }

  get size(): number {
    return this.frames.size;
  }
}
