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
  const r = spawnSync(process.execPath, ["--max-semi-space-size=32", path.join(REPO_ROOT, "bin/tapsim.js"), ...args], {
    cwd: REPO_ROOT,
    encoding: "utf8",
    timeout: 120_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
