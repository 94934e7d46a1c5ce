// Mechanics of the default guest image: which Debian packages (pinned by apt-cache),
// downloading and unpacking them into a cache, a random dropbear host key, and
// assembling the gzip'd newc initramfs byte-reproducibly. guest/image.ts decides when
// to build (cache key) and publishes the result; this file knows nothing of the cache
// layout beyond the folders it is given.

import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { InputError } from "../engine/errors.js";
import { cpioRaw } from "./cpio.js";

/** Repository root (this file runs as dist/guest/build.js). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
/** Sources whose text goes into the cache key: a change to any of them rebuilds. */
export const BUILD_SOURCES = ["guest/build.ts", "guest/image.ts", "guest/init.sh", "guest/seed_rng.c", "guest/vclock.c", "guest/agent.c", "guest/nohup.sh"];

export const KERNEL_META_PACKAGE = "linux-image-amd64";
/** libgmp10 is a need of libtomcrypt that dropbear-bin does not declare; sftp-server serves modern scp. */
export const GUEST_PACKAGES = [
  "busybox-static",
  "dropbear-bin",
  "libtomcrypt1",
  "libtommath1",
  "libgmp10",
  "libc6",
  "libcrypt1",
  "zlib1g",
  "openssh-sftp-server",
] as const;
/** Kernel modules under lib/modules/VERSION/, in load order (each needs the ones before it). */
export const GUEST_MODULES = [
  "kernel/drivers/virtio/virtio_ring.ko",
  "kernel/drivers/virtio/virtio.ko",
  "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
  "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
  "kernel/drivers/virtio/virtio_pci.ko",
  "kernel/net/core/failover.ko",
  "kernel/drivers/net/net_failover.ko",
  "kernel/drivers/net/virtio_net.ko",
];
/** Dynamically linked programs copied into the image; their libraries follow them. */
const GUEST_PROGRAMS = ["usr/sbin/dropbear", "usr/bin/dropbearkey", "usr/bin/dbclient", "usr/lib/openssh/sftp-server"];
export const LOADER = "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2";
/** Where the guest's dropbear finds its host key. */
export const HOST_KEY_PATH = "etc/dropbear/dropbear_ed25519_host_key";
/** Every file and directory of the initramfs gets this mtime (reproducibility). */
const FIXED_MTIME_S = 0;
const COMMAND_TIMEOUT_MS = 600_000;

export interface PackagePin {
  name: string;
  version: string;
}

export interface FetchedPackage extends PackagePin {
  deb_file: string;
  deb_sha256: string;
  /** The package's files (for the kernel: only vmlinuz and GUEST_MODULES). */
  unpacked_dir: string;
}

export interface InitramfsInputs {
  /** Unpacked package trees; a path is taken from the first tree that has it. */
  src_dirs: string[];
  kernel_version: string;
  init_script: string;
  /** guest/seed_rng.c, compiled static into /sbin/seed-rng. */
  seed_rng_source: string;
  /** guest/vclock.c, compiled static into /usr/bin/vclock. */
  vclock_source: string;
  /** guest/agent.c, compiled static into /usr/bin/tapsim-agent (scenario commands, file collection). */
  agent_source: string;
  /** guest/nohup.sh, installed as /usr/bin/nohup (Debian's busybox has no nohup applet). */
  nohup_script: string;
  /** crypt(3) hash of root's password, for /etc/shadow. */
  root_password_hash: string;
  /** The dropbear-format ed25519 host key file. */
  host_key: Buffer;
}

export function sha256Hex(data: Buffer | string): string {
  return createHash("sha256").update(data).digest("hex");
}

export function sha256File(file: string): string {
  return sha256Hex(readFileSync(file));
}

/** Runs a tool; a failure becomes one line naming the command and its last stderr line. */
export function run(cmd: string, args: string[], opts: { cwd?: string; input?: Buffer | string } = {}): Buffer {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, input: opts.input, timeout: COMMAND_TIMEOUT_MS, maxBuffer: 256 << 20 });
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    throw new InputError(`${cmd}: ${code === "ENOENT" ? "not found (the default guest is built with Debian's apt and dpkg tools)" : r.error.message}`);
  }
  if (r.status !== 0) {
    const last = r.stderr.toString().trim().split("\n").filter((l) => l.trim() !== "").pop() ?? "";
    throw new InputError(`${cmd} ${args.slice(0, 3).join(" ")}: exit ${r.status ?? r.signal}${last ? `: ${last.trim()}` : ""}`);
  }
  return r.stdout;
}

