// Small frames carved out of large shared buffers: allocating each 60-100 byte frame as its
// own Uint8Array costs a native allocation and GC tracking per frame, which dominated the
// in-process engine's profile. A slab is freed when no frame cut from it is referenced.

export const SLAB_BYTES = 256 * 1024;

export class FrameSlab {
  private slab = new Uint8Array(SLAB_BYTES);
  private used_bytes = 0;

  alloc(length: number): Uint8Array {
    if (!(length > 0 && length <= SLAB_BYTES)) throw new RangeError(`frame length ${length} outside 1..${SLAB_BYTES}`);
    if (this.used_bytes + length > SLAB_BYTES) {
      this.slab = new Uint8Array(SLAB_BYTES);
      this.used_bytes = 0;
    }
    const frame = this.slab.subarray(this.used_bytes, this.used_bytes + length);
    this.used_bytes += length;
    return frame;
  }
}
