// What a running `tapsim run --vms` tells `tapsim ssh/exec/cp` about itself, found by its
// --ssh-port-base: ~/.tapsim/runs/<port_base>.json (pid, run dir, ports, whether the
// guests take passwords) and ~/.tapsim/runs/<port_base>.known_hosts (one line per node,
// "[127.0.0.1]:PORT ssh-ed25519 AAAA…", usable with OpenSSH's UserKnownHostsFile). Both are
// removed when the run ends; a file left by a run that died is ignored (its pid is gone)
// and replaced by the next run on that port base.
//
// Not in the run directory: a SIGKILLed tapsim cannot remove them, and QEMU's own clean-up
// (qmp/gate/) removes only its files, then the directory if it is empty.

import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fsErrorText, InputError } from "../engine/errors.js";
import { processAlive } from "../engine/host_process.js";
import { ensurePrivateDir, tapsimHome } from "./client_key.js";

export interface RunState {
  format: 1;
  pid: number;
  run_dir: string;
  port_base: number;
  /** Node i's SSH: 127.0.0.1:ports[i]. */
  ports: number[];
  known_hosts: string;
  image_kind: "initramfs" | "qcow2";
  /** The guests accept passwords (the password itself is never written here). */
  password_login: boolean;
  user: string;
}

export function runsDir(home = tapsimHome()): string {
  return path.join(home, "runs");
}

export function statePaths(port_base: number, home = tapsimHome()): { state: string; known_hosts: string } {
  const base = path.join(runsDir(home), String(port_base));
  return { state: `${base}.json`, known_hosts: `${base}.known_hosts` };
}

/** The known_hosts line of one node: OpenSSH's [host]:port form. */
export function knownHostsLine(port: number, public_line: string): string {
  return `[127.0.0.1]:${port} ${public_line.trim().split(/\s+/).slice(0, 2).join(" ")}`;
}

export function writeRunState(state: Omit<RunState, "format" | "known_hosts">, host_keys: readonly (string | null)[], home = tapsimHome()): RunState {
  ensurePrivateDir(runsDir(home));
  const paths = statePaths(state.port_base, home);
  writeKnownHosts(paths.known_hosts, state.ports, host_keys);
  const full: RunState = { format: 1, ...state, known_hosts: paths.known_hosts };
  writeAtomically(paths.state, JSON.stringify(full, null, 2) + "\n");
  return full;
}

/** Lines for the nodes whose key is known (a user image's is learned at its first login). */
export function writeKnownHosts(file: string, ports: readonly number[], host_keys: readonly (string | null)[]): void {
  const lines = ports.flatMap((port, i) => (host_keys[i] ? [knownHostsLine(port, host_keys[i]!)] : []));
  writeAtomically(file, lines.map((l) => `${l}\n`).join(""));
}

/** Removes the files if they are still this process's (a later run may have replaced them). */
export function removeRunState(port_base: number, home = tapsimHome()): void {
  const paths = statePaths(port_base, home);
  const state = readStateFile(paths.state);
  if (state !== null && state.pid !== process.pid) return;
  rmSync(paths.state, { force: true });
  rmSync(paths.known_hosts, { force: true });
}

/** The live run on this port base, or null (no file, or its tapsim is gone). */
export function readRunState(port_base: number, home = tapsimHome()): RunState | null {
  const state = readStateFile(statePaths(port_base, home).state);
  return state !== null && processAlive(state.pid) ? state : null;
}

/** The known_hosts lines of one node's port ("ssh-ed25519 AAAA…"), for ssh2's host check. */
export function knownHostKeys(file: string, port: number): string[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new InputError(`${file}: ${fsErrorText(err)}`);
  }
  const prefix = `[127.0.0.1]:${port} `;
  return text.split("\n").filter((l) => l.startsWith(prefix)).map((l) => l.slice(prefix.length).trim());
}

function readStateFile(file: string): RunState | null {
  try {
    const s = JSON.parse(readFileSync(file, "utf8")) as RunState;
    return s.format === 1 && Number.isInteger(s.pid) && Array.isArray(s.ports) ? s : null;
  } catch {
    return null;
  }
}

function writeAtomically(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, file);
}