/**
 * The guest packages and the kernel linux-image-amd64 points at, each at apt's candidate
 * version. apt-cache costs ~2 s here, so the answer is kept in cache_root/apt-pins.json
 * for as long as apt's package lists and dpkg's status are unchanged.
 */
export function resolvePackages(cache_root: string): PackagePin[] {
  const memo = path.join(cache_root, "apt-pins.json");
  const stamp = aptStateStamp();
  try {
    const saved = JSON.parse(readFileSync(memo, "utf8")) as { stamp: string; packages: PackagePin[] };
    if (saved.stamp === stamp && Array.isArray(saved.packages)) return saved.packages;
  } catch {
    // No memo yet, or unreadable: ask apt.
  }
  const pins = resolvePackagesWithApt();
  mkdirSync(cache_root, { recursive: true });
  const tmp = `${memo}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify({ stamp, packages: pins }, null, 2) + "\n");
  renameSync(tmp, memo);
  return pins;
}

/** Changes whenever apt-get update or a package install/removal could change a candidate. */
export function aptStateStamp(): string {
  const files: string[] = ["/var/lib/dpkg/status"];
  for (const dir of ["/var/lib/apt/lists", "/etc/apt/sources.list.d", "/etc/apt/preferences.d"]) {
    try {
      for (const f of readdirSync(dir).sort()) files.push(path.join(dir, f));
    } catch {
      // Absent on this system: nothing there to change.
    }
  }
  files.push("/etc/apt/sources.list", "/etc/apt/preferences");
  const parts = files.map((f) => {
    try {
      const st = statSync(f);
      return `${f} ${st.size} ${st.mtimeMs}`;
    } catch {
      return `${f} -`;
    }
  });
  return sha256Hex(parts.join("\n"));
}

function resolvePackagesWithApt(): PackagePin[] {
  const depends = run("apt-cache", ["depends", KERNEL_META_PACKAGE]).toString();
  const kernel = /Depends:\s*(linux-image-\S+)/.exec(depends)?.[1];
  if (!kernel) throw new InputError(`apt-cache depends ${KERNEL_META_PACKAGE}: no linux-image-* dependency (run apt-get update?)`);
  const names = [kernel, ...GUEST_PACKAGES];
  const policy = run("apt-cache", ["policy", ...names]).toString();
  return names.map((name) => ({ name, version: candidateVersion(policy, name) }));
}

export function candidateVersion(policy: string, name: string): string {
  // apt-cache policy prints "name:\n  Installed: ...\n  Candidate: VERSION" per package.
  const start = policy.split("\n").findIndex((line) => line === `${name}:` || line === `${name}:amd64:`);
  const block = start < 0 ? "" : policy.split("\n").slice(start + 1, start + 4).join("\n");
  const version = /Candidate:\s*(\S+)/.exec(block)?.[1];
  if (!version || version === "(none)") throw new InputError(`apt-cache policy ${name}: no candidate version (run apt-get update?)`);
  return version;
}

/** apt-get download's file name for a pinned package ("1:1.2" is written "1%3a1.2"). */
function debFilePrefix(pin: PackagePin): string {
  return `${pin.name}_${pin.version.replace(/:/g, "%3a")}_`;
}

/** Downloads what is missing into debs_dir and unpacks what is missing into unpack_root. */
export function fetchPackages(pins: PackagePin[], debs_dir: string, unpack_root: string, log: (line: string) => void): FetchedPackage[] {
  mkdirSync(debs_dir, { recursive: true });
  mkdirSync(unpack_root, { recursive: true });
  const findDeb = (pin: PackagePin) => readdirSync(debs_dir).find((f) => f.startsWith(debFilePrefix(pin)) && f.endsWith(".deb"));
  const missing = pins.filter((pin) => findDeb(pin) === undefined);
  if (missing.length > 0) downloadDebs(missing, debs_dir, log);
  return pins.map((pin) => {
    const deb = findDeb(pin);
    if (deb === undefined) throw new InputError(`apt-get download ${pin.name}=${pin.version}: no .deb arrived in ${debs_dir}`);
    const deb_file = path.join(debs_dir, deb);
    const deb_sha256 = sha256File(deb_file);
    const unpacked_dir = unpackDeb(pin, deb_file, deb_sha256, unpack_root, log);
    return { ...pin, deb_file, deb_sha256, unpacked_dir };
  });
}

function downloadDebs(pins: PackagePin[], debs_dir: string, log: (line: string) => void): void {
  log(`downloading ${pins.map((p) => `${p.name}=${p.version}`).join(" ")}`);
  // A private folder, then renames: a concurrent build never sees a half-written .deb.
  const tmp = mkdtempSync(path.join(debs_dir, ".download-"));
  try {
    // As root apt drops to _apt for downloads, which cannot write into our folder.
    const sandbox = process.getuid?.() === 0 ? ["-o", "APT::Sandbox::User=root"] : [];
    run("apt-get", ["download", "-q", ...sandbox, ...pins.map((p) => `${p.name}=${p.version}`)], { cwd: tmp });
    for (const f of readdirSync(tmp)) renameSync(path.join(tmp, f), path.join(debs_dir, f));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function unpackDeb(pin: PackagePin, deb_file: string, deb_sha256: string, unpack_root: string, log: (line: string) => void): string {
  const is_kernel = pin.name.startsWith("linux-image-");
  // The kernel's tree holds only what the image uses, so its folder name covers that choice.
  const selection = is_kernel ? `-${sha256Hex(JSON.stringify(GUEST_MODULES)).slice(0, 8)}` : "";
  const dir = path.join(unpack_root, `${pin.name}_${deb_sha256.slice(0, 16)}${selection}`);
  if (existsSync(dir)) return dir;
  log(`unpacking ${path.basename(deb_file)}`);
  const tmp = mkdtempSync(path.join(unpack_root, ".unpack-"));
  chmodSync(tmp, 0o755);
  try {
    if (is_kernel) {
      // The kernel package is ~400 MB unpacked; take vmlinuz and the modules only.
      const members = ["./boot/vmlinuz-*", ...GUEST_MODULES.map((m) => `./lib/modules/*/${m}`)];
      run("bash", ["-c", 'set -o pipefail; dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" --wildcards "${@:3}"', "bash", deb_file, tmp, ...members]);
    } else {
      run("dpkg-deb", ["-x", deb_file, tmp]);
    }
    renameOrDiscard(tmp, dir);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return dir;
}

/** Moves a finished folder into place; if a concurrent build got there first, keeps theirs. */
export function renameOrDiscard(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "ENOTEMPTY" && code !== "EEXIST") throw err;
  }
}

