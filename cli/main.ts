// `tapsim` command line. Each command lives in its own module; this file only wires them
// into commander and turns user-input errors into one line on stderr with exit code 2, and
// failures of the host (full disk, SSH) into one line with exit code 1. TAPSIM_DEBUG=1 adds
// the stack.

import { Command, CommanderError } from "commander";
import { InputError, oneLine } from "../engine/errors.js";
import { registerCp } from "./cp.js";
import { registerDebug } from "./debug.js";
import { registerDiff } from "./diff.js";
import { registerDump } from "./dump.js";
import { registerExport } from "./export.js";
import { registerImage } from "./image.js";
import { registerInfo } from "./info.js";
import { registerReplay } from "./replay.js";
import { registerRerun } from "./rerun.js";
import { registerResults } from "./results.js";
import { registerRun } from "./run.js";
import { registerSsh } from "./ssh.js";
import { registerSweep } from "./sweep.js";
import { TAPSIM_VERSION } from "./version.js";
import { registerView } from "./view.js";

export const EXIT_OK = 0;
export const EXIT_DIFFERENT = 1;
export const EXIT_USAGE = 2;
/** A run or command failed at run time, not through the input's fault (disk full, a VM that died, a guest that does not answer SSH). */
export const EXIT_FAILED = 1;

export async function main(argv: string[]): Promise<number> {
  const program = new Command("tapsim")
    .description("Virtual-clock network simulator with replayable traces")
    .version(TAPSIM_VERSION)
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(text.replace(/^error: /, "tapsim: ")) });
  let exit_code = EXIT_OK;
  const setExit = (code: number) => {
    exit_code = code;
  };
  registerRun(program, setExit);
  registerSweep(program, setExit);
  registerInfo(program, setExit);
  registerReplay(program, setExit);
  registerRerun(program, setExit);
  registerDiff(program, setExit);
  registerDump(program, setExit);
  registerResults(program, setExit);
  registerExport(program, setExit);
  registerImage(program, setExit);
  registerSsh(program, setExit);
  registerCp(program, setExit);
  registerView(program, setExit);
  registerDebug(program, setExit);
  try {
    await program.parseAsync(argv);
    return exit_code;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    if (err instanceof InputError) return report(err, EXIT_USAGE);
    // Anything else (a VM that died, a full disk, a bug) is one line too; the stack only with
    // TAPSIM_DEBUG=1.
    return report(err instanceof Error ? err : new Error(String(err)), EXIT_FAILED);
  }
}

function report(err: Error, code: number): number {
  process.stderr.write(`tapsim: ${oneLine(err.message)}\n`);
  if (process.env["TAPSIM_DEBUG"] === "1") process.stderr.write(`${err.stack}\n`);
  return code;
}
