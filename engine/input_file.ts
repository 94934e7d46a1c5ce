// Reading a file the user named as input (topology, command script): only a regular file of
// bounded size. A FIFO would block the open or the read forever, /dev/zero would never end,
// and a huge file would be read whole into memory before any error could be given.

import { closeSync, constants as fsConstants, fstatSync, openSync, readSync } from "node:fs";
import { InputError, fsErrorText } from "./errors.js";

/** "FILE: cannot read: DETAIL"; `detail` alone for callers that word the message their own way. */
export class InputFileError extends InputError {
  constructor(
    what: string,
    readonly detail: string,
  ) {
    super(`${what}: cannot read: ${detail}`);
  }
}

/** Topologies and scripts are text a person wrote: far below this. */
export const INPUT_FILE_BYTES_MAX = 16 * 1024 * 1024;

/** The file's text; InputError naming `file` (and `flag`, when given) for anything else. */
export function readInputText(file: string, bytes_max = INPUT_FILE_BYTES_MAX, flag?: string): string {
  const what = flag === undefined ? file : `${flag} ${file}`;
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting for one.
    fd = openSync(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch (err) {
    throw new InputFileError(what, fsErrorText(err));
  }
  try {
    const stat = fstatSync(fd);
    if (stat.isDirectory()) throw new InputFileError(what, "is a directory");
    if (!stat.isFile()) throw new InputFileError(what, `not a regular file (${fileKind(stat)})`);
    if (stat.size > bytes_max) throw new InputFileError(what, `${stat.size} bytes, more than the ${bytes_max} an input file may have`);
    return readAll(fd, stat.size, what);
  } finally {
    closeSync(fd);
  }
}

/** Reads up to `size` bytes (the size fstat gave; a file that grows meanwhile is cut there). */
function readAll(fd: number, size: number, what: string): string {
  const buf = Buffer.allocUnsafe(size);
  let got = 0;
  try {
    while (got < size) {
      const n = readSync(fd, buf, got, size - got, got);
      if (n === 0) break;
      got += n;
    }
  } catch (err) {
    throw new InputFileError(what, fsErrorText(err));
  }
  return buf.toString("utf8", 0, got);
}

function fileKind(stat: { isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSocket(): boolean }): string {
  if (stat.isFIFO()) return "a FIFO";
  if (stat.isCharacterDevice()) return "a character device";
  if (stat.isBlockDevice()) return "a block device";
  if (stat.isSocket()) return "a socket";
  return "not a file";
}
