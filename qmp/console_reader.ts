// Reads what a guest printed on its serial console (QEMU writes it to a file in the run dir)
// slice by slice, as text: each slice's new bytes become one guest_output record.

import { closeSync, openSync, readSync } from "node:fs";
import { StringDecoder } from "node:string_decoder";

/** Bound on console bytes taken per slice; the rest is read at the next slice. */
const CONSOLE_BYTES_PER_SLICE_MAX = 256 * 1024;

export class ConsoleReader {
  private fd = -1;
  private offset = 0;
  private readonly decoder = new StringDecoder("utf8"); // a character split across slices stays whole
  private readonly buf = Buffer.allocUnsafe(CONSOLE_BYTES_PER_SLICE_MAX);

  constructor(private readonly path: string) {}

  /** New text since the last call ("" when none, or when the file is not there yet). */
  read(): string {
    if (this.fd < 0) {
      try {
        this.fd = openSync(this.path, "r");
      } catch {
        return "";
      }
    }
    const n = readSync(this.fd, this.buf, 0, this.buf.length, this.offset);
    this.offset += n;
    return n === 0 ? "" : this.decoder.write(this.buf.subarray(0, n));
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
