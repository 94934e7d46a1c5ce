// Snapshot starts (issue #12): the default guest boots once per image and memory size, parks
// with its agent waiting for an identity, and is saved; every VM of a run then starts from
// that state in a fraction of a second instead of booting its kernel under TCG.
//
// - Template: QEMU with guest RAM in a file mapped shared (memory-backend-file, share=on),
//   booted with `sim.template=1` through the gate in 10 ms slices until the parked agent
//   listens, stopped inside the gate at exactly a slice end (PARK), and migrated to a file
//   with x-ignore-shared: the stream holds devices, CPU and clock; RAM stays in the file.
// - Clone: the same machine, RAM the same file mapped private (copy-on-write: pages a clone
//   never writes are shared with every other clone in the page cache), `-incoming defer`,
//   the state loaded over QMP, `cont`. The gate says HELLO at the parked clock.
// - Identity: the first frames the engine injects (at the node's start, engine time 0 or a
//   restart's t0) are agent datagrams to the template's address: the node's settings as
//   kernel-command-line words, then its extra archive in chunks (guest/agent.c --identity).
//   They are derived from the run's configuration, like agent commands, so a re-run
//   injects the same bytes at the same times and the run is deterministic.
//
// Cache: <cache root>/snapshots/<key>/ (key: image identity, memory, QEMU version, gate
// plugin, this file's template format). A folder whose manifest does not match what it
// must hold (another image, a damaged state file) is removed and built again, never used.

import { createHash } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { ICOUNT_CLOCK_CMDLINE, type InitramfsImage } from "../guest/image.js";
import { InputError } from "../engine/errors.js";
import { processAlive } from "../engine/host_process.js";
import { AGENT_MESSAGE_BYTES_MAX, TEMPLATE_AGENT_IP, templateAgentFrame } from "./agent.js";
import { QmpClient } from "./client.js";
import { GATE_PLUGIN_PATH, migrationSettled, mgmtMac, QemuVm, snapshotMigration } from "./launcher.js";

/** Bumped whenever what a template is (its command line, how it parks) changes. */
const TEMPLATE_FORMAT = 1;
/** The template's NICs; clones keep them on QEMU's command line, and the guest sets its node's. */
export const TEMPLATE_SIM_MAC = "52:54:00:ee:00:01";
export const TEMPLATE_MGMT_MAC = mgmtMac(0);
const TEMPLATE_SLICE_NS = 10_000_000;
/** Virtual time a template may take to park (a boot takes ~2 s). */
const TEMPLATE_PARK_NS_MAX = 120_000_000_000;
export const TEMPLATE_RTC_BASE = "2025-01-01T00:00:00";
/** Archive bytes per identity chunk (guest/agent.c CHUNK_BYTES). */
export const IDENTITY_CHUNK_BYTES = 1400;
/** Chunks are injected this far apart: the parked agent stores one in far less virtual time. */
export const IDENTITY_CHUNK_SPACING_NS = 20_000;

export interface Snapshot {
  readonly dir: string;
  readonly key: string;
  readonly ram_path: string;
  readonly state_path: string;
  readonly memory_mib: number;
  /** QEMU's virtual clock in the saved state: a clone's HELLO. */
  readonly park_clock_ns: number;
  readonly state_sha256: string;
}

interface SnapshotManifest {
  readonly format: number;
  readonly key: string;
  readonly image_identity: string;
  readonly memory_mib: number;
  readonly park_clock_ns: number;
  readonly state_sha256: string;
  readonly ram_bytes: number;
  readonly ram_sha256: string;
  /** The RAM file's mtime at the build: a later one means it was written, and is checked by hash. */
  readonly ram_mtime_ms: number;
  readonly built_at: string;
  readonly build_wall_ms: number;
}

export interface SnapshotOptions {
  readonly cache_root: string;
  readonly qemu_version: string;
  readonly log?: (line: string) => void;
}

