import { InputError } from "../engine/errors.js";

/**
 * A trace file that cannot be written or read as one. The CLI prints the message as it is,
 * so it is always one line and starts with the file's path: "x.trace: chunk 3 at byte 4096
 * is corrupt (checksum mismatch)".
 */
export class TraceError extends InputError {
  constructor(
    readonly trace_path: string,
    detail: string,
  ) {
    // Details can quote text from the file or the OS; a newline there would break the one-line promise.
    super(`${trace_path}: ${detail}`.replace(/[\r\n]+/g, " "));
    this.name = "TraceError";
  }
}

/** What an fs error means to someone who named the file, without the errno noise. */
export function fsErrorText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  switch (e?.code) {
    case "ENOENT":
      return "no such file";
    case "ENOTDIR":
      return "no such file (a parent of it is not a directory)";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EISDIR":
      return "is a directory";
    case "ENOSPC":
      return "no space left on the device";
    case "EROFS":
      return "read-only file system";
    default:
      return e?.code ? `${e.code}${e.syscall ? ` in ${e.syscall}` : ""}` : String(err);
  }
}
