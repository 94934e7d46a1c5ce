// The bytes of frames in flight, owned by the engine. A frame a node emits is copied once
// into a chunk of a few large buffers and referred to by a number (chunk * CHUNK_BYTES +
// offset); a frame sent to the broadcast MAC is copied once for all its receivers. Chunks
// count the frames in flight that use them and are reused once none do. Without it, every
// frame in flight was a Uint8Array view kept alive until delivery: long enough to be
// promoted, so collecting them dominated the profile at 64+ nodes.
//
// Views into a chunk (`view`) are valid until the next `collect()`: the engine hands them to
// backends for one slice (or one set of concurrent slices) and collects only between them.

import { InputError } from "../errors.js";

const CHUNK_SHIFT = 20;
/** Bytes per chunk; a frame larger than this gets a chunk of its own (never reused). */
export const ARENA_CHUNK_BYTES = 1 << CHUNK_SHIFT;
const OFFSET_MASK = ARENA_CHUNK_BYTES - 1;
/**
 * A location is a non-negative int32, chunk << CHUNK_SHIFT | offset: shifts and masks, where
 * a double location cost a division and a floor per use (several per frame). So chunk ids
 * stay below 2^(31 - CHUNK_SHIFT): 2 GiB of frames in flight.
 */
export const ARENA_CHUNKS_MAX = 1 << (31 - CHUNK_SHIFT);

export class FrameArena {
  /** Chunk buffers by id (null: a freed oversize chunk). */
  private readonly chunks: (Uint8Array | null)[] = [];
  /** Frames in flight referring to each chunk. */
  private live = new Int32Array(16);
  private readonly free: number[] = [];
  /** Ids of freed oversize chunks (null in `chunks`), for new chunks: ids must stay below ARENA_CHUNKS_MAX. */
  private readonly vacant: number[] = [];
  /** Chunks whose count reached zero since the last collect() (they may still be referenced by views). */
  private readonly emptied: number[] = [];
  private current = -1;
  private used = ARENA_CHUNK_BYTES;
  /** The current chunk's buffer (hot path: no lookup). */
  private buf: Uint8Array = new Uint8Array(0);

  /** Copies src[from, from + length) in (default: all of src); returns its location. Its chunk is kept until every ref() taken on it is released. */
  put(src: Uint8Array, from = 0, length = src.length - from): number {
    if (length > ARENA_CHUNK_BYTES) return this.putOversize(src.subarray(from, from + length));
    if (this.used + length > ARENA_CHUNK_BYTES) this.nextChunk();
    const offset = this.used;
    const buf = this.buf;
    if (from === 0 && length === src.length) {
      buf.set(src, offset);
    } else if (length <= 128) {
      // A loop beats set(subarray) on small frames: no view to allocate.
      for (let k = 0; k < length; k++) buf[offset + k] = src[from + k]!;
    } else {
      buf.set(src.subarray(from, from + length), offset);
    }
    this.used = offset + length;
    return (this.current << CHUNK_SHIFT) | offset;
  }

  /** Offset of `loc` in its chunk (chunkOf). */
  offsetOf(loc: number): number {
    return loc & OFFSET_MASK;
  }

  /** One more frame in flight uses the bytes at `loc`. */
  ref(loc: number): void {
    this.live[loc >>> CHUNK_SHIFT]! += 1;
  }

  /** A frame in flight using `loc` is gone (delivered or dropped). */
  release(loc: number): void {
    const chunk = loc >>> CHUNK_SHIFT;
    if (--this.live[chunk]! === 0 && chunk !== this.current) this.emptied.push(chunk);
  }

  /** The bytes at `loc` (a view, valid until the next collect()). */
  view(loc: number, length: number): Uint8Array {
    // The constructor, not subarray(): half the cost (no species lookup), and views are made per frame.
    return new Uint8Array(this.chunks[loc >>> CHUNK_SHIFT]!.buffer, loc & OFFSET_MASK, length);
  }

  /** The chunk buffer holding `loc` and the offset in it (for batch consumers that take no view). */
  chunkOf(loc: number): Uint8Array {
    return this.chunks[loc >>> CHUNK_SHIFT]!;
  }

  /** Makes chunks no frame in flight uses any more reusable: call only when no view handed out is still in use. */
  collect(): void {
    const emptied = this.emptied;
    if (emptied.length === 0) return; // the common case: called per step
    for (let k = 0; k < emptied.length; k++) {
      const chunk = emptied[k]!;
      if (this.live[chunk] !== 0 || chunk === this.current) continue; // reused meanwhile
      if (this.chunks[chunk]!.length === ARENA_CHUNK_BYTES) {
        this.free.push(chunk);
      } else {
        this.chunks[chunk] = null;
        this.vacant.push(chunk); // its id serves the next new chunk
      }
      this.live[chunk] = -1; // not in use: a second entry for it in `emptied` is skipped
    }
    emptied.length = 0;
  }

  /** Chunks allocated (for tests and the memory guard's messages). */
  get chunk_count(): number {
    return this.chunks.length;
  }

  private nextChunk(): void {
    const old = this.current;
    if (old >= 0 && this.live[old] === 0) this.emptied.push(old);
    const reused = this.free.pop();
    const chunk = reused ?? this.newChunk(ARENA_CHUNK_BYTES);
    this.live[chunk] = 0;
    this.current = chunk;
    this.buf = this.chunks[chunk]!;
    this.used = 0;
  }

  private putOversize(bytes: Uint8Array): number {
    const chunk = this.newChunk(bytes.length);
    this.live[chunk] = 0;
    this.chunks[chunk]!.set(bytes);
    // Not current: once its frames are released it goes to `emptied` and is dropped at collect().
    // A frame no receiver takes is never released: mark it so the first collect() frees it.
    this.emptied.push(chunk);
    return chunk << CHUNK_SHIFT;
  }

  private newChunk(bytes: number): number {
    const reused = this.vacant.pop();
    if (reused !== undefined) {
      this.chunks[reused] = new Uint8Array(bytes);
      return reused;
    }
    const id = this.chunks.length;
    if (id >= ARENA_CHUNKS_MAX) arenaFull();
    this.chunks.push(new Uint8Array(bytes));
    if (id >= this.live.length) {
      const grown = new Int32Array(this.live.length * 2);
      grown.set(this.live);
      this.live = grown;
    }
    return id;
  }
}

/** Out of line: the message is built only on error. */
function arenaFull(): never {
  throw new InputError(
    `frames in flight need more than ${(ARENA_CHUNKS_MAX * ARENA_CHUNK_BYTES) / 2 ** 20} MiB: the workload outgrows memory ` +
      `(use fewer nodes, --broadcasters, or lower --inflight-max)`,
  );
}
