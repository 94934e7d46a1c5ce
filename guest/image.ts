// Guest images as the rest of tapsim sees them: the default initramfs image (built from
// Debian packages and cached under <repo>/.tapsim/images/default-<key12>/), and a user's
// own qcow2 disk image. The launcher (qmp/) takes a GuestImage and never builds one.

import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fsErrorText, InputError } from "../engine/errors.js";
import { processAlive } from "../engine/host_process.js";
import {
  BUILD_SOURCES,
  buildInitramfs,
  fetchPackages,
  generateHostKey,
  pvhKernel,
  kernelFiles,
  type InitramfsInputs,
  type PackagePin,
  renameOrDiscard,
  REPO_ROOT,
  resolvePackages,
  rootPasswordHash,
  sha256File,
  sha256Hex,
} from "./build.js";

export interface InitramfsImage {
  kind: "initramfs";
  dir: string;
  kernel_path: string;
  initrd_path: string;
  /** sha256 hex of the kernel's bytes followed by the initramfs's bytes. */
  identity: string;
  kernel_cmdline_base: string;
  ssh_user: "root";
  ssh_password: string;
  /** "ssh-ed25519 AAAA…": every VM of the image answers with this host key. */
  host_key_public: string;
}

export interface Qcow2Image {
  kind: "qcow2";
  /** Absolute. */
  path: string;
  /** sha256 hex over the sha256 of every file of the backing chain, image first (full contents). */
  identity: string;
  ssh_user: string;
  ssh_password: string;
}

export type GuestImage = InitramfsImage | Qcow2Image;

/** What image.json in an image folder holds. */
export interface ImageManifest {
  format: 1;
  key: string;
  /** The key without the password (package pins and builder sources). */
  builder_key: string;
  identity: string;
  /** pvh-elf: the uncompressed kernel, booted directly by QEMU's PVH loader; bzimage: Debian's file as is. */
  kernel: { file: string; sha256: string; version: string; format: "pvh-elf" | "bzimage"; bytes: number };
  initrd: { file: string; sha256: string; bytes: number };
  kernel_cmdline_base: string;
  ssh_user: "root";
  /** Every VM of the image shares this host key (random, made at build time by dropbearkey). */
  host_key: { public: string; fingerprint: string };
  packages: { name: string; version: string; deb_sha256: string }[];
  built_at: string;
}

export const DEFAULT_PASSWORD = "1234";
/**
 * ipv6.disable=1: the simulated network is IPv4; no router solicitations or DAD traffic.
 * loglevel=6: notices and worse on the console (~18 lines, the "Linux version" banner
 * first), so `tapsim run` can show a VM's kernel starting; the full log is in dmesg.
 */
export const KERNEL_CMDLINE_BASE = "console=ttyS0 loglevel=6 panic=-1 ipv6.disable=1";
const MANIFEST = "image.json";
const KERNEL_FILE = "kernel";
const INITRD_FILE = "initrd.cpio.gz";
const KEY_FORMAT = "tapsim-default-guest-v1";
const PASSWORD_LENGTH_MAX = 128;

export interface ImageOptions {
  password?: string;
  /** Folder holding images/, debs/ and unpacked/ (default <repo>/.tapsim). */
  cache_root?: string;
  log?: (line: string) => void;
}

export interface BuildResult {
  image: InitramfsImage;
  manifest: ImageManifest;
  rebuilt: boolean;
}

export function defaultCacheRoot(): string {
  return path.join(REPO_ROOT, ".tapsim");
}

function stderrLog(line: string): void {
  process.stderr.write(`tapsim image: ${line}\n`);
}

export async function ensureDefaultImage(opts: ImageOptions = {}): Promise<InitramfsImage> {
  return (await buildDefaultImage(opts)).image;
}

/** Builds the default image unless the cache has it (or force). */
export async function buildDefaultImage(opts: ImageOptions & { force?: boolean } = {}): Promise<BuildResult> {
  const password = checkPassword(opts.password ?? DEFAULT_PASSWORD);
  const cache_root = path.resolve(opts.cache_root ?? defaultCacheRoot());
  const log = opts.log ?? stderrLog;
  const pins = resolvePackages(cache_root);
  const key = imageKey(pins, password);
  const dir = imageDir(cache_root, key);
  if (!opts.force) {
    const cached = readCachedImage(dir, key, password);
    if (cached) return { ...cached, rebuilt: false };
  }
  // Two runs starting together would each build (and each draw its own random host key):
  // one builds, the other waits and then takes the cached image.
  return await withBuildLock(cache_root, log, () => {
    if (!opts.force) {
      const cached = readCachedImage(dir, key, password);
      if (cached) return { ...cached, rebuilt: false };
    }
    log(`building ${dir}`);
    const t0_ms = Date.now();
    const manifest = buildInto(cache_root, dir, key, pins, password, log);
    log(`built in ${((Date.now() - t0_ms) / 1000).toFixed(1)} s: initramfs ${(manifest.initrd.bytes / 1e6).toFixed(1)} MB, kernel ${manifest.kernel.version}`);
    return { image: imageFrom(dir, manifest, password), manifest, rebuilt: true };
  });
}

