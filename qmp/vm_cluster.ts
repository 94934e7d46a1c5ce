// Everything one VM run owns outside the engine: the private run directory, one QEMU per
// node (started together, each frozen at its first gate), their backends, SSH readiness,
// and the teardown that leaves no process, socket or overlay behind on any exit path.

import { lstatSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { InputError } from "../engine/errors.js";
import type { RunConfig } from "../engine/trace_records.js";
import { rtcBaseEpochS } from "../engine/units.js";
import { kernelCmdline, type GuestImage, type NodeCmdline } from "../guest/image.js";
import { mgmtMac, QemuVm, type BootSpec, type VmSpec } from "./launcher.js";
import { guestMgmtCidr, MGMT_NET_DEFAULT, MgmtNet, type MgmtPort } from "./mgmt.js";
import { sshExec, waitForSsh, type SshTarget } from "./ssh.js";
import { identityFrames, TEMPLATE_MGMT_MAC, TEMPLATE_RTC_BASE, TEMPLATE_SIM_MAC, type Snapshot } from "./snapshot.js";
import { VmBackend } from "./vm_backend.js";

export const SSH_PORT_BASE_DEFAULT = 2222;
export const MEMORY_MIB_DEFAULT = 256;
/** A fixed default RTC base: runs are reproducible unless the user asks for the wall date. */
export const RTC_BASE_DEFAULT = "2025-01-01T00:00:00";
/** Kernel command lines are capped at 2048 bytes on x86; the boot command rides on it. */
const BOOT_CMD_BYTES_MAX = 1024;

export interface VmClusterOptions {
  readonly config: RunConfig;
  readonly image: GuestImage;
  readonly ssh_port_base: number;
  readonly memory_mib: number;
  readonly rtc_base: string;
  /** Shell command run at boot in each node (null: none); deterministic, unlike SSH. */
  readonly boot_commands: readonly (string | null)[];
  /** Default guest: each node's extra initramfs archive (gzip'd cpio), appended to the image's. */
  readonly extra_archives?: readonly (Buffer | null)[];
  /** How tapsim logs in: the client key, and a password only where the guests accept one (absent: no SSH). */
  readonly access?: { readonly private_key?: Buffer | string; readonly password?: string };
  readonly onCrash: (backend: VmBackend) => void;
  /** First two octets of the management network (default 10.254): guest i is <net>.i.2. */
  readonly mgmt_net?: string;
  /** false: no TAPs and no SSH forwards (nobody can reach the guests: --no-ssh). */
  readonly mgmt_live?: boolean;
  /** Ports for the management NICs when not live (`tapsim rerun` feeds recorded frames). */
  readonly mgmt_ports?: readonly MgmtPort[];
  /** Default guest: start every VM from the snapshot of its memory size (qmp/snapshot.ts) instead of booting it. */
  readonly snapshots?: ReadonlyMap<number, Snapshot>;
  /** Another build of the gate plugin (benchmarks compare variants side by side). */
  readonly gate_plugin_path?: string;
}

export class VmCluster {
  readonly backends: VmBackend[] = [];
  private stopped = false;
  /** A user image's host keys, as first seen by waitForSsh. */
  private readonly learned_host_keys: (string | null)[] = [];

  private mgmt: MgmtNet | null = null;

  private constructor(
    private readonly options: VmClusterOptions,
    readonly run_dir: string,
  ) {}

  /** Starts every VM; on any failure stops those already started and removes the run dir. */
  static async start(options: VmClusterOptions): Promise<VmCluster> {
    const n = options.config.nodes.length;
    if (options.boot_commands.length !== n) throw new RangeError(`boot_commands has ${options.boot_commands.length} entries for ${n} nodes`);
    const live = options.mgmt_live !== false;
    if (live) await checkPortsFree(options.ssh_port_base, n);
    const run_dir = mkdtempSync(path.join(os.tmpdir(), "tapsim-run-")); // mode 0700
    const cluster = new VmCluster(options, run_dir);
    process.on("exit", cluster.onExit);
    try {
      // Refused before anything starts (an identity too long for one datagram).
      if (options.snapshots !== undefined) options.config.nodes.forEach((node) => cluster.identityFrames(node.id, 0));
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    try {
      if (live) cluster.mgmt = await MgmtNet.open({ run_id: runId(run_dir), nodes: n, net: cluster.mgmtNet(), ssh_port_base: options.ssh_port_base });
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    const started = await Promise.allSettled(options.config.nodes.map((node) => cluster.startVm(node.id, 0)));
    for (const [i, s] of started.entries()) {
      if (s.status !== "fulfilled") continue;
      const port = cluster.mgmt?.ports[i] ?? options.mgmt_ports?.[i] ?? null;
      const identity = cluster.snapshotOf(i) === null ? {} : { identity: (t0_ns: number) => cluster.identityFrames(i, t0_ns) };
      cluster.backends.push(new VmBackend(s.value, options.onCrash, port, { mgmt_net: cluster.mgmtNet(), restart: (t0_ns) => cluster.startVm(i, t0_ns), ...identity }));
    }
    const failed = started.find((s): s is PromiseRejectedResult => s.status === "rejected");
    if (failed) {
      await cluster.stop();
      throw failed.reason;
    }
    return cluster;
  }

  sshTarget(node: number): SshTarget {
    const o = this.options;
    return {
      host: "127.0.0.1",
      port: o.ssh_port_base + node,
      user: o.image.ssh_user,
      ...(o.access?.private_key === undefined ? {} : { private_key: o.access.private_key }),
      ...(o.access?.password === undefined ? {} : { password: o.access.password }),
      // The default image's key is known in advance; a user image's is learned at its first login.
      ...(o.image.kind === "initramfs"
        ? { host_keys: { accepted: [o.image.host_key_public], source: `${o.image.dir}/image.json` } }
        : { on_host_key: (line: string) => (this.learned_host_keys[node] ??= line) }),
    };
  }

  /** Each node's host key ("ssh-ed25519 AAAA…"), or null while a user image's is not yet seen. */
  hostKeys(): (string | null)[] {
    const image = this.options.image;
    return this.options.config.nodes.map((node) => (image.kind === "initramfs" ? image.host_key_public : this.learned_host_keys[node.id] ?? null));
  }

  /** Resolves when every VM answers SSH; for a user image, then configures its simulated NIC. */
  async waitForSsh(timeout_ms: number, signal: AbortSignal, onReady: (node: number) => void): Promise<void> {
    await Promise.all(
      this.backends.map(async (_, node) => {
        await waitForSsh(this.sshTarget(node), { timeout_ms, signal });
        if (this.options.image.kind === "qcow2") await this.configureSimNic(node);
        onReady(node);
      }),
    );
  }

  mgmtNet(): string {
    return this.options.mgmt_net ?? MGMT_NET_DEFAULT;
  }

  /** Stops every QEMU (gate closed, then SIGTERM, then SIGKILL) and removes the run dir. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.allSettled(this.backends.map((b) => b.close()));
    this.mgmt?.close();
    rmSync(this.run_dir, { recursive: true, force: true });
    process.off("exit", this.onExit);
  }

  /** If the process exits without stop() (an uncaught error), still leave nothing behind. */
  private readonly onExit = (): void => {
    for (const b of this.backends) b.vm.killNow();
    this.mgmt?.close();
    rmSync(this.run_dir, { recursive: true, force: true });
  };

  /**
   * Boots node's QEMU with its guest clock at engine time t0_ns (0 at the run's start, the
   * restart time for a node powered off and on again): same image, command line and extra
   * archive, plus sim.t0 and an RTC base moved on by t0's whole seconds.
   */
  async startVm(node: number, t0_ns: number): Promise<QemuVm> {
    if (this.stopped) throw new Error(`node ${node}: the run's VMs are stopped`);
    if (!(Number.isSafeInteger(t0_ns) && t0_ns >= 0)) throw new RangeError(`node ${node}: start time ${t0_ns} ns`);
    this.ensureRunDir();
    const snapshot = this.snapshotOf(node);
    const plugin = this.options.gate_plugin_path === undefined ? {} : { gate_plugin_path: this.options.gate_plugin_path };
    if (snapshot !== null) return await QemuVm.start({ ...this.cloneSpec(node, snapshot), ...plugin });
    const extra = this.writeExtraArchive(node);
    try {
      return await QemuVm.start({ ...this.vmSpec(node, extra, t0_ns), ...plugin });
    } finally {
      // QEMU has read it into guest memory once started; the Buffer stays for a restart.
      if (extra !== null) rmSync(extra, { force: true });
    }
  }

  /**
   * The gate removes the run dir when its QEMU leaves it empty (a lone node powered off):
   * made again, private, and refused if someone else's appeared at that path meanwhile.
   */
  private ensureRunDir(): void {
    try {
      mkdirSync(this.run_dir, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const st = lstatSync(this.run_dir);
    if (!st.isDirectory() || st.uid !== process.getuid?.() || (st.mode & 0o777) !== 0o700) throw new Error(`${this.run_dir}: not this run's private folder any more`);
  }

  /** The node's extra archive as a file in the private run dir (QEMU takes a path), or null. */
  private writeExtraArchive(node: number): string | null {
    const gz = this.options.extra_archives?.[node] ?? null;
    if (gz === null) return null;
    const file = path.join(this.run_dir, `node${node}.extra.cpio.gz`);
    writeFileSync(file, gz, { mode: 0o600 });
    return file;
  }

  private vmSpec(node: number, extra_initrd_path: string | null, t0_ns: number): VmSpec {
    const o = this.options;
    const cfg = o.config.nodes[node]!;
    const boot = bootSpec(o.image, { ...this.cmdlineNode(node), ...(t0_ns > 0 ? { t0_ns } : {}) }, o.boot_commands[node] ?? null);
    return {
      node,
      name: cfg.name,
      mac: cfg.mac,
      boot: boot.kind === "initramfs" && extra_initrd_path !== null ? { ...boot, extra_initrd_path } : boot,
      ssh_port: o.ssh_port_base + node,
      memory_mib: this.memoryMib(node),
      rtc_base: shiftedRtcBase(o.rtc_base, t0_ns),
      rng_seed: o.config.seed * 4096 + node,
      run_dir: this.run_dir,
    };
  }

  /** The snapshot node starts from, or null when it boots (no snapshots, or a user image). */
  snapshotOf(node: number): Snapshot | null {
    if (this.options.snapshots === undefined) return null;
    const snapshot = this.options.snapshots.get(this.memoryMib(node));
    if (snapshot === undefined) throw new Error(`node ${node}: no snapshot for ${this.memoryMib(node)} MiB`);
    return snapshot;
  }

  private memoryMib(node: number): number {
    return this.options.config.vm?.node_memory_mib?.[node] ?? this.options.memory_mib;
  }

  /**
   * A clone is its template's machine exactly (MACs, RTC, seed included: the saved devices
   * carry them anyway); the node's own settings arrive as its identity (identityFrames).
   */
  private cloneSpec(node: number, snapshot: Snapshot): VmSpec {
    return {
      node,
      name: this.options.config.nodes[node]!.name,
      mac: TEMPLATE_SIM_MAC,
      mgmt_mac: TEMPLATE_MGMT_MAC,
      boot: { kind: "snapshot", ram_path: snapshot.ram_path, state_path: snapshot.state_path },
      ssh_port: this.options.ssh_port_base + node,
      memory_mib: snapshot.memory_mib,
      rtc_base: TEMPLATE_RTC_BASE,
      rng_seed: 0,
      run_dir: this.run_dir,
    };
  }

  /**
   * Node's identity for a clone started at engine time t0_ns: the words its kernel command
   * line would hold, with sim.t0 such that vclock reads engine time (the clone's TSC starts
   * at the park clock), the NICs' MACs, and the extra archive.
   */
  identityFrames(node: number, t0_ns: number): Uint8Array[] {
    const o = this.options;
    if (o.image.kind !== "initramfs") throw new Error("snapshots need the default guest");
    const snapshot = this.snapshotOf(node)!;
    const cmdline = kernelCmdline({ ...o.image, kernel_cmdline_base: "" }, this.cmdlineNode(node)).trim();
    const words = `${cmdline} sim.t0=${t0_ns - snapshot.park_clock_ns} sim.mac=${o.config.nodes[node]!.mac} sim.mgmt_mac=${mgmtMac(node)}${bootCommandWord(node, o.boot_commands[node] ?? null)}`;
    return identityFrames({ node_name: o.config.nodes[node]!.name, words, archive: o.extra_archives?.[node] ?? null });
  }

  /** Every VM runs under -icount; a dated RTC base lets init set the clock to the nanosecond. */
  private cmdlineNode(node: number): NodeCmdline {
    const o = this.options;
    const cfg = o.config.nodes[node]!;
    const rtc_base_s = rtcBaseEpochS(o.rtc_base);
    return { id: node, ip_cidr: `${cfg.ip}/16`, hostname: cfg.name, seed: o.config.seed, icount: true, mgmt_cidr: guestMgmtCidr(this.mgmtNet(), node), ...(rtc_base_s === null ? {} : { rtc_base_s }) };
  }

  /** A user's image knows nothing of tapsim: find the NIC with the node's MAC and address it. */
  private async configureSimNic(node: number): Promise<void> {
    const cfg = this.options.config.nodes[node]!;
    const script =
      `set -e; dev=$(for d in /sys/class/net/*; do [ "$(cat $d/address)" = "${cfg.mac}" ] && basename $d; done); ` +
      `[ -n "$dev" ] || { echo "no NIC with MAC ${cfg.mac}" >&2; exit 1; }; ` +
      `ip addr flush dev $dev; ip addr add ${cfg.ip}/16 dev $dev; ip link set $dev up`;
    const r = await sshExec(this.sshTarget(node), script, { timeout_ms: 30_000 });
    if (r.code !== 0) throw new InputError(`${cfg.name}: cannot configure the simulated NIC over SSH: ${r.stderr.toString().trim()}`);
  }
}

/**
 * The -rtc base of a QEMU started at engine time t0: the run's base plus t0's whole seconds,
 * so the CMOS clock the kernel reads agrees to the second (init's vclock -s then sets it to
 * the nanosecond from sim.t0). utc/localtime bases are the host's clock anyway.
 */
export function shiftedRtcBase(rtc_base: string, t0_ns: number): string {
  const base_s = rtcBaseEpochS(rtc_base);
  if (t0_ns === 0 || base_s === null) return rtc_base;
  return new Date((base_s + Math.floor(t0_ns / 1e9)) * 1000).toISOString().slice(0, 19);
}

/** Short and unique among live runs: the run dir's random suffix, for TAP names. */
function runId(run_dir: string): string {
  return path.basename(run_dir).slice(-6).toLowerCase().replace(/[^a-z0-9]/g, "0");
}

function bootSpec(image: GuestImage, node: NodeCmdline, boot_command: string | null): BootSpec {
  if (image.kind === "qcow2") {
    if (boot_command !== null) throw new InputError(`--boot-cmd needs the default guest (a user image runs its own boot scripts)`);
    return { kind: "qcow2", base_path: image.path };
  }
  const append = kernelCmdline(image, node) + bootCommandWord(node.id, boot_command);
  return { kind: "initramfs", kernel_path: image.kernel_path, initrd_path: image.initrd_path, append };
}

/** " sim.cmd=<base64>" for a boot command, "" for none. */
function bootCommandWord(node: number, boot_command: string | null): string {
  if (boot_command === null) return "";
  const encoded = Buffer.from(boot_command).toString("base64");
  if (encoded.length > BOOT_CMD_BYTES_MAX) throw new InputError(`--boot-cmd for node ${node}: longer than the kernel command line allows (${BOOT_CMD_BYTES_MAX} bytes base64)`);
  return ` sim.cmd=${encoded}`;
}

/** Every forward binds 127.0.0.1:(base + i); find a taken port before starting anything. */
async function checkPortsFree(base: number, count: number): Promise<void> {
  if (base < 1024 || base + count - 1 > 65535) throw new InputError(`--ssh-port-base ${base}: ports ${base}..${base + count - 1} must lie within 1024..65535`);
  for (let port = base; port < base + count; port++) {
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once("error", () => resolve(false));
      server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
    });
    if (!free) throw new InputError(`127.0.0.1:${port} is in use (SSH forward of node ${port - base}); pick another --ssh-port-base`);
  }
}
