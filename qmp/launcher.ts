// Starts one QEMU per node behind the slice gate: a private run directory (0700) holds the
// gate and QMP sockets, the console log and, for a qcow2 guest, the per-VM copy-on-write
// overlay (the base image is opened read-only through it and never written). The simulated
// NIC is a virtio-net on a `hubport` netdev that the gate hooks; so is the management NIC,
// which the host reaches through a TAP of tapsim's (qmp/mgmt.ts), never slirp.

import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import path from "node:path";
import { promisify } from "node:util";
import { InputError } from "../engine/errors.js";
import { QmpClient } from "./client.js";
import { GateChannel } from "./gate_channel.js";
import { checkQemuValues } from "./qemu_values.js";
import { bootInitrd } from "./initrd.js";
import { withTimeout } from "./timeout.js";

const execFileAsync = promisify(execFile);

export const QEMU_BINARY_DEFAULT = "qemu-system-x86_64";
/** The built plugin; TAPSIM_GATE_PLUGIN points at another build (the tests' deliberately broken one, or a bisect). */
export const GATE_PLUGIN_PATH = process.env["TAPSIM_GATE_PLUGIN"] ?? path.resolve(path.dirname(new URL(import.meta.url).pathname), "../../qmp/gate/build/tapsim-gate.so");
/** The gate's other builds, made by scripts/build_gate.sh beside it, for tests and benchmarks that compare against them. */
export type GateVariant = "fault" | "no-in-place" | "loud-monitor";
export function gateVariantPath(variant: GateVariant): string {
  return path.join(path.dirname(GATE_PLUGIN_PATH), `tapsim-gate-${variant}.so`);
}
/** The only QEMU series whose internal struct layouts the gate was written and checked against. */
export const QEMU_SUPPORTED_SERIES = "7.2";
const GATE_CONNECT_TIMEOUT_MS = 15_000;
const GATE_HELLO_TIMEOUT_MS = 60_000;
const STDERR_TAIL_BYTES = 4096;

export type BootSpec =
  | {
      readonly kind: "initramfs";
      readonly kernel_path: string;
      readonly initrd_path: string;
      readonly append: string;
      /** Appended to the initrd for this VM (qmp/initrd.ts): files, packages, SSH access. */
      readonly extra_initrd_path?: string;
    }
  | { readonly kind: "qcow2"; readonly base_path: string }
  /**
   * A clone of a parked default guest (qmp/snapshot.ts): guest RAM is the template's memory
   * file mapped copy-on-write (MAP_PRIVATE: never written), the rest of the machine comes
   * from the saved device state. Machine and devices must be the template's exactly.
   */
  | { readonly kind: "snapshot"; readonly ram_path: string; readonly state_path: string };

export interface VmSpec {
  readonly node: number;
  readonly name: string;
  /** MAC of the simulated NIC (the engine routes by it). */
  readonly mac: string;
  readonly boot: BootSpec;
  readonly ssh_port: number;
  readonly memory_mib: number;
  /** Same RTC base for every guest, so their clocks read the same virtual time. */
  readonly rtc_base: string;
  /** Seeds QEMU's own guest-visible randomness (e.g. the kernel's boot RNG seed). */
  readonly rng_seed: number;
  readonly run_dir: string;
  readonly qemu_binary?: string;
  readonly gate_plugin_path?: string;
  /** Default true: slices are exchanged with blocking I/O on the gate socket (fastest). */
  readonly blocking_gate?: boolean;
  /** A snapshot template: guest RAM in this file, shared (written through), so it can be saved beside the state. */
  readonly template_ram_path?: string;
  /** Management NIC MAC on QEMU's command line (default mgmtMac(node)); a clone keeps its template's. */
  readonly mgmt_mac?: string;
}

/** The option ROM QEMU loads for a PVH kernel (-kernel): a clone names it itself, to have the template's RAM blocks. */
const PVH_OPTION_ROM = "pvh.bin";
const RAM_BACKEND_ID = "pc.ram";

export interface VmExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** Refuses a QEMU whose version the gate does not know; returns the version string. */
export async function checkQemu(binary = QEMU_BINARY_DEFAULT, plugin_path = GATE_PLUGIN_PATH): Promise<string> {
  let stdout: string;
  try {
    ({ stdout } = await execFileAsync(binary, ["--version"]));
  } catch (err) {
    throw new InputError(`${binary}: cannot run it (${(err as NodeJS.ErrnoException).code ?? "failed"}); install qemu-system-x86 (scripts/install_deps.sh)`);
  }
  const m = /QEMU emulator version (\d+)\.(\d+)\.(\d+)/.exec(stdout);
  if (!m) throw new InputError(`${binary}: unrecognised --version output: ${stdout.split("\n")[0]}`);
  const version = `${m[1]}.${m[2]}.${m[3]}`;
  if (`${m[1]}.${m[2]}` !== QEMU_SUPPORTED_SERIES) {
    throw new InputError(`${binary} is QEMU ${version}; the slice gate supports QEMU ${QEMU_SUPPORTED_SERIES}.x only (its struct layouts are version-specific)`);
  }
  if (!existsSync(plugin_path)) throw new InputError(`${plugin_path}: slice gate plugin not built (run scripts/build_gate.sh)`);
  return version;
}