/** The kernel's version string (the lib/modules folder name) and vmlinuz in its unpacked tree. */
export function kernelFiles(kernel_dir: string): { version: string; vmlinuz: string } {
  const versions = readdirSync(path.join(kernel_dir, "lib/modules"));
  if (versions.length !== 1) throw new Error(`${kernel_dir}: expected one lib/modules/VERSION, found ${versions.join(", ")}`);
  const version = versions[0]!;
  const vmlinuz = path.join(kernel_dir, "boot", `vmlinuz-${version}`);
  if (!existsSync(vmlinuz)) throw new Error(`${kernel_dir}: no boot/vmlinuz-${version}`);
  for (const m of GUEST_MODULES) {
    if (!existsSync(path.join(kernel_dir, "lib/modules", version, m))) throw new Error(`${kernel_dir}: module ${m} missing from the kernel package`);
  }
  return { version, vmlinuz };
}

/**
 * The uncompressed kernel ELF inside a Debian bzImage when it has a PVH entry point, else
 * null. QEMU boots such an ELF directly (-kernel vmlinux): under TCG that skips the xz
 * decompression of the bzImage, measured at ~5 s of wall time per boot here.
 */
export function pvhKernel(vmlinuz: Buffer): Buffer | null {
  const xz_at = vmlinuz.indexOf(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]));
  if (xz_at < 0) return null;
  // --single-stream: the bzImage has more bytes after the compressed kernel.
  const elf = run("xz", ["-dc", "--single-stream"], { input: vmlinuz.subarray(xz_at) });
  return hasPvhNote(elf) ? elf : null;
}

