// Errors caused by user input (config, topology, trace files, CLI flags). The CLI prints
// their message as one line and exits 2; anything else escaping is a bug and keeps its stack.

export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InputError";
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
