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

// fs error wording is shared with the topology reader.
export { fsErrorText } from "../engine/errors.js";
