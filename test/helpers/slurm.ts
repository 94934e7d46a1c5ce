// A real single-node Slurm cluster for a test, all of it in a temporary directory: a munge
// key and munged on its own socket, slurm.conf naming this host (its short name, 2 CPUs
// or what it has, its memory less a margin) on two free ports, slurmctld and slurmd in
// the foreground as children. What Debian's Slurm 22.05 needs in a container without
// systemd or a cgroup it may use: proctrack/linuxproc, task/none, no accounting
// (jobacct_gather/none, accounting_storage/none), SlurmUser=root, every state, spool, pid
// and log file in the temporary directory. stop() cancels what is queued, stops the
// daemons (SIGTERM, then SIGKILL) and removes the directory; it runs on every exit path.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { availableParallelism, tmpdir } from "node:os";
import path from "node:path";

const IDLE_WAIT_MS = 60_000;
const STOP_WAIT_MS = 10_000;
/** Memory left to the host beside what slurm.conf gives the node. */
const MEMORY_MARGIN_MIB = 1024;
const DAEMONS = ["munged", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "scancel"] as const;

export interface SlurmCluster {
  dir: string;
  /** SLURM_CONF and PATH for the client commands (sbatch, squeue) and tapsim. */
  env: NodeJS.ProcessEnv;
  node: string;
  stop(): Promise<void>;
}

/** Why a Slurm cluster cannot be started here (a missing program), or null. */
export function slurmMissing(): string | null {
  for (const name of DAEMONS) {
    const found = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" });
    if (found.status !== 0) return `${name} not installed (scripts/install_deps.sh installs slurmctld, slurmd, slurm-client, munge)`;
  }
  return null;
}

