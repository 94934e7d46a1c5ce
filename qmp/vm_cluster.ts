// Everything one VM run owns outside the engine: the private run directory, one QEMU per
// node (started together, each frozen at its first gate), their backends, SSH readiness,
// and the teardown that leaves no process, socket or overlay behind on any exit path.

import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { InputError } from "../engine/errors.js";
import type { RunConfig } from "../engine/trace_records.js";
import { rtcBaseEpochS } from "../engine/units.js";
import { kernelCmdline, type GuestImage, type NodeCmdline } from "../guest/image.js";
import { QemuVm, type BootSpec } from "./launcher.js";
import { sshExec, waitForSsh, type SshTarget } from "./ssh.js";
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
  readonly onCrash: (backend: VmBackend) => void;
}

export class VmCluster {
  readonly backends: VmBackend[] = [];
  private stopped = false;

  private constructor(
    private readonly options: VmClusterOptions,
    readonly run_dir: string,
  ) {}

  /** Starts every VM; on any failure stops those already started and removes the run dir. */
  static async start(options: VmClusterOptions): Promise<VmCluster> {
    const n = options.config.nodes.length;
    if (options.boot_commands.length !== n) throw new RangeError(`boot_commands has ${options.boot_commands.length} entries for ${n} nodes`);
    await checkPortsFree(options.ssh_port_base, n);
    const run_dir = mkdtempSync(path.join(os.tmpdir(), "tapsim-run-")); // mode 0700
    const cluster = new VmCluster(options, run_dir);
    process.on("exit", cluster.onExit);
    const started = await Promise.allSettled(options.config.nodes.map((node) => QemuVm.start(cluster.vmSpec(node.id))));
    for (const s of started) {
      if (s.status === "fulfilled") cluster.backends.push(new VmBackend(s.value, options.onCrash));
    }
    const failed = started.find((s): s is PromiseRejectedResult => s.status === "rejected");
    if (failed) {
      await cluster.stop();
      throw failed.reason;
    }
    return cluster;
  }

  sshTarget(node: number): SshTarget {
    return { host: "127.0.0.1", port: this.options.ssh_port_base + node, user: this.options.image.ssh_user, password: this.options.image.ssh_password };
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

  /** Stops every QEMU (gate closed, then SIGTERM, then SIGKILL) and removes the run dir. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.allSettled(this.backends.map((b) => b.vm.stop()));
    rmSync(this.run_dir, { recursive: true, force: true });
    process.off("exit", this.onExit);
  }

  /** If the process exits without stop() (an uncaught error), still leave nothing behind. */
  private readonly onExit = (): void => {
    for (const b of this.backends) b.vm.killNow();
    rmSync(this.run_dir, { recursive: true, force: true });
  };

  private vmSpec(node: number) {
    const o = this.options;
    const cfg = o.config.nodes[node]!;
    return {
      node,
      name: cfg.name,
      mac: cfg.mac,
      boot: bootSpec(o.image, this.cmdlineNode(node), o.boot_commands[node] ?? null),
      ssh_port: o.ssh_port_base + node,
      memory_mib: o.memory_mib,
      rtc_base: o.rtc_base,
      rng_seed: o.config.seed * 4096 + node,
      run_dir: this.run_dir,
    };
  }

  /** Every VM runs under -icount; a dated RTC base lets init set the clock to the nanosecond. */
  private cmdlineNode(node: number): NodeCmdline {
    const o = this.options;
    const cfg = o.config.nodes[node]!;
    const rtc_base_s = rtcBaseEpochS(o.rtc_base);
    return { id: node, ip_cidr: `${cfg.ip}/16`, hostname: cfg.name, seed: o.config.seed, icount: true, ...(rtc_base_s === null ? {} : { rtc_base_s }) };
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

function bootSpec(image: GuestImage, node: NodeCmdline, boot_command: string | null): BootSpec {
  if (image.kind === "qcow2") {
    if (boot_command !== null) throw new InputError(`--boot-cmd needs the default guest (a user image runs its own boot scripts)`);
    return { kind: "qcow2", base_path: image.path };
  }
  let append = kernelCmdline(image, node);
  if (boot_command !== null) {
    const encoded = Buffer.from(boot_command).toString("base64");
    if (encoded.length > BOOT_CMD_BYTES_MAX) throw new InputError(`--boot-cmd for node ${node.id}: longer than the kernel command line allows (${BOOT_CMD_BYTES_MAX} bytes base64)`);
    append += ` sim.cmd=${encoded}`;
  }
  return { kind: "initramfs", kernel_path: image.kernel_path, initrd_path: image.initrd_path, append };
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
