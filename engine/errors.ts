// Errors caused by user input (config, topology, trace files, CLI flags): the CLI prints
// their message as one line and exits 2. Failures of the host while doing the work (a full
// disk, a VM that does not answer): one line, exit 1. Anything else escaping is a bug and
// keeps its stack.

export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InputError";
  }
}

/** The host failed us (disk full, I/O error, unreachable guest): not the user's input, not a bug. */
export class RuntimeFailure extends Error {
  constructor(message: string) {
    super(message.replace(/[\r\n]+/g, " "));
    this.name = "RuntimeFailure";
  }
}

/**
 * A backend's slice result breaks the engine's contract (an output outside its slice, a wake
 * before the slice end). From a live backend that is a bug; from a replayed trace it means
 * the recorded inputs are inconsistent, which replay reports as a divergence.
 */
export class SliceResultError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SliceResultError";
  }
}

/** "file:line:column: message" — the location format every parser uses. */
export function locatedMessage(file: string, line: number, column: number, message: string): string {
  return `${file}:${line}:${column}: ${message}`;
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

/** "ENOSPC (no space left on the device)": the errno code for scripts and searches, then what it means. */
export function errnoText(err: unknown): string {
  const code = (err as NodeJS.ErrnoException)?.code;
  const text = fsErrorText(err);
  if (code === undefined || text.startsWith(code)) return text;
  return `${code} (${text})`;
}

/** An error message as one line (for the CLI's output and the trace's run_end reason). */
export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ");
}