/** The snapshot of `image` at `memory_mib`, built first when the cache has none that matches. */
export async function ensureSnapshot(image: InitramfsImage, memory_mib: number, opts: SnapshotOptions): Promise<{ snapshot: Snapshot; built: boolean }> {
  const key = snapshotKey(image, memory_mib, opts.qemu_version);
  const dir = path.join(opts.cache_root, "snapshots", key.slice(0, 16));
  const found = readSnapshot(dir, key, image.identity);
  if (found !== null) return { snapshot: found, built: false };
  removeAbandonedBuilds(path.dirname(dir));
  if (existsSync(dir)) opts.log?.(`snapshot ${dir}: does not match this image or is damaged; building it again`);
  rmSync(dir, { recursive: true, force: true });
  removeStaleSnapshots(path.dirname(dir), image.identity, opts.log);
  await buildSnapshot(image, memory_mib, key, dir, opts);
  const built = readSnapshot(dir, key, image.identity);
  if (built === null) throw new Error(`${dir}: the snapshot just built does not read back`);
  return { snapshot: built, built: true };
}

export function snapshotKey(image: InitramfsImage, memory_mib: number, qemu_version: string): string {
  const gate = createHash("sha256").update(readFileSync(GATE_PLUGIN_PATH)).digest("hex");
  return createHash("sha256").update(JSON.stringify({ format: TEMPLATE_FORMAT, image: image.identity, memory_mib, qemu_version, gate })).digest("hex");
}

/** The snapshot in `dir` if its manifest names this key and image and its files are whole; else null. */
function readSnapshot(dir: string, key: string, image_identity: string): Snapshot | null {
  const m = readManifest(dir);
  if (m === null) return null;
  if (m.format !== TEMPLATE_FORMAT || m.key !== key || m.image_identity !== image_identity) return null;
  const ram_path = path.join(dir, "ram");
  const state_path = path.join(dir, "state");
  const ram = statSync(ram_path, { throwIfNoEntry: false });
  if (ram?.size !== m.ram_bytes) return null;
  if (ram.mtimeMs !== m.ram_mtime_ms && sha256File(ram_path) !== m.ram_sha256) return null;
  if (!existsSync(state_path) || sha256File(state_path) !== m.state_sha256) return null;
  return { dir, key, ram_path, state_path, memory_mib: m.memory_mib, park_clock_ns: m.park_clock_ns, state_sha256: m.state_sha256 };
}

/** `dir`'s snapshot.json, or null when it has none (or an unreadable one). */
function readManifest(dir: string): SnapshotManifest | null {
  try {
    return JSON.parse(readFileSync(path.join(dir, "snapshot.json"), "utf8")) as SnapshotManifest;
  } catch {
    return null;
  }
}

