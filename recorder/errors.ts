import { InputError } from "../engine/errors.js";

/** A trace file that cannot be read as one; the message is one line starting with the path. */
export class TraceError extends InputError {
  constructor(path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = "TraceError";
  }
}
