// An output file (export, HTML page) that appears whole or not at all: bytes go to a hidden
// temporary file in the same directory, renamed over the target only once everything was
// written. A corrupt trace, a full disk or a crash half-way leaves no partial file under
// the name the user gave (the same directory keeps the rename atomic: one file system).

import { closeSync, fsyncSync, openSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import path from "node:path";
import { InputError, RuntimeFailure, errnoText, fsErrorText } from "../engine/errors.js";

export class OutputFile {
  private fd: number | null;
  bytes_written = 0;

  private constructor(
    /** Where the file ends up. */
    readonly path: string,
    /** Where its bytes go until commit(). */
    readonly temp_path: string,
    fd: number,
  ) {
    this.fd = fd;
  }

  /** Creates the temporary file; a path that cannot be a file is the user's error (exit 2). */
  static create(target: string): OutputFile {
    if (statSync(target, { throwIfNoEntry: false })?.isDirectory()) throw new InputError(`${target}: cannot write: is a directory`);
    const temp = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.tmp`);
    let fd: number;
    try {
      fd = openSync(temp, "w", 0o644);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOSPC" || code === "EIO" || code === "EDQUOT") throw new RuntimeFailure(`${target}: cannot write: ${errnoText(err)}`);
      throw new InputError(`${target}: cannot write: ${fsErrorText(err)}`);
    }
    return new OutputFile(target, temp, fd);
  }

  /** Writes all of `data` (a short write is continued; an error is one line naming the target). */
  write(data: Uint8Array | string, length = typeof data === "string" ? -1 : data.length): void {
    const bytes = typeof data === "string" ? Buffer.from(data) : data;
    const n = length < 0 ? bytes.length : length;
    if (this.fd === null) throw new Error(`${this.path}: output already closed`);
    try {
      let done = 0;
      while (done < n) done += writeSync(this.fd, bytes, done, n - done);
    } catch (err) {
      throw new RuntimeFailure(`${this.path}: cannot write: ${errnoText(err)}`);
    }
    this.bytes_written += n;
  }

  /** Makes the file appear under its name, complete. */
  commit(): void {
    if (this.fd === null) throw new Error(`${this.path}: output already closed`);
    const fd = this.fd;
    this.fd = null;
    try {
      // A delayed write error (NFS, quota) surfaces at fsync or close, not at write.
      fsyncSync(fd);
      closeSync(fd);
      renameSync(this.temp_path, this.path);
    } catch (err) {
      this.removeTemp();
      throw new RuntimeFailure(`${this.path}: cannot write: ${errnoText(err)}`);
    }
  }

  /** Removes the temporary file (after a failure); nothing appears under the name. Safe to call again. */
  discard(): void {
    if (this.fd !== null) {
      closeSync(this.fd);
      this.fd = null;
    }
    this.removeTemp();
  }

  private removeTemp(): void {
    try {
      unlinkSync(this.temp_path);
    } catch {
      // already gone (committed or discarded)
    }
  }
}

/** `body(out)` writes the file; it appears only if body returns. */
export function writeOutput<T>(target: string, body: (out: OutputFile) => T): T {
  const out = OutputFile.create(target);
  try {
    const result = body(out);
    out.commit();
    return result;
  } finally {
    out.discard();
  }
}
