// Runs the real CLI (bin/tapsim.js) as a child process.

import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function tapsim(...args: string[]): CliResult {
  return tapsimWith({}, ...args);
}

export interface CliOptions {
  /** Killed after this (default 120 s): code -1 then. */
  timeout_ms?: number;
  /** stdin (default: an empty pipe). */
  input?: string;
  env?: NodeJS.ProcessEnv;
}

export function tapsimWith(opts: CliOptions, ...args: string[]): CliResult {
  const r = spawnSync(process.execPath, ["--max-semi-space-size=32", path.join(REPO_ROOT, "bin/tapsim.js"), ...args], {
    cwd: REPO_ROOT,
    encoding: "utf8",
    timeout: opts.timeout_ms ?? 120_000,
    killSignal: "SIGKILL",
    ...(opts.input === undefined ? {} : { input: opts.input }),
    ...(opts.env === undefined ? {} : { env: opts.env }),
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
