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