export async function startSlurm(): Promise<SlurmCluster> {
  const dir = mkdtempSync(path.join(tmpdir(), "tapsim-slurm-"));
  const children: ChildProcess[] = [];
  const node = spawnSync("hostname", ["-s"], { encoding: "utf8" }).stdout.trim();
  const env: NodeJS.ProcessEnv = { ...process.env, SLURM_CONF: path.join(dir, "slurm.conf") };
  // A failure half-way still stops what started; a test process that exits early too.
  const onExit = () => children.forEach((c) => c.exitCode === null && c.kill("SIGKILL"));
  process.once("exit", onExit);
  const stop = async () => {
    await stopCluster(dir, env, children);
    process.off("exit", onExit);
  };
  const cluster: SlurmCluster = { dir, env, node, stop };
  try {
    for (const sub of ["state", "spool", "log", "munge"]) mkdirSync(path.join(dir, sub), { mode: 0o700 });
    const key = path.join(dir, "munge", "munge.key");
    writeFileSync(key, randomBytes(1024));
    chmodSync(key, 0o600);
    const socket = path.join(dir, "munge", "munge.socket");
    children.push(daemon(dir, "munged", ["-F", "-f", `--socket=${socket}`, `--key-file=${key}`, `--log-file=${path.join(dir, "log", "munged.log")}`, `--pid-file=${path.join(dir, "munged.pid")}`, `--seed-file=${path.join(dir, "munge", "seed")}`], env));
    await waitFor(() => existsSync(socket), 10_000, "munged's socket", dir);
    const [ctld_port, d_port] = await freePorts(2);
    writeFileSync(env["SLURM_CONF"]!, slurmConf(dir, node, socket, ctld_port!, d_port!));
    children.push(daemon(dir, "slurmctld", ["-D", "-f", env["SLURM_CONF"]!], env));
    children.push(daemon(dir, "slurmd", ["-D", "-f", env["SLURM_CONF"]!], env));
    await waitFor(() => sinfoState(env) === "idle", IDLE_WAIT_MS, `node ${node} idle in sinfo`, dir);
    return cluster;
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

function slurmConf(dir: string, node: string, socket: string, ctld_port: number, d_port: number): string {
  const mem_total_mib = Math.floor(Number(/MemTotal:\s+(\d+)/.exec(readFileSync("/proc/meminfo", "utf8"))?.[1] ?? 0) / 1024);
  const cpus = Math.min(2, availableParallelism());
  const p = (name: string) => path.join(dir, name);
  return `ClusterName=tapsimtest
SlurmctldHost=${node}
SlurmUser=root
SlurmctldPort=${ctld_port}
SlurmdPort=${d_port}
AuthType=auth/munge
AuthInfo=socket=${socket}
StateSaveLocation=${p("state")}
SlurmdSpoolDir=${p("spool")}
SlurmctldPidFile=${p("slurmctld.pid")}
SlurmdPidFile=${p("slurmd.pid")}
SlurmctldLogFile=${p("log/slurmctld.log")}
SlurmdLogFile=${p("log/slurmd.log")}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
NodeName=${node} CPUs=${cpus} RealMemory=${Math.max(1024, mem_total_mib - MEMORY_MARGIN_MIB)} State=UNKNOWN
PartitionName=debug Nodes=${node} Default=YES MaxTime=INFINITE State=UP
`;
}

function daemon(dir: string, name: string, args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  const out = path.join(dir, "log", `${name}.out`);
  const child = spawn(name, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  const chunks: string[] = [];
  child.stdout!.on("data", (b: Buffer) => chunks.push(b.toString()));
  child.stderr!.on("data", (b: Buffer) => chunks.push(b.toString()));
  child.on("close", () => {
    try {
      writeFileSync(out, chunks.join(""), { flag: "a" });
    } catch {
      // the directory is gone: the cluster was stopped
    }
  });
  child.on("error", () => {}); // a missing program: waitFor reports what never came up
  return child;
}

function sinfoState(env: NodeJS.ProcessEnv): string {
  const r = spawnSync("sinfo", ["--noheader", "--format=%T"], { env, encoding: "utf8", timeout: 10_000 });
  return r.status === 0 ? r.stdout.trim() : "";
}

async function waitFor(ok: () => boolean, timeout_ms: number, what: string, dir: string): Promise<void> {
  const deadline = Date.now() + timeout_ms;
  while (Date.now() < deadline) {
    if (ok()) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  const logs = ["slurmctld.log", "slurmd.log", "munged.log"].map((f) => path.join(dir, "log", f)).filter(existsSync);
  const tail = logs.map((f) => `${path.basename(f)}: ${readFileSync(f, "utf8").trim().split("\n").slice(-3).join(" | ")}`).join("; ");
  throw new Error(`slurm: ${what}: not after ${timeout_ms / 1000} s (${tail})`);
}

async function freePorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  for (let k = 0; k < n; k++) {
    ports.push(
      await new Promise<number>((resolve, reject) => {
        const server = createServer();
        server.once("error", reject);
        server.listen(0, "0.0.0.0", () => {
          const port = (server.address() as { port: number }).port;
          server.close(() => resolve(port));
        });
      }),
    );
  }
  return ports;
}

async function stopCluster(dir: string, env: NodeJS.ProcessEnv, children: ChildProcess[]): Promise<void> {
  // Jobs first: their tasks (tapsim and QEMU) are the daemons' grandchildren, not ours.
  spawnSync("scancel", ["--full", "--user", "root"], { env, timeout: 10_000 });
  const deadline = Date.now() + STOP_WAIT_MS;
  while (Date.now() < deadline && queueLength(env) > 0) await new Promise((r) => setTimeout(r, 250));
  for (const child of [...children].reverse()) {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) continue;
    const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_WAIT_MS);
    await closed;
    clearTimeout(timer);
  }
  rmSync(dir, { recursive: true, force: true });
}

function queueLength(env: NodeJS.ProcessEnv): number {
  const r = spawnSync("squeue", ["--noheader"], { env, encoding: "utf8", timeout: 10_000 });
  return r.status === 0 ? r.stdout.trim().split("\n").filter((l) => l.trim() !== "").length : 0;
}