/** Whether an ELF64 file has the Xen PHYS32_ENTRY note (type 18) QEMU's PVH loader needs. */
export function hasPvhNote(elf: Buffer): boolean {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2) return false;
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  const PT_NOTE = 4;
  const XEN_ELFNOTE_PHYS32_ENTRY = 18;
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (ph + 56 > elf.length || elf.readUInt32LE(ph) !== PT_NOTE) continue;
    const start = Number(elf.readBigUInt64LE(ph + 8));
    const end = Math.min(elf.length, start + Number(elf.readBigUInt64LE(ph + 32)));
    for (let at = start; at + 12 <= end; ) {
      const namesz = elf.readUInt32LE(at);
      const descsz = elf.readUInt32LE(at + 4);
      const type = elf.readUInt32LE(at + 8);
      const name = elf.subarray(at + 12, at + 12 + namesz).toString("latin1");
      if (name === "Xen\0" && type === XEN_ELFNOTE_PHYS32_ENTRY) return true;
      at += 12 + align4(namesz) + align4(descsz);
    }
  }
  return false;
}

function align4(n: number): number {
  return (n + 3) & ~3;
}

/**
 * A new random ed25519 host key, made by the packaged dropbearkey in a private folder and
 * read back with `dropbearkey -y` (which also proves dropbear reads it). Never derived
 * from the image's inputs: those are public, and anyone who knew them could pose as a guest.
 */