const BUILD_LOCK_WAIT_MS_MAX = 600_000;

/** mkdir is atomic: the lock is a folder holding the builder's pid; a dead builder's lock is taken over. */
async function withBuildLock<T>(cache_root: string, log: (line: string) => void, build: () => T): Promise<T> {
  mkdirSync(cache_root, { recursive: true });
  const lock = path.join(cache_root, "build.lock");
  const deadline_ms = Date.now() + BUILD_LOCK_WAIT_MS_MAX;
  for (let waited = false; ; waited = true) {
    try {
      mkdirSync(lock);
      writeFileSync(path.join(lock, "pid"), String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      if (lockOwnerGone(lock)) rmSync(lock, { recursive: true, force: true });
      else if (Date.now() > deadline_ms) throw new InputError(`${lock}: another tapsim has been building the image for ${BUILD_LOCK_WAIT_MS_MAX / 1000} s; remove the folder if no build is running`);
      else {
        if (!waited) log(`waiting for another tapsim building the image (${lock})`);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
  }
  try {
    return build();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function lockOwnerGone(lock: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(path.join(lock, "pid"), "utf8"));
  } catch {
    return false; // just created; its pid file follows
  }
  if (!Number.isSafeInteger(pid) || pid <= 0) return true;
  return !processAlive(pid);
}

/** Looks up the cached default image for a password without building; null when absent. */
export function findDefaultImage(opts: { password?: string; cache_root?: string } = {}): BuildResult | null {
  const password = checkPassword(opts.password ?? DEFAULT_PASSWORD);
  const cache_root = path.resolve(opts.cache_root ?? defaultCacheRoot());
  const key = imageKey(resolvePackages(cache_root), password);
  const cached = readCachedImage(imageDir(cache_root, key), key, password);
  return cached ? { ...cached, rebuilt: false } : null;
}

function checkPassword(password: string): string {
  if (typeof password !== "string" || password.length === 0) throw new InputError("--password: must not be empty");
  if (password.length > PASSWORD_LENGTH_MAX) throw new InputError(`--password: longer than ${PASSWORD_LENGTH_MAX} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f:]/.test(password)) throw new InputError("--password: control characters and ':' are not allowed");
  return password;
}

/** sha256 over everything the image is made from: package pins, builder sources, password. */
export function imageKey(pins: PackagePin[], password: string): string {
  return sha256Hex(JSON.stringify({ builder: builderKey(pins), password }));
}

/** The key without the password: images built under another builder key are stale. */
function builderKey(pins: PackagePin[]): string {
  const sources = BUILD_SOURCES.map((rel) => ({ rel, sha256: sha256File(path.join(REPO_ROOT, rel)) }));
  return sha256Hex(JSON.stringify({ format: KEY_FORMAT, packages: pins, sources }));
}

/**
 * After a build: removes images made by other builder sources or package versions (no
 * lookup can hit them again) and packages no longer pinned. Folders starting with "."
 * belong to builds in progress and are left alone.
 */
function pruneStale(cache_root: string, builder_key: string, keep_debs: string[], keep_unpacked: string[], log: (line: string) => void): void {
  const removed: string[] = [];
  const remove = (p: string) => {
    rmSync(p, { recursive: true, force: true });
    removed.push(path.relative(cache_root, p));
  };
  const images = path.join(cache_root, "images");
  for (const name of listDir(images).filter((n) => n.startsWith("default-") && !n.includes(".tmp-"))) {
    try {
      const m = JSON.parse(readFileSync(path.join(images, name, MANIFEST), "utf8")) as Partial<ImageManifest>;
      if (m.builder_key !== builder_key) remove(path.join(images, name));
    } catch {
      // No readable manifest: not ours to judge.
    }
  }
  for (const name of listDir(path.join(cache_root, "debs")).filter((n) => n.endsWith(".deb"))) {
    if (!keep_debs.includes(path.join(cache_root, "debs", name))) remove(path.join(cache_root, "debs", name));
  }
  for (const name of listDir(path.join(cache_root, "unpacked")).filter((n) => !n.startsWith("."))) {
    if (!keep_unpacked.includes(path.join(cache_root, "unpacked", name))) remove(path.join(cache_root, "unpacked", name));
  }
  if (removed.length > 0) log(`removed stale ${removed.join(", ")}`);
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function imageDir(cache_root: string, key: string): string {
  return path.join(cache_root, "images", `default-${key.slice(0, 12)}`);
}

function readCachedImage(dir: string, key: string, password: string): { image: InitramfsImage; manifest: ImageManifest } | null {
  let manifest: ImageManifest;
  try {
    manifest = JSON.parse(readFileSync(path.join(dir, MANIFEST), "utf8")) as ImageManifest;
  } catch {
    return null;
  }
  if (manifest.format !== 1 || manifest.key !== key) return null;
  // A truncated or replaced file must not pass for the recorded image. Sizes only: hashing
  // the 66 MB kernel on every lookup would cost ~0.4 s.
  if (fileSize(path.join(dir, KERNEL_FILE)) !== manifest.kernel.bytes) return null;
  if (fileSize(path.join(dir, INITRD_FILE)) !== manifest.initrd.bytes) return null;
  return { image: imageFrom(dir, manifest, password), manifest };
}

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return -1;
  }
}

function imageFrom(dir: string, manifest: ImageManifest, password: string): InitramfsImage {
  return {
    kind: "initramfs",
    dir,
    kernel_path: path.join(dir, KERNEL_FILE),
    initrd_path: path.join(dir, INITRD_FILE),
    identity: manifest.identity,
    kernel_cmdline_base: manifest.kernel_cmdline_base,
    ssh_user: "root",
    ssh_password: password,
    host_key_public: manifest.host_key.public,
  };
}

function buildInto(cache_root: string, dir: string, key: string, pins: PackagePin[], password: string, log: (line: string) => void): ImageManifest {
  const { pkgs, inputs, vmlinuz, host_key } = imageInputs(cache_root, pins, password, log);
  mkdirSync(path.dirname(dir), { recursive: true });
  // Built in a private folder and renamed into place, so a reader never sees half an image.
  // 0700: the initramfs holds the guests' private host key.
  const tmp = `${dir}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  mkdirSync(tmp, { mode: 0o700 });
  try {
    buildInitramfs(inputs, path.join(tmp, INITRD_FILE));
    const bzimage = readFileSync(vmlinuz);
    const elf = pvhKernel(bzimage);
    if (elf === null) log(`${path.basename(vmlinuz)}: no PVH ELF inside; booting the bzImage (slower under TCG)`);
    writeFileSync(path.join(tmp, KERNEL_FILE), elf ?? bzimage);
    const builder_key = builderKey(pins);
    const manifest = manifestFor(tmp, key, builder_key, inputs.kernel_version, elf === null ? "bzimage" : "pvh-elf", host_key, pkgs);
    writeFileSync(path.join(tmp, MANIFEST), JSON.stringify(manifest, null, 2) + "\n");
    replaceDir(tmp, dir);
    pruneStale(cache_root, builder_key, pkgs.map((p) => p.deb_file), pkgs.map((p) => p.unpacked_dir), log);
    return manifest;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * Everything the initramfs of the default image is made from (downloading and unpacking
 * what the cache lacks). The host key is new and random on every call, so two builds
 * from the same inputs differ in that file only; the cache key (not the bytes) names the image.
 */
export function imageInputs(cache_root: string, pins: PackagePin[], password: string, log: (line: string) => void) {
  const pkgs = fetchPackages(pins, path.join(cache_root, "debs"), path.join(cache_root, "unpacked"), log);
  const src_dirs = pkgs.map((p) => p.unpacked_dir);
  const kernel = kernelFiles(pkgs[0]!.unpacked_dir);
  const host_key = generateHostKey(src_dirs);
  const inputs: InitramfsInputs = {
    src_dirs,
    kernel_version: kernel.version,
    init_script: readFileSync(path.join(REPO_ROOT, "guest/init.sh"), "utf8"),
    seed_rng_source: path.join(REPO_ROOT, "guest/seed_rng.c"),
    vclock_source: path.join(REPO_ROOT, "guest/vclock.c"),
    agent_source: path.join(REPO_ROOT, "guest/agent.c"),
    nohup_script: readFileSync(path.join(REPO_ROOT, "guest/nohup.sh"), "utf8"),
    root_password_hash: rootPasswordHash(src_dirs, password),
    host_key: host_key.file,
  };
  return { pkgs, inputs, vmlinuz: kernel.vmlinuz, host_key };
}

function manifestFor(
  dir: string,
  key: string,
  builder_key: string,
  kernel_version: string,
  kernel_format: "pvh-elf" | "bzimage",
  host_key: { public_line: string; fingerprint: string },
  pkgs: { name: string; version: string; deb_sha256: string }[],
): ImageManifest {
  const kernel_bytes = readFileSync(path.join(dir, KERNEL_FILE));
  const initrd_bytes = readFileSync(path.join(dir, INITRD_FILE));
  return {
    format: 1,
    key,
    builder_key,
    identity: createHash("sha256").update(kernel_bytes).update(initrd_bytes).digest("hex"),
    kernel: { file: KERNEL_FILE, sha256: sha256Hex(kernel_bytes), version: kernel_version, format: kernel_format, bytes: kernel_bytes.length },
    initrd: { file: INITRD_FILE, sha256: sha256Hex(initrd_bytes), bytes: initrd_bytes.length },
    kernel_cmdline_base: KERNEL_CMDLINE_BASE,
    ssh_user: "root",
    host_key: { public: host_key.public_line, fingerprint: host_key.fingerprint },
    packages: pkgs.map((p) => ({ name: p.name, version: p.version, deb_sha256: p.deb_sha256 })),
    built_at: new Date().toISOString(),
  };
}

/** Puts a finished image folder at dir, replacing an older one (--force). */
function replaceDir(from: string, dir: string): void {
  if (existsSync(dir)) {
    const old = `${dir}.old-${process.pid}-${randomBytes(4).toString("hex")}`;
    renameSync(dir, old);
    rmSync(old, { recursive: true, force: true });
  }
  renameOrDiscard(from, dir);
}

const HOSTNAME_RE = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/**
 * For a guest under `-icount` (every tapsim VM): its TSC is QEMU's virtual clock in ns, a
 * 1 GHz counter exactly. Left to itself the kernel "refines" that against the HPET or the
 * ACPI PM timer and truncates to 999.999 or 1000.000 MHz depending on the boot (seen
 * both), and at 999.999 its clocks gain 1 µs per virtual second. tsc_early_khz gives the
 * exact value; with no HPET and no PM timer (pmtmr=0) the refinement has no reference and
 * keeps it; tsc=reliable: no clocksource watchdog (it would have no reference either).
 * nolapic_timer: the PIT is the clock event device. Calibrating the LAPIC timer
 * busy-waits on rdtsc for 100 ms of virtual time (200 ms without a PM timer), which under
 * TCG's icount costs seconds of wall time per boot; the PIT needs no calibration.
 * Measured: a boot to 6 s of virtual time took 7 s of wall time with these, 10-14 s with
 * none, 22-28 s without nolapic_timer. Guest time then advances exactly with virtual time.
 */
export const ICOUNT_CLOCK_CMDLINE = "tsc_early_khz=1000000 tsc=reliable hpet=disable pmtmr=0 nolapic_timer";

export interface NodeCmdline {
  id: number;
  ip_cidr: string;
  hostname: string;
  seed?: number;
  /** The run's RTC base in epoch seconds: init sets the clock to it + virtual time (sim.rtc_base). */
  rtc_base_s?: number;
  /** The VM runs under -icount: its TSC is the virtual clock (ICOUNT_CLOCK_CMDLINE). */
  icount?: boolean;
  /** The guest's end of its management link (sim.mgmt), e.g. 10.254.0.2/24. */
  mgmt_cidr?: string;
  /** Engine time at which this QEMU starts (a restarted node): sim.t0, added to the TSC by vclock. */
  t0_ns?: number;
}

/**
 * The kernel command line for one VM: the image's base plus sim.id, sim.ip, sim.hostname and
 * sim.seed (the run's seed: with the node id it seeds the guest's RNG, see guest/seed_rng.c),
 * and for a VM under -icount the clock settings and sim.rtc_base (see guest/vclock.c).
 */
export function kernelCmdline(image: InitramfsImage, node: NodeCmdline): string {
  const seed = node.seed ?? 1;
  if (!Number.isSafeInteger(seed) || seed < 0) throw new InputError(`node ${node.id} seed ${seed}: expected a non-negative integer`);
  if (!Number.isSafeInteger(node.id) || node.id < 0) throw new InputError(`node id ${node.id}: expected a non-negative integer`);
  if (!isIpv4Cidr(node.ip_cidr)) throw new InputError(`node ${node.id} ip ${JSON.stringify(node.ip_cidr)}: expected an IPv4 address with a prefix, like 10.0.0.1/16`);
  if (!HOSTNAME_RE.test(node.hostname)) throw new InputError(`node ${node.id} hostname ${JSON.stringify(node.hostname)}: expected letters, digits and '-' (at most 63)`);
  const rtc = node.rtc_base_s;
  if (rtc !== undefined && !(Number.isSafeInteger(rtc) && rtc >= 0)) throw new InputError(`node ${node.id} rtc base ${rtc}: expected non-negative epoch seconds`);
  if (node.mgmt_cidr !== undefined && !isIpv4Cidr(node.mgmt_cidr)) throw new InputError(`node ${node.id} management address ${JSON.stringify(node.mgmt_cidr)}: expected an IPv4 address with a prefix`);
  let line = `${image.kernel_cmdline_base} sim.id=${node.id} sim.seed=${seed} sim.ip=${node.ip_cidr} sim.hostname=${node.hostname}`;
  if (node.mgmt_cidr !== undefined) line += ` sim.mgmt=${node.mgmt_cidr}`;
  if (node.icount === true) line += ` ${ICOUNT_CLOCK_CMDLINE}`;
  if (rtc !== undefined) line += ` sim.rtc_base=${rtc}`;
  if (node.t0_ns !== undefined) {
    if (!(Number.isSafeInteger(node.t0_ns) && node.t0_ns >= 0)) throw new InputError(`node ${node.id} start time ${node.t0_ns}: expected non-negative integer ns`);
    line += ` sim.t0=${node.t0_ns}`;
  }
  return line;
}

function isIpv4Cidr(text: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(text);
  if (!m) return false;
  const octets = m.slice(1, 5).map(Number);
  return octets.every((o) => o <= 255) && Number(m[5]) >= 1 && Number(m[5]) <= 32;
}

/**
 * A user's qcow2 disk image. Identity hashes the full contents of the image and of every
 * backing file (about 1 s per GB on these machines), so two runs name the same disk
 * only if it is byte-for-byte the same.
 */
export async function openUserImage(file: string, opts: { ssh_user?: string; ssh_password?: string }): Promise<Qcow2Image> {
  const abs = path.resolve(file);
  try {
    if (!statSync(abs).isFile()) throw new InputError(`${file}: not a regular file (expected a qcow2 disk image)`);
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(`${file}: ${fsErrorText(err)}`);
  }
  const chain = qcow2Chain(file, abs);
  const hashes: string[] = [];
  for (const f of chain) hashes.push(await hashFile(f));
  return {
    kind: "qcow2",
    path: abs,
    identity: sha256Hex(JSON.stringify(hashes)),
    ssh_user: opts.ssh_user ?? "root",
    ssh_password: opts.ssh_password ?? DEFAULT_PASSWORD,
  };
}

/** The image and its backing files, checked with qemu-img (the image itself must be qcow2). */
function qcow2Chain(file: string, abs: string): string[] {
  const r = spawnSync("qemu-img", ["info", "--output=json", "--backing-chain", "--", abs], { encoding: "utf8", timeout: 60_000 });
  if (r.error) throw new InputError(`${file}: cannot run qemu-img (${(r.error as NodeJS.ErrnoException).code ?? r.error.message}); install qemu-utils`);
  if (r.status !== 0) {
    const why = r.stderr.trim().split("\n").pop()?.replace(/^qemu-img:\s*/, "") ?? `exit ${r.status}`;
    throw new InputError(`${file}: not a readable disk image (qemu-img: ${why})`);
  }
  const infos = JSON.parse(r.stdout) as { filename: string; format: string }[];
  const format = infos[0]?.format;
  if (format !== "qcow2") throw new InputError(`${file}: not a qcow2 image (qemu-img reads it as ${format ?? "unknown"})`);
  return infos.map((i) => i.filename);
}

function hashFile(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash("sha256");
    createReadStream(file)
      .on("data", (chunk) => h.update(chunk))
      .on("error", (err) => reject(new InputError(`${file}: ${fsErrorText(err)}`)))
      .on("end", () => resolve(h.digest("hex")));
  });
}