/** MAC of node i's management NIC (eth0): agent datagrams are addressed to it. */
export function mgmtMac(node: number): string {
  if (!(Number.isInteger(node) && node >= 0 && node <= 0xffff)) throw new RangeError(`node ${node}: no management MAC`);
  const hex = node.toString(16).padStart(4, "0");
  return `52:54:00:ff:${hex.slice(0, 2)}:${hex.slice(2)}`;
}

export function qemuArgs(spec: VmSpec, gate_socket: string, qmp_socket: string, console_path: string, overlay_path: string | null): string[] {
  const mgmt_mac = spec.mgmt_mac ?? mgmtMac(spec.node);
  const plugin = spec.gate_plugin_path ?? GATE_PLUGIN_PATH;
  const boot_paths = spec.boot.kind === "snapshot" ? [spec.boot.ram_path, spec.boot.state_path] : spec.template_ram_path !== undefined ? [spec.template_ram_path] : [];
  const paths = [gate_socket, plugin, console_path, qmp_socket, ...(overlay_path === null ? [] : [overlay_path]), ...boot_paths];
  checkQemuValues({ name: spec.name, mac: spec.mac, rtc_base: spec.rtc_base, paths });
  if (boot_paths.some((p) => /[\s'"\\$`;&|<>]/.test(p))) throw new InputError(`${boot_paths.join(", ")}: snapshot paths must not hold spaces or shell characters`);
  const args = [
    "-name", `tapsim-${spec.name},debug-threads=on`,
    "-machine", "pc,accel=tcg",
    "-smp", "1",
    "-m", String(spec.memory_mib),
    "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
    // icount: the virtual clock advances with executed instructions only, so the gate can
    // end a slice at an exact nanosecond; sleep=off lets an idle guest skip ahead.
    "-icount", "shift=0,sleep=off",
    "-rtc", `base=${spec.rtc_base},clock=vm`,
    // Without it QEMU hands the guest host randomness (the boot RNG seed), and the guest's
    // instruction stream, hence every virtual timestamp, differs from run to run.
    "-seed", String(spec.rng_seed),
    "-chardev", `file,id=console,path=${console_path}`,
    "-serial", "chardev:console",
    "-qmp", `unix:${qmp_socket},server=on,wait=off`,
    "-plugin", `file=${plugin},sock=${gate_socket},netdev=sim,mgmt=mgmt`,
    // Both NICs sit on hub ports that only the gate feeds (no slirp, no host sockets): every
    // frame reaches the guest at a virtual time the engine chose and recorded. tx=timer on
    // both: transmit runs from a virtual-clock timer in the vCPU thread, not a main-loop
    // bottom half (qmp/README.md, "Closed world").
    "-netdev", "hubport,id=mgmt,hubid=1",
    "-device", `virtio-net-pci,netdev=mgmt,addr=0x3,mac=${mgmt_mac},tx=timer,x-txtimer=1000,ioeventfd=off,romfile=`,
    "-netdev", "hubport,id=sim,hubid=0",
    // tx=timer: the NIC transmits from a virtual-clock timer (in the vCPU thread), so the
    // gate's send-time stamp is deterministic; the default bottom half runs in the main loop.
    "-device", `virtio-net-pci,netdev=sim,addr=0x4,mac=${spec.mac},tx=timer,x-txtimer=1000,ioeventfd=off,romfile=`,
  ];
  if (spec.boot.kind === "snapshot" || spec.template_ram_path !== undefined) args.push(...snapshotArgs(spec));
  if (spec.boot.kind === "initramfs") {
    args.push("-kernel", spec.boot.kernel_path, "-initrd", spec.boot.initrd_path, "-append", spec.boot.append);
  } else if (spec.boot.kind === "snapshot") {
    // Same RAM blocks as the template (its -kernel added this ROM); no kernel or initrd is
    // loaded: QEMU would keep their ~60 MB in its heap for a reset that never comes.
    args.push("-option-rom", PVH_OPTION_ROM, "-incoming", "defer");
  } else {
    args.push("-drive", `file=${overlay_path},if=virtio,format=qcow2`);
  }
  return args;
}

/**
 * Guest RAM as a file: the template writes through it (share=on) and skips it in the saved
 * state (x-ignore-shared); a clone maps it privately, so pages it never writes stay shared
 * with every other clone in the page cache. Both ends set x-ignore-shared over QMP
 * (7.2 has no command-line switch for it): see snapshotMigration.
 */
function snapshotArgs(spec: VmSpec): string[] {
  const clone = spec.boot.kind === "snapshot";
  const ram_path = clone ? (spec.boot as { ram_path: string }).ram_path : spec.template_ram_path!;
  return [
    "-object", `memory-backend-file,id=${RAM_BACKEND_ID},size=${spec.memory_mib}M,mem-path=${ram_path},share=${clone ? "off" : "on"}`,
    "-machine", `memory-backend=${RAM_BACKEND_ID}`,
  ];
}

export class QemuVm {
  readonly exited: Promise<VmExit>;
  exit: VmExit | null = null;
  private stderr_tail = "";
  private stopping = false;

  private constructor(
    readonly spec: VmSpec,
    private readonly child: ChildProcess,
    readonly gate: GateChannel,
    readonly qmp_socket: string,
    readonly console_path: string,
    exited: Promise<VmExit>,
  ) {
    this.exited = exited;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** Spawns QEMU, waits for the gate to connect and say HELLO (the guest has not run yet). */
  static async start(spec: VmSpec): Promise<QemuVm> {
    const base = path.join(spec.run_dir, `node${spec.node}`);
    const gate_socket = `${base}.gate`;
    const qmp_socket = `${base}.qmp`;
    const console_path = `${base}.console.log`;
    const overlay = spec.boot.kind === "qcow2" ? await createOverlay(spec.boot.base_path, `${base}.overlay.qcow2`) : null;
    const server = await listen(gate_socket);
    const initrd = bootInitrd(spec.boot, `${base}.initrd`);
    const child = spawn(spec.qemu_binary ?? QEMU_BINARY_DEFAULT, qemuArgs({ ...spec, boot: initrd.boot }, gate_socket, qmp_socket, console_path, overlay), {
      stdio: ["ignore", "ignore", "pipe"],
      // Own process group: Ctrl+C in the terminal reaches tapsim only, which then stops the
      // run and its VMs in order (QEMU would otherwise die first and look like a crash).
      detached: true,
    });
    let tail = "";
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (s: string) => (tail = (tail + s).slice(-STDERR_TAIL_BYTES)));
    const exited = new Promise<VmExit>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
    const spawn_error = new Promise<never>((_, reject) => child.once("error", reject));
    let restoring: QmpClient | null = null;
    try {
      const socket = await raceExit(accept(server, GATE_CONNECT_TIMEOUT_MS, spec.name), exited, spawn_error, () => tail, spec.name);
      if (spec.boot.kind === "snapshot") restoring = await raceExit(restoreState(qmp_socket, spec.boot.state_path), exited, spawn_error, () => tail, spec.name);
      const gate = new GateChannel(socket, spec.name);
      const vm = new QemuVm(spec, child, gate, qmp_socket, console_path, exited);
      vm.watch(() => tail);
      await raceExit(withTimeout(gate.hello(), GATE_HELLO_TIMEOUT_MS, `${spec.name}: QEMU did not reach the first gate`), exited, spawn_error, () => tail, spec.name);
      if (spec.blocking_gate !== false) gate.useBlockingIo();
      return vm;
    } catch (err) {
      child.kill("SIGKILL");
      await exited;
      throw err;
    } finally {
      restoring?.close();
      server.close();
      initrd.remove();
    }
  }

  /** What QEMU last wrote to stderr (for crash reports), without its known start-up warnings. */
  get stderr(): string {
    return withoutKnownWarnings(this.stderr_tail).trim();
  }

  consoleTail(lines = 10): string {
    try {
      return readFileSync(this.console_path, "utf8").split("\n").slice(-lines - 1).join("\n").trim();
    } catch {
      return "";
    }
  }

  /** Closing the gate makes a frozen QEMU exit; SIGTERM, then SIGKILL, cover a running one. */
  async stop(grace_ms = 2000): Promise<VmExit> {
    this.stopping = true;
    this.gate.close();
    if (this.exit) return this.exit;
    if (await settlesWithin(this.exited, grace_ms)) return this.exit ?? (await this.exited);
    this.child.kill("SIGTERM");
    if (await settlesWithin(this.exited, grace_ms)) return await this.exited;
    this.child.kill("SIGKILL");
    return await this.exited;
  }

  get is_stopping(): boolean {
    return this.stopping;
  }

  /** Last resort on process exit (no awaiting possible): SIGKILL if still running. */
  killNow(): void {
    if (this.exit === null && this.child.exitCode === null) this.child.kill("SIGKILL");
  }

  private watch(tail: () => string): void {
    void this.exited.then((exit) => {
      this.exit = exit;
      this.stderr_tail = tail();
    });
    this.child.stderr!.on("data", () => (this.stderr_tail = tail()));
  }
}

/**
 * Migration settings of a template and its clones (they must agree): RAM in the shared
 * file is not part of the stream; no self-announce after the restore (its timer runs on
 * the host clock: a main-loop event at a host-dependent time).
 */
export async function snapshotMigration(qmp: QmpClient): Promise<void> {
  await qmp.execute("migrate-set-capabilities", { capabilities: [{ capability: "x-ignore-shared", state: true }] });
  await qmp.execute("migrate-set-parameters", { "announce-rounds": 0 });
}

/**
 * A clone started with -incoming defer: loads the template's state, then `cont` (the
 * template was saved paused, and the state says so); the gate says HELLO at the vCPU's
 * first timer check, before the guest's first instruction. Returns the QMP client, to be
 * closed after HELLO: the guest starts at once and the gate freezes it holding the lock the
 * main loop needs to answer `cont`, so the reply comes later, or never if closed first.
 */
async function restoreState(qmp_socket: string, state_path: string): Promise<QmpClient> {
  const qmp = await QmpClient.connect(qmp_socket);
  try {
    await snapshotMigration(qmp);
    await qmp.execute("migrate-incoming", { uri: `exec:cat ${state_path}` });
    await migrationSettled(qmp, `${state_path}: cannot restore the snapshot`);
    qmp.execute("cont").catch(() => {});
    return qmp;
  } catch (err) {
    qmp.close();
    throw err;
  }
}

const MIGRATION_POLL_MS = 10;
const MIGRATION_TIMEOUT_MS = 120_000;

/** Waits for a migration (either direction) to complete; throws with QEMU's reason if it fails. */
export async function migrationSettled(qmp: QmpClient, what: string): Promise<void> {
  for (let waited_ms = 0; waited_ms < MIGRATION_TIMEOUT_MS; waited_ms += MIGRATION_POLL_MS) {
    const s = await qmp.execute<{ status?: string; "error-desc"?: string }>("query-migrate");
    if (s.status === "completed") return;
    if (s.status === "failed" || s.status === "cancelled") throw new Error(`${what} (${s["error-desc"] ?? s.status})`);
    await new Promise((resolve) => setTimeout(resolve, MIGRATION_POLL_MS));
  }
  throw new Error(`${what}: migration did not finish within ${MIGRATION_TIMEOUT_MS} ms`);
}

async function createOverlay(base_path: string, overlay_path: string): Promise<string> {
  const base = path.resolve(base_path);
  if (!statSync(base, { throwIfNoEntry: false })?.isFile()) throw new InputError(`${base_path}: no such image file`);
  try {
    await execFileAsync("qemu-img", ["create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", overlay_path]);
  } catch (err) {
    const stderr = String((err as { stderr?: string }).stderr ?? err).trim().split("\n")[0];
    throw new InputError(`${base_path}: cannot create an overlay (${stderr})`);
  }
  return overlay_path;
}

function listen(socket_path: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", (err) => reject(new Error(`${socket_path}: cannot listen (${(err as NodeJS.ErrnoException).code})`)));
    server.listen(socket_path, () => resolve(server));
  });
}

function accept(server: Server, timeout_ms: number, label: string): Promise<Socket> {
  return withTimeout(
    new Promise<Socket>((resolve) => server.once("connection", resolve)),
    timeout_ms,
    `${label}: the gate plugin did not connect within ${timeout_ms} ms`,
  );
}

async function raceExit<T>(work: Promise<T>, exited: Promise<VmExit>, spawn_error: Promise<never>, tail: () => string, label: string): Promise<T> {
  const died = exited.then((exit): never => {
    const why = exit.signal ? `signal ${exit.signal}` : `exit code ${exit.code}`;
    const said = withoutKnownWarnings(tail()).trim().split("\n").slice(-3).join(" | ");
    throw new Error(`${label}: QEMU exited during start-up (${why})${said ? `: ${said}` : ""}`);
  });
  const failed = spawn_error.catch((err: NodeJS.ErrnoException): never => {
    throw new InputError(`${label}: cannot start QEMU (${err.code ?? err.message})`);
  });
  return Promise.race([work, died, failed]);
}

/**
 * QEMU warns at every start that the simulated NIC's hub has no host backend (the gate is
 * its other end); in a crash report that line would hide the one that explains the crash.
 */
const KNOWN_WARNING = /^.*warning: hub \d+ (is not connected to host network|with no nics)\n?/gm;

export function withoutKnownWarnings(stderr: string): string {
  return stderr.replace(KNOWN_WARNING, "");
}

async function settlesWithin(promise: Promise<unknown>, timeout_ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeout_ms)));
  const result = await Promise.race([promise.then(() => true), timeout]);
  clearTimeout(timer!);
  return result;
}
