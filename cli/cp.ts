// `tapsim cp`: files between the host and the VMs of a running `tapsim run --vms`, over
// SFTP on the same SSH forwards as `tapsim ssh`. `tapsim cp FILE N:PATH` (to node N),
// `tapsim cp N:PATH FILE` (from it), `tapsim cp --all FILE PATH` (to every node).

import { statSync } from "node:fs";
import type { Command } from "commander";
import { fsErrorText, InputError } from "../engine/errors.js";
import { sshCopy, sshFetch, type CopyOptions } from "../qmp/ssh.js";
import { integerOption } from "./options.js";
import { NODES_PROBED_MAX, probeNodes, reportSshErrors, sshOptions, targetFor, type SshFlags } from "./ssh.js";

interface CpFlags extends SshFlags {
  all: boolean;
}

/** Below this a copy is over before a progress line would help. */
const PROGRESS_BYTES_MIN = 1 << 20;
const PROGRESS_INTERVAL_MS = 200;

export function registerCp(program: Command, setExit: (code: number) => void): void {
  sshOptions(
    program
      .command("cp")
      .description("copy a file to or from a VM of a running `tapsim run --vms`: FILE N:PATH, N:PATH FILE, or --all FILE PATH")
      .argument("<src>", "local file, or N:PATH in node N")
      .argument("<dst>", "N:PATH in node N (a folder keeps the name), or a local path; with --all a path in every node"),
  )
    .option("-a, --all", "copy the local file to every VM of the run", false)
    .option("--timeout <ms>", "give up on a copy after this long", integerOption("--timeout", 1), 600_000)
    .action(async (src: string, dst: string, flags: CpFlags) => {
      const plan = await planCopy(src, dst, flags);
      setExit(await copy(plan, flags));
    });
}

type Plan = { dir: "put"; local: string; nodes: number[]; remote: string } | { dir: "get"; node: number; remote: string; local: string };

/** N:PATH names a file in node N (./N:x is a local file named "N:x"). */
function remoteSpec(arg: string): { node: number; path: string } | null {
  const m = /^(\d+):(.*)$/s.exec(arg);
  if (!m) return null;
  const node = Number(m[1]);
  if (node >= NODES_PROBED_MAX) throw new InputError(`tapsim cp: ${arg}: node ${node} is out of range (0..${NODES_PROBED_MAX - 1})`);
  if (m[2] === "") throw new InputError(`tapsim cp: ${arg}: no path after the node number`);
  return { node, path: m[2]! };
}

async function planCopy(src: string, dst: string, flags: CpFlags): Promise<Plan> {
  const from = remoteSpec(src);
  const to = remoteSpec(dst);
  if (flags.all) {
    if (from || to) throw new InputError("tapsim cp --all: give FILE PATH (a local file and a path in the guests), without N:");
    checkLocalFile(src);
    const nodes = await probeNodes(flags);
    if (nodes.length === 0) throw new InputError(`tapsim cp: no VM answers on 127.0.0.1:${flags.sshPortBase} (is \`tapsim run --vms\` running with this --ssh-port-base?)`);
    return { dir: "put", local: src, nodes, remote: dst };
  }
  if ((from === null) === (to === null)) throw new InputError("tapsim cp: exactly one of SRC and DST must be N:PATH (or use --all FILE PATH)");
  if (to) {
    checkLocalFile(src);
    return { dir: "put", local: src, nodes: [to.node], remote: to.path };
  }
  return { dir: "get", node: from!.node, remote: from!.path, local: dst };
}

function checkLocalFile(file: string): void {
  let st;
  try {
    st = statSync(file);
  } catch (err) {
    throw new InputError(`${file}: ${fsErrorText(err)}`);
  }
  if (!st.isFile()) throw new InputError(`${file}: not a regular file (tapsim cp copies one file at a time)`);
}

async function copy(plan: Plan, flags: CpFlags): Promise<number> {
  const nodes = plan.dir === "put" ? plan.nodes : [plan.node];
  const progress = new Progress(nodes.map((n) => `node${n}`));
  const opts = (i: number): CopyOptions => ({ timeout_ms: flags.timeout, onProgress: (done, total) => progress.update(i, done, total) });
  let results: PromiseSettledResult<string>[];
  try {
    if (plan.dir === "get") results = await Promise.allSettled([sshFetch(targetFor(flags, plan.node), plan.remote, plan.local, opts(0))]);
    else results = await Promise.allSettled(plan.nodes.map((node, i) => sshCopy(targetFor(flags, node), plan.local, plan.remote, opts(i))));
  } finally {
    progress.end();
  }
  // Every node's failure is reported, not just the first: with --all the others went on.
  let code = 0;
  for (const r of results) {
    if (r.status === "fulfilled") continue;
    code = await reportSshErrors(() => Promise.reject(r.reason));
  }
  return code;
}

/** One updating line on a terminal (stderr) while large files cross; nothing otherwise. */
class Progress {
  shown = false;
  private readonly done: number[];
  private readonly total: number[];
  private last_ms = 0;

  constructor(private readonly labels: string[]) {
    this.done = labels.map(() => 0);
    this.total = labels.map(() => 0);
  }

  update(i: number, done_bytes: number, total_bytes: number): void {
    this.done[i] = done_bytes;
    this.total[i] = total_bytes;
    if (process.stderr.isTTY !== true || total_bytes < PROGRESS_BYTES_MIN) return;
    const now_ms = Date.now();
    if (now_ms - this.last_ms < PROGRESS_INTERVAL_MS && done_bytes < total_bytes) return;
    this.last_ms = now_ms;
    const parts = this.labels.map((label, k) => `${label} ${percent(this.done[k]!, this.total[k]!)}`);
    process.stderr.write(`\r\x1b[Kcp: ${parts.join(", ")} of ${mib(total_bytes)}`);
    this.shown = true;
  }

  end(): void {
    if (this.shown) process.stderr.write("\r\x1b[K");
    this.shown = false;
  }
}

const percent = (done: number, total: number) => (total > 0 ? `${Math.floor((100 * done) / total)}%` : "0%");
const mib = (bytes: number) => `${(bytes / (1 << 20)).toFixed(1)} MiB`;