/** Boots the template in a private folder beside `dir`, parks and saves it, then renames the folder into place. */
async function buildSnapshot(image: InitramfsImage, memory_mib: number, key: string, dir: string, opts: SnapshotOptions): Promise<void> {
  const started_ms = Date.now();
  const tmp = `${dir}${TMP_INFIX}${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true, mode: 0o700 });
  // An uncaught error or exit() mid-build: the half-built folder (~100 MB of RAM file) goes too.
  const onExit = () => rmSync(tmp, { recursive: true, force: true });
  process.on("exit", onExit);
  opts.log?.(`building the snapshot of image ${image.identity.slice(0, 12)} with ${memory_mib} MiB (boots once, ~10 s)`);
  let vm: QemuVm | null = null;
  try {
    vm = await QemuVm.start({
      node: 0,
      name: "template",
      mac: TEMPLATE_SIM_MAC,
      mgmt_mac: TEMPLATE_MGMT_MAC,
      boot: { kind: "initramfs", kernel_path: image.kernel_path, initrd_path: image.initrd_path, append: `${image.kernel_cmdline_base} ${ICOUNT_CLOCK_CMDLINE} sim.template=1` },
      ssh_port: 0,
      memory_mib,
      rtc_base: TEMPLATE_RTC_BASE,
      rng_seed: 0,
      run_dir: tmp,
      template_ram_path: path.join(tmp, "ram"),
    });
    await runUntilParked(vm);
    const park_clock_ns = await vm.gate.park();
    await saveState(vm, path.join(tmp, "state"));
    const ram = statSync(path.join(tmp, "ram"));
    const manifest: SnapshotManifest = {
      format: TEMPLATE_FORMAT,
      key,
      image_identity: image.identity,
      memory_mib,
      park_clock_ns,
      state_sha256: sha256File(path.join(tmp, "state")),
      ram_bytes: ram.size,
      ram_sha256: sha256File(path.join(tmp, "ram")),
      ram_mtime_ms: ram.mtimeMs,
      built_at: new Date().toISOString(),
      build_wall_ms: Date.now() - started_ms,
    };
    writeFileSync(path.join(tmp, "snapshot.json"), `${JSON.stringify(manifest, null, 2)}\n`);
    try {
      renameSync(tmp, dir);
    } catch (err) {
      // Another run built the same snapshot meanwhile: theirs is used (ensureSnapshot reads it).
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "EEXIST" && code !== "ENOTEMPTY") throw err;
    }
    opts.log?.(`snapshot ${dir}: parked at ${(park_clock_ns / 1e9).toFixed(2)} s of virtual time, built in ${((Date.now() - started_ms) / 1000).toFixed(1)} s`);
  } finally {
    await vm?.stop();
    rmSync(tmp, { recursive: true, force: true });
    process.off("exit", onExit);
  }
}

const TMP_INFIX = ".tmp-";

/**
 * Snapshots of images other than this one (the image was rebuilt: new packages, a changed
 * builder) can never be used again; each holds ~100 MB of RAM file. Other memory sizes of
 * the same image stay.
 */
function removeStaleSnapshots(root: string, image_identity: string, log?: (line: string) => void): void {
  for (const name of entriesOf(root)) {
    if (name.includes(TMP_INFIX)) continue;
    // Kept only with this image's manifest (a folder without one is no finished build's).
    if (readManifest(path.join(root, name))?.image_identity === image_identity) continue;
    rmSync(path.join(root, name), { recursive: true, force: true });
    log?.(`removed stale snapshot ${name}`);
  }
}

/** Builds killed outright (SIGKILL, power loss) leave `<key>.tmp-<pid>`: removed once that pid is gone. */
function removeAbandonedBuilds(root: string): void {
  for (const name of entriesOf(root)) {
    const at = name.indexOf(TMP_INFIX);
    const pid = at < 0 ? NaN : Number(name.slice(at + TMP_INFIX.length));
    if (Number.isSafeInteger(pid) && pid > 0 && !processAlive(pid)) rmSync(path.join(root, name), { recursive: true, force: true });
  }
}

/** Fixed 10 ms slices from HELLO until the parked agent listens: the park time is the same on every build. */
async function runUntilParked(vm: QemuVm): Promise<void> {
  let t_ns = vm.gate.hello_clock_ns!;
  for (let slices = 0; t_ns < TEMPLATE_PARK_NS_MAX; slices++) {
    t_ns += TEMPLATE_SLICE_NS;
    const done = await vm.gate.run(t_ns, []);
    if (done.clock_ns !== t_ns) throw new Error(`snapshot template: the gate stopped at ${done.clock_ns} ns, deadline ${t_ns} ns`);
    const console_text = readFileSync(vm.console_path, "utf8");
    const failed = /tapsim-guest: FAILED: .*/.exec(console_text);
    if (failed) throw new Error(`snapshot template: ${failed[0]}`);
    if (console_text.includes(`tapsim-agent: listening ${TEMPLATE_AGENT_IP}:`) || console_text.includes("tapsim-agent: listening 0.0.0.0:")) return;
  }
  throw new Error(`snapshot template: not parked after ${TEMPLATE_PARK_NS_MAX / 1e9} s of virtual time: ${vm.consoleTail(3)}`);
}

/** QMP, with the VM stopped in the gate: the device state (RAM excluded) into `state_path`, then quit. */
async function saveState(vm: QemuVm, state_path: string): Promise<void> {
  const qmp = await QmpClient.connect(vm.qmp_socket);
  try {
    await snapshotMigration(qmp);
    await qmp.execute("migrate", { uri: `exec:cat > ${state_path}` });
    await migrationSettled(qmp, `${state_path}: cannot save the snapshot`);
    await qmp.execute("quit").catch(() => {});
  } finally {
    qmp.close();
  }
  await vm.exited;
  writeFileSync(state_path, withoutHostClockOffsets(readFileSync(state_path)));
}

/**
 * QEMU 7.2's "timer" section (version 2) begins with cpu_ticks_offset, dummy and
 * cpu_clock_offset, offsets from the host's clock; under -icount neither the virtual clock
 * nor the TSC reads them (both are the instruction count, the "timer/icount" subsection).
 * Two builds of one template differed in these 16 bytes only: zeroed, the saved state is
 * byte-for-byte the same on every build, so a re-run elsewhere can check it by hash.
 */
export function withoutHostClockOffsets(state: Buffer): Buffer {
  const marker = Buffer.from([5, ...Buffer.from("timer"), 0, 0, 0, 0, 0, 0, 0, 2]);
  const at = state.indexOf(marker);
  if (at < 0 || state.indexOf(marker, at + 1) >= 0) throw new Error("snapshot state: expected exactly one QEMU 7.2 \"timer\" section");
  const fields = at + marker.length;
  const out = Buffer.from(state);
  out.fill(0, fields, fields + 8); // cpu_ticks_offset
  out.fill(0, fields + 16, fields + 24); // cpu_clock_offset
  return out;
}

export interface NodeIdentity {
  /** For errors. */
  readonly node_name: string;
  /** sim.* words as on a default guest's kernel command line (guest/init.sh read_params). */
  readonly words: string;
  /** The node's extra archive (gzip'd cpio; files, packages, SSH access), or null. */
  readonly archive: Buffer | null;
}

/** The datagrams that turn a parked clone into its node: the identity, then the archive in chunks. */
export function identityFrames(identity: NodeIdentity): Uint8Array[] {
  const archive = identity.archive ?? Buffer.alloc(0);
  const sha = createHash("sha256").update(archive).digest("hex");
  const head = Buffer.from(`identity ${archive.length} ${sha}\n${identity.words}`, "utf8");
  if (head.length > AGENT_MESSAGE_BYTES_MAX) {
    throw new InputError(`${identity.node_name}: its identity takes ${head.length} bytes, a snapshot clone takes at most ${AGENT_MESSAGE_BYTES_MAX} (a shorter --boot-cmd?)`);
  }
  const frames = [templateAgentFrame(TEMPLATE_MGMT_MAC, head)];
  for (let at = 0, index = 0; at < archive.length; at += IDENTITY_CHUNK_BYTES, index++) {
    const chunk = Buffer.concat([Buffer.from(`chunk ${index}\n`, "utf8"), archive.subarray(at, at + IDENTITY_CHUNK_BYTES)]);
    frames.push(templateAgentFrame(TEMPLATE_MGMT_MAC, chunk));
  }
  return frames;
}

/** Streamed in 4 MiB reads: a RAM file is as large as the guest's memory. */
function sha256File(file: string): string {
  const hash = createHash("sha256");
  const buf = Buffer.allocUnsafe(4 << 20);
  const fd = openSync(file, "r");
  try {
    for (let guard = 0; guard < Number.MAX_SAFE_INTEGER; guard++) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest("hex");
}

/** The names in the snapshot cache's folder; none before the first build made it. */
function entriesOf(root: string): string[] {
  try {
    return readdirSync(root);
  } catch {
    return [];
  }
}
