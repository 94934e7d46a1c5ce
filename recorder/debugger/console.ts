// A node's console as the debugger has seen it up to the cursor: the last lines it printed
// and the line it is printing. A guest's output arrives in pieces cut wherever a slice
// ended, so a line can span several guest_output records; `break output` matches whole
// lines, joined across those pieces.

import { InputError } from "../../engine/errors.js";

/** Lines remembered per node (what `info node N` shows). */
export const CONSOLE_LINES_KEPT = 10;
/** A line longer than this keeps its end (a progress bar redrawn with \r never ends its line). */
const LINE_CHARS_MAX = 4096;

/** What one piece of output did to the console: the line it continued, as it was, and the lines it touched. */
export interface ConsoleAppend {
  before: string;
  /** lines[0] is `before` continued; the last one may still be incomplete. */
  lines: string[];
}

export class ConsoleLines {
  private readonly done: string[] = [];
  /** The line being printed, raw (a trailing \r may be the first half of \r\n). */
  private tail = "";

  append(text: string): ConsoleAppend {
    const before = clean(this.tail);
    const parts = (this.tail + text).split("\n");
    for (const line of parts.slice(0, -1)) {
      this.done.push(clean(line));
      if (this.done.length > CONSOLE_LINES_KEPT) this.done.shift();
    }
    this.tail = parts.at(-1)!.slice(-LINE_CHARS_MAX);
    return { before, lines: parts.map(clean) };
  }

  /** The last n lines, the one being printed included when it has text. */
  last(n = CONSOLE_LINES_KEPT): string[] {
    const all = this.tail === "" ? this.done : [...this.done, clean(this.tail)];
    return all.slice(-n);
  }

  get empty(): boolean {
    return this.done.length === 0 && this.tail === "";
  }
}

function clean(line: string): string {
  return (line.endsWith("\r") ? line.slice(0, -1) : line).slice(-LINE_CHARS_MAX);
}

/** Whether this piece of output completed a match: a touched line matches, and (for the continued line) did not before. */
export function outputMatches(pattern: RegExp, seen: ConsoleAppend): boolean {
  return seen.lines.some((line, i) => pattern.test(line) && !(i === 0 && pattern.test(seen.before)));
}

/** "got ping" or "/got ping/i": a JavaScript regular expression, flags only in the slash form. */
export function parseOutputPattern(text: string): RegExp {
  const slashed = /^\/(.*)\/([imsu]*)$/.exec(text);
  try {
    return slashed ? new RegExp(slashed[1]!, slashed[2]) : new RegExp(text);
  } catch (err) {
    throw new InputError(`break output: ${JSON.stringify(text)} is not a regular expression (${err instanceof Error ? err.message : String(err)})`);
  }
}
