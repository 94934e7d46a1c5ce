// Helpers for tests that boot real VMs through the CLI: a `tapsim run --vms` in the
// background whose output can be awaited line by line, and checks that a run left nothing.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { REPO_ROOT } from "./cli.js";

export interface BackgroundRun {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first match of `re` in stdout+stderr; rejects on exit or timeout. */
  waitFor(re: RegExp, timeout_ms: number): Promise<RegExpMatchArray>;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function startRun(args: string[], env: Record<string, string> = {}): BackgroundRun {
  const child = spawn(process.execPath, [path.join(REPO_ROOT, "bin/tapsim.js"), ...args], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  let out = "";
  let err = "";
  const listeners = new Set<() => void>();
  child.stdout!.setEncoding("utf8").on("data", (s: string) => ((out += s), listeners.forEach((l) => l())));
  child.stderr!.setEncoding("utf8").on("data", (s: string) => ((err += s), listeners.forEach((l) => l())));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("close", (code, signal) => {
      listeners.forEach((l) => l());
      resolve({ code, signal });
    }),
  );
  let exited = false;
  void done.then(() => (exited = true));
  const waitFor = (re: RegExp, timeout_ms: number) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        const m = (out + "\n" + err).match(re);
        if (m) return finish(() => resolve(m));
        if (exited) finish(() => reject(new Error(`tapsim exited before ${re}:\n${out}\n${err}`)));
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`timed out waiting for ${re}:\n${out}\n${err}`))), timeout_ms);
      const finish = (f: () => void) => {
        clearTimeout(timer);
        listeners.delete(check);
        f();
      };
      listeners.add(check);
      check();
    });
  return { child, stdout: () => out, stderr: () => err, waitFor, done };
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Pids and run dir that `tapsim run --vms` prints once the VMs are up. */
export function runResources(text: string): { pids: number[]; run_dir: string } {
  const m = /run dir (\S+); (?:QEMU )?pids ([\d ]+)/.exec(text);
  if (!m) throw new Error(`no run dir / pids line in:\n${text}`);
  return { run_dir: m[1]!, pids: m[2]!.trim().split(/\s+/).map(Number) };
}

export function leftovers(resources: { pids: number[]; run_dir: string }): string[] {
  const left = resources.pids.filter(isAlive).map((pid) => `QEMU pid ${pid} still running`);
  if (existsSync(resources.run_dir)) left.push(`run dir ${resources.run_dir} still exists`);
  return left;
}

/** On a failed assertion the run is still going: Ctrl+C lets it clean up; SIGKILL if it hangs. */
export async function stopRun(run: BackgroundRun): Promise<void> {
  if (run.child.exitCode !== null || run.child.signalCode !== null) return;
  run.child.kill("SIGINT");
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([run.done, new Promise((resolve) => (timer = setTimeout(resolve, 30_000)))]);
  clearTimeout(timer);
  run.child.kill("SIGKILL");
}