export function generateHostKey(src_dirs: string[]): { file: Buffer; public_line: string; fingerprint: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tapsim-hostkey-")); // mode 0700
  try {
    const key_file = path.join(dir, "host_key");
    const dropbearkey = (args: string[]) => run(findInTrees(src_dirs, LOADER), ["--library-path", libraryPath(src_dirs), findInTrees(src_dirs, "usr/bin/dropbearkey"), ...args]).toString();
    dropbearkey(["-t", "ed25519", "-f", key_file]);
    const out = dropbearkey(["-y", "-f", key_file]);
    const public_line = /^(ssh-ed25519 [A-Za-z0-9+/=]+)/m.exec(out)?.[1];
    const fingerprint = /^Fingerprint: (SHA256:\S+)/m.exec(out)?.[1];
    if (!public_line || !fingerprint) throw new Error(`dropbearkey -y printed no ed25519 public key: ${out.trim()}`);
    return { file: readFileSync(key_file), public_line, fingerprint };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** sha512-crypt of the password with a salt derived from it: same password, same line. */
export function rootPasswordHash(src_dirs: string[], password: string): string {
  const salt = createHash("sha256").update(`tapsim-guest-salt\0${password}`).digest("base64").replace(/[^A-Za-z0-9]/g, "").slice(0, 16);
  const busybox = findInTrees(src_dirs, "bin/busybox");
  // Through fd 0, not argv: the password stays out of the process list.
  const hash = run(busybox, ["mkpasswd", "-m", "sha512", "-S", salt, "-P", "0"], { input: password }).toString().trim();
  if (!hash.startsWith("$6$")) throw new Error(`busybox mkpasswd gave no sha512-crypt hash: ${hash}`);
  return hash;
}

function findInTrees(src_dirs: string[], rel: string): string {
  for (const dir of src_dirs) {
    const p = path.join(dir, rel);
    if (existsSync(p) || isSymlink(p)) return p;
  }
  throw new Error(`${rel}: in none of the unpacked packages (${src_dirs.map((d) => path.basename(d)).join(", ")})`);
}

function isSymlink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/**
 * Builds the initramfs at out_path: the host key alone in an uncompressed newc archive, then
 * the rest gzip'd. Same inputs, same bytes. The key stays out of the gzip stream so that a
 * rebuild (or another machine's build) changes no compressed byte: the guest's gunzip then
 * runs the same instructions whatever the key, and so do guest timing and every run.
 */
export function buildInitramfs(inputs: InitramfsInputs, out_path: string): void {
  const stage = mkdtempSync(`${out_path}.stage-`);
  try {
    stageRootfs(inputs, stage);
    normaliseTree(stage);
    writeCpioGz(stage, hostKeyArchive(inputs.host_key), out_path);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

function stageRootfs(inputs: InitramfsInputs, root: string): void {
  const dirs = ["bin", "sbin", "usr/bin", "usr/sbin", "usr/lib", "lib64", "etc/dropbear", "etc/tapsim", "proc", "sys", "dev", "run", "tmp", "root", "var/log", "home"];
  for (const d of dirs) mkdirSync(path.join(root, d), { recursive: true });
  symlinkSync("/run", path.join(root, "var/run"));
  const copy = (rel: string) => copyFromTrees(inputs.src_dirs, rel, root);
  copy("bin/busybox");
  installBusyboxApplets(findInTrees(inputs.src_dirs, "bin/busybox"), root);
  for (const program of GUEST_PROGRAMS) copy(program);
  // Under its soname, as a file: the packages' sonames are symlinks to versioned names.
  for (const lib of sharedLibraries(inputs.src_dirs, GUEST_PROGRAMS)) copyFromTrees(inputs.src_dirs, lib, root, { dereference: true });
  copy(LOADER);
  copy("lib64/ld-linux-x86-64.so.2");
  // Debian's dropbear runs /usr/lib/sftp-server for the sftp subsystem (modern scp uses it).
  symlinkSync("openssh/sftp-server", path.join(root, "usr/lib/sftp-server"));
  symlinkSync("dbclient", path.join(root, "usr/bin/ssh"));
  for (const m of GUEST_MODULES) copy(path.join("lib/modules", inputs.kernel_version, m));
  writeEtc(inputs, root);
  writeFile(root, "init", inputs.init_script, 0o755);
  compileStatic(inputs.seed_rng_source, path.join(root, "sbin/seed-rng"));
  compileStatic(inputs.vclock_source, path.join(root, "usr/bin/vclock"));
  compileStatic(inputs.agent_source, path.join(root, "usr/bin/tapsim-agent"));
  // Only where busybox has none (a busybox with the applet has already linked it here).
  const nohup = path.join(root, "usr/bin/nohup");
  if (!existsSync(nohup) && !isSymlink(nohup)) writeFile(root, "usr/bin/nohup", inputs.nohup_script, 0o755);
}

/** gcc -static: the guest has no libc development files, and gcc's output is deterministic. */
function compileStatic(source: string, out_path: string): void {
  run("gcc", ["-static", "-Os", "-s", "-o", out_path, source]);
}

/** Copies rel (a file, or a symlink as it is unless dereference) from the first tree that has it. */
function copyFromTrees(src_dirs: string[], rel: string, root: string, opts: { dereference?: boolean } = {}): void {
  const src = findInTrees(src_dirs, rel);
  const dst = path.join(root, rel);
  mkdirSync(path.dirname(dst), { recursive: true });
  if (isSymlink(src) && !opts.dereference) {
    symlinkSync(readlinkSync(src), dst);
    return;
  }
  copyFileSync(src, dst);
  chmodSync(dst, statSync(src).mode & 0o7777);
}

/** One symlink to /bin/busybox per applet, where busybox --list-full says it lives. */
function installBusyboxApplets(busybox: string, root: string): void {
  const applets = run(busybox, ["--list-full"]).toString().split("\n").filter((l) => l !== "");
  for (const rel of applets) {
    const dst = path.join(root, rel);
    if (rel === "bin/busybox" || existsSync(dst) || isSymlink(dst)) continue;
    mkdirSync(path.dirname(dst), { recursive: true });
    symlinkSync("/bin/busybox", dst);
  }
}

/**
 * The shared libraries the programs load, as paths relative to their package tree. Asks
 * the packaged loader itself (ld.so --list) with only the package trees on its path; a
 * library that resolves outside them is missing from GUEST_PACKAGES.
 */
function sharedLibraries(src_dirs: string[], programs: string[]): string[] {
  const loader = findInTrees(src_dirs, LOADER);
  const lib_path = libraryPath(src_dirs);
  const libs = new Set<string>();
  for (const program of programs) {
    const out = run(loader, ["--library-path", lib_path, "--list", findInTrees(src_dirs, program)]).toString();
    for (const match of out.matchAll(/=>\s*(\/\S+)\s*\(/g)) {
      const resolved = match[1]!;
      if (resolved.endsWith("ld-linux-x86-64.so.2")) continue;
      const tree = src_dirs.find((d) => resolved.startsWith(d + path.sep));
      if (tree === undefined) throw new Error(`${program} needs ${resolved}, which none of the guest packages provides`);
      libs.add(path.relative(tree, resolved));
    }
  }
  return [...libs].sort();
}

export function libraryPath(src_dirs: string[]): string {
  return src_dirs.flatMap((d) => ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu"].map((l) => path.join(d, l))).filter((p) => existsSync(p)).join(":");
}

function writeEtc(inputs: InitramfsInputs, root: string): void {
  writeFile(root, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", 0o644);
  writeFile(root, "etc/group", "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n", 0o644);
  // Empty "last changed" field: no password ageing, so no forced change at first login.
  writeFile(root, "etc/shadow", `root:${inputs.root_password_hash}::0:99999:7:::\nnobody:*::0:99999:7:::\n`, 0o600);
  // dropbear refuses users whose shell is not listed here.
  writeFile(root, "etc/shells", "/bin/sh\n/bin/ash\n", 0o644);
  writeFile(root, "etc/nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n", 0o644);
  writeFile(root, "etc/hosts", "127.0.0.1 localhost\n", 0o644);
  writeFile(root, "etc/hostname", "tapsim\n", 0o644);
  writeFile(root, "etc/profile", "export PATH=/usr/sbin:/usr/bin:/sbin:/bin\nexport PS1='\\u@\\h:\\w\\$ '\n", 0o644);
  // busybox init after /init: reaps orphans; a console shell once Enter is pressed.
  writeFile(root, "etc/inittab", "::askfirst:-/bin/sh\n::ctrlaltdel:/sbin/reboot\n::shutdown:/bin/umount -a -r\n", 0o644);
  writeFile(root, "etc/tapsim/modules", GUEST_MODULES.join("\n") + "\n", 0o644);
}

/** The uncompressed archive holding only the host key (and its folders): same size for every key. */
export function hostKeyArchive(host_key: Buffer): Buffer {
  return cpioRaw([
    { name: "etc", kind: "dir", mode: 0o755 },
    { name: "etc/dropbear", kind: "dir", mode: 0o755 },
    { name: HOST_KEY_PATH, kind: "file", mode: 0o600, data: host_key },
  ]);
}

function writeFile(root: string, rel: string, data: string | Buffer, mode: number): void {
  const p = path.join(root, rel);
  writeFileSync(p, data);
  chmodSync(p, mode);
}

/** Fixed modes for the folders (umask-independent) and one mtime for everything. */
function normaliseTree(root: string): void {
  const special: Record<string, number> = { tmp: 0o1777, root: 0o700 };
  for (const rel of listTree(root)) {
    const p = path.join(root, rel);
    const st = lstatSync(p);
    if (st.isDirectory()) chmodSync(p, special[rel] ?? 0o755);
    lutimesSync(p, FIXED_MTIME_S, FIXED_MTIME_S);
  }
}

/** Every path under root, relative, sorted bytewise (names are ASCII), parents first. */
function listTree(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(root, rel)).sort()) {
      const child = rel === "" ? name : `${rel}/${name}`;
      out.push(child);
      if (lstatSync(path.join(root, child)).isDirectory()) walk(child);
    }
  };
  walk("");
  return out.sort();
}

function writeCpioGz(root: string, prefix: Buffer, out_path: string): void {
  const list = listTree(root).join("\0") + "\0";
  const tmp = `${out_path}.tmp`;
  writeFileSync(tmp, prefix);
  run("bash", ["-c", 'set -o pipefail; cpio --null --create --format=newc --reproducible -R 0:0 --quiet | gzip -n -9 >> "$1"', "bash", tmp], { cwd: root, input: list });
  renameSync(tmp, out_path);
}
