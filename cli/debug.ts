// `tapsim debug TRACE`: step through a trace by re-executing the engine (recorder/debugger/).
// On a terminal: a prompt with history (Up/Down) and Tab completion. With --commands FILE,
// or stdin not a terminal: a script — each command echoed after the prompt, output
// deterministic, and the first bad command ends it with one line naming the line (exit 2).
// A script on stdin runs line by line as the lines arrive (another program can drive the
// debugger through a pipe) and ends at `quit` or end of input; a script file must be a
// regular file of at most SCRIPT_BYTES_MAX.

import { createInterface } from "node:readline";
import type { Command } from "commander";
import { InputError } from "../engine/errors.js";
import { readInputText } from "../engine/input_file.js";
import { complete, runCommand } from "../recorder/debugger/commands.js";
import { DebugSession } from "../recorder/debugger/session.js";
import { warnIfIncomplete } from "./incomplete.js";

const PROMPT = "(tapsim) ";
const SCRIPT_LINES_MAX = 100_000;
const SCRIPT_BYTES_MAX = 16 * 1024 * 1024;
/** A longer "line" on stdin is not a command (e.g. /dev/zero): stop instead of buffering it. */
const STDIN_LINE_BYTES_MAX = 64 * 1024;

export function registerDebug(program: Command, setExit: (code: number) => void): void {
  program
    .command("debug")
    .description("step through a trace, re-executing the engine from its recorded inputs (help inside lists commands)")
    .argument("<trace>", "trace file")
    .option("--commands <file>", "run the commands in FILE (one a line, # comments) instead of a prompt")
    .action(async (path: string, flags: { commands?: string }) => {
      const script = flags.commands === undefined ? null : scriptFileLines(flags.commands);
      warnIfIncomplete(path);
      const session = DebugSession.open(path);
      try {
        const n = session.header.config.nodes.length;
        console.log(`debug: ${path}: ${n} nodes; at start, no record executed ("help" lists commands)`);
        if (script !== null) await runScript(session, script, flags.commands!);
        else if (process.stdin.isTTY) await runInteractive(session);
        else await runScript(session, stdinLines(process.stdin), "stdin");
      } finally {
        session.close();
      }
      setExit(0);
    });
}

function scriptFileLines(file: string): string[] {
  const lines = readInputText(file, SCRIPT_BYTES_MAX, "--commands").split("\n");
  if (lines.length > SCRIPT_LINES_MAX) throw new InputError(`${file}: more than ${SCRIPT_LINES_MAX} lines`);
  return lines;
}

/** Lines of `input` as they arrive; the last one may lack its newline. */
async function* stdinLines(input: NodeJS.ReadableStream): AsyncGenerator<string> {
  let pending = "";
  let line_no = 1;
  input.setEncoding("utf8");
  for await (const chunk of input as AsyncIterable<string>) {
    pending += chunk;
    for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
      yield pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      line_no += 1;
    }
    if (pending.length > STDIN_LINE_BYTES_MAX) throw new InputError(`debug: stdin:${line_no}: line longer than ${STDIN_LINE_BYTES_MAX} bytes (not a command script)`);
  }
  if (pending !== "") yield pending;
}

async function runScript(session: DebugSession, lines: Iterable<string> | AsyncIterable<string>, source: string): Promise<void> {
  let i = 0;
  for await (const raw of lines) {
    i += 1;
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    console.log(`${PROMPT}${line}`);
    try {
      const r = await runCommand(session, line);
      for (const out of r.lines) console.log(out);
      if (r.quit) return;
    } catch (err) {
      if (err instanceof InputError) throw new InputError(`debug: ${source}:${i}: ${err.message}`);
      throw err;
    }
  }
}

async function runInteractive(session: DebugSession): Promise<void> {
  const rl = createInterface({
    input: process.stdin,
    output: process.stdout,
    prompt: PROMPT,
    historySize: 1000,
    completer: (line: string) => {
      const hits = complete(line);
      const last = line.split(/\s+/).at(-1) ?? "";
      return [hits.map((h) => (h.endsWith("=") ? h : `${h} `)), last];
    },
  });
  rl.prompt();
  try {
    for await (const line of rl) {
      try {
        const r = await runCommand(session, line);
        for (const out of r.lines) console.log(out);
        if (r.quit) break;
      } catch (err) {
        if (!(err instanceof InputError)) throw err;
        console.log(`error: ${err.message}`);
      }
      rl.prompt();
    }
  } finally {
    rl.close();
  }
}
