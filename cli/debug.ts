// `tapsim debug TRACE`: step through a trace by re-executing the engine (recorder/debugger/).
// On a terminal: a prompt with history (Up/Down) and Tab completion. With --commands FILE,
// or stdin not a terminal: a script — each command echoed after the prompt, output
// deterministic, and the first bad command ends it with one line naming the line (exit 2).

import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import type { Command } from "commander";
import { InputError, fsErrorText } from "../engine/errors.js";
import { complete, runCommand } from "../recorder/debugger/commands.js";
import { DebugSession } from "../recorder/debugger/session.js";

const PROMPT = "(tapsim) ";
const SCRIPT_LINES_MAX = 100_000;

export function registerDebug(program: Command, setExit: (code: number) => void): void {
  program
    .command("debug")
    .description("step through a trace, re-executing the engine from its recorded inputs (help inside lists commands)")
    .argument("<trace>", "trace file")
    .option("--commands <file>", "run the commands in FILE (one a line, # comments) instead of a prompt")
    .action(async (path: string, flags: { commands?: string }) => {
      const session = DebugSession.open(path);
      try {
        const n = session.header.config.nodes.length;
        console.log(`debug: ${path}: ${n} nodes; at start, no record executed ("help" lists commands)`);
        if (flags.commands !== undefined) await runScript(session, readScript(flags.commands), flags.commands);
        else if (process.stdin.isTTY) await runInteractive(session);
        else await runScript(session, readFileSync(0, "utf8"), "stdin");
      } finally {
        session.close();
      }
      setExit(0);
    });
}

function readScript(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new InputError(`${file}: ${fsErrorText(err)}`);
  }
}

async function runScript(session: DebugSession, text: string, source: string): Promise<void> {
  const lines = text.split("\n");
  if (lines.length > SCRIPT_LINES_MAX) throw new InputError(`${source}: more than ${SCRIPT_LINES_MAX} lines`);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "" || line.startsWith("#")) continue;
    console.log(`${PROMPT}${line}`);
    try {
      const r = await runCommand(session, line);
      for (const out of r.lines) console.log(out);
      if (r.quit) return;
    } catch (err) {
      if (err instanceof InputError) throw new InputError(`debug: ${source}:${i + 1}: ${err.message}`);
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
