// `tapsim run --packages jq,bc`: Debian packages added to the default guest as an extra
// initramfs archive, appended after the image's. Fetched like the image's own packages
// (apt-get download + dpkg-deb, nothing installed on the host); of their Depends only the
// shared libraries their programs load are taken, found by asking the packaged ld.so (as
// the image build does), and only those the image lacks. Cached under
// .tapsim/images/packages-<key12>.cpio.gz, keyed by the names, the image and apt's state.

import { randomBytes } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { InputError } from "../engine/errors.js";
import type { VmAdditionsConfig } from "../engine/trace_records.js";
import {
  aptStateStamp,
  candidateVersion,
  fetchPackages,
  libraryPath,
  LOADER,
  type PackagePin,
  REPO_ROOT,
  resolvePackages,
  run,
  sha256File,
  sha256Hex,
} from "./build.js";
import { cpioGz, type CpioEntry } from "./cpio.js";
import { existingTree, readArchive, withParents } from "./extra.js";
import type { InitramfsImage } from "./image.js";

/** What the trace records: names asked for (sorted), every package unpacked for them, the archive's sha256. */
export type PackagesRecord = NonNullable<VmAdditionsConfig["packages"]>;

export interface PackagesArchive {
  path: string;
  record: PackagesRecord;
  rebuilt: boolean;
}

interface Manifest extends PackagesRecord {
  format: 1;
  key: string;
  base_identity: string;
  /** sha256 of this builder's sources: archives of other builders can never be looked up again. */
  builder: string;
  bytes: number;
}

const KEY_FORMAT = "tapsim-packages-v1";
const SOURCES = ["guest/packages.ts", "guest/cpio.ts", "guest/extra.ts"];
const NAME_RE = /^[a-z0-9][a-z0-9+.-]+$/;
/** Documentation is of no use in a guest. */
const SKIPPED_PREFIXES = ["usr/share/doc/", "usr/share/man/", "usr/share/info/", "usr/share/lintian/", "usr/share/bug/", "usr/share/doc-base/"];
const DEPENDS_RE = /^ ([ |])(?:Pre)?Depends: (\S+)$/;

/** `--packages a,b`: names checked and sorted, duplicates dropped. */
export function parsePackageList(text: string): string[] {
  const names = text.split(",").map((n) => n.trim()).filter((n) => n !== "");
  for (const n of names) if (!NAME_RE.test(n)) throw new InputError(`--packages: ${JSON.stringify(n)} is not a Debian package name`);
  if (names.length === 0) throw new InputError("--packages: no package named");
  return [...new Set(names)].sort();
}

/** The archive for these packages on top of `image`, from the cache or built now. */
export function ensurePackagesArchive(names: readonly string[], image: InitramfsImage, opts: { cache_root: string; log: (line: string) => void }): PackagesArchive {
  const images = path.join(opts.cache_root, "images");
  const builder = sha256Hex(JSON.stringify({ format: KEY_FORMAT, sources: SOURCES.map((s) => sha256File(path.join(REPO_ROOT, s))) }));
  const key = sha256Hex(JSON.stringify({ builder, names, base: image.identity, apt: aptStateStamp() }));
  const base = path.join(images, `packages-${key.slice(0, 12)}`);
  const cached = readManifest(`${base}.json`, key, `${base}.cpio.gz`);
  if (cached) return { path: `${base}.cpio.gz`, record: recordOf(cached), rebuilt: false };
  for (const n of names) candidate(n);
  opts.log(`adding packages ${names.join(" ")}`);
  const manifest = build(names, image, key, builder, opts);
  prune(images, image.identity, builder);
  return { path: `${base}.cpio.gz`, record: recordOf(manifest), rebuilt: true };
}

function recordOf(m: Manifest): PackagesRecord {
  return { requested: m.requested, resolved: m.resolved, archive_sha256: m.archive_sha256 };
}

function readManifest(file: string, key: string, archive: string): Manifest | null {
  try {
    const m = JSON.parse(readFileSync(file, "utf8")) as Manifest;
    if (m.format === 1 && m.key === key && statSync(archive).size === m.bytes) return m;
  } catch {
    // Not built yet, or unreadable: build it.
  }
  return null;
}

function build(names: readonly string[], image: InitramfsImage, key: string, builder: string, opts: { cache_root: string; log: (line: string) => void }): Manifest {
  const base_pins = resolvePackages(opts.cache_root).filter((p) => !p.name.startsWith("linux-image-"));
  const base_trees = fetchPackages(base_pins, path.join(opts.cache_root, "debs"), path.join(opts.cache_root, "unpacked"), opts.log).map((p) => p.unpacked_dir);
  const pins = pinAll(dependencyClosure(names, new Set(base_pins.map((p) => p.name))));
  const pkgs = fetchPackages(pins, path.join(opts.cache_root, "packages/debs"), path.join(opts.cache_root, "packages/unpacked"), opts.log);
  const asked = pkgs.filter((p) => names.includes(p.name)).map((p) => p.unpacked_dir);
  const base_entries = readArchive(image.initrd_path);
  const below = existingTree(base_entries);
  const own = packageEntries(asked);
  // A folder the image has keeps its mode (an entry for it would reset it).
  own.entries = own.entries.filter((e) => e.kind !== "dir" || !below.has(e.name));
  const libs = libraryEntries(own, [...pkgs.map((p) => p.unpacked_dir), ...base_trees], below);
  const gz = cpioGz(withParents([...own.entries, ...libs], below));
  const images = path.join(opts.cache_root, "images");
  const base = path.join(images, `packages-${key.slice(0, 12)}`);
  const manifest: Manifest = {
    format: 1,
    key,
    base_identity: image.identity,
    builder,
    requested: [...names],
    resolved: pkgs.map((p) => ({ name: p.name, version: p.version, deb_sha256: p.deb_sha256 })),
    archive_sha256: sha256Hex(gz),
    bytes: gz.length,
  };
  mkdirSync(images, { recursive: true });
  writeAtomically(`${base}.cpio.gz`, gz);
  writeAtomically(`${base}.json`, JSON.stringify(manifest, null, 2) + "\n");
  return manifest;
}

function writeAtomically(file: string, data: Buffer | string): void {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  writeFileSync(tmp, data, { mode: 0o644 });
  renameSync(tmp, file);
}

/** Archives built on another image or by other sources can never be looked up again. */
function prune(images: string, identity: string, builder: string): void {
  for (const name of readdirSync(images).filter((n) => /^packages-[0-9a-f]{12}\.json$/.test(n))) {
    try {
      const m = JSON.parse(readFileSync(path.join(images, name), "utf8")) as Partial<Manifest>;
      if (m.base_identity === identity && m.builder === builder) continue;
    } catch {
      continue;
    }
    rmSync(path.join(images, name), { force: true });
    rmSync(path.join(images, name.replace(/\.json$/, ".cpio.gz")), { force: true });
  }
}

/**
 * The packages asked for and, transitively, their Depends and Pre-Depends, leaving out the
 * image's own packages (their libraries are looked up in their trees) and Debian's
 * Essential ones (dpkg, tar…: named for maintainer scripts, which never run here). Of
 * alternatives (a | b) and of virtual packages' providers, one already present wins, else the first.
 */
export function dependencyClosure(names: readonly string[], base: ReadonlySet<string>): string[] {
  const chosen = new Set<string>(names);
  const present = new Set<string>(base);
  let level = [...names];
  while (level.length > 0) {
    const out = run("apt-cache", ["depends", "--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", ...level]).toString();
    const wanted = new Set<string>();
    for (const group of dependencyGroups(out)) {
      if (!group.some((n) => chosen.has(n) || present.has(n) || wanted.has(n))) wanted.add(group[0]!);
    }
    const essential = essentialPackages([...wanted]);
    level = [...wanted].filter((n) => !essential.has(n));
    for (const n of essential) present.add(n);
    for (const n of level) chosen.add(n);
  }
  return [...chosen].sort();
}

function essentialPackages(names: readonly string[]): Set<string> {
  if (names.length === 0) return new Set();
  const out = run("apt-cache", ["show", "--no-all-versions", ...names]).toString();
  const essential = new Set<string>();
  for (const record of out.split(/\n\n+/)) {
    const name = /^Package: (\S+)$/m.exec(record)?.[1];
    if (name !== undefined && /^Essential: yes$/m.test(record)) essential.add(name);
  }
  return essential;
}

/**
 * Each dependency of `apt-cache depends` output as the names that satisfy it: a line ending
 * an alternative (" |Depends: a") joins the next one's group; a virtual package (<v>) is
 * replaced by its providers, listed below it.
 */
function dependencyGroups(out: string): string[][] {
  const groups: string[][] = [];
  let group: string[] | null = null;
  let alternative = false;
  for (const line of out.split("\n")) {
    const dep = DEPENDS_RE.exec(line);
    const provider = /^ {4}(\S+)$/.exec(line);
    if (dep) {
      if (group === null || !alternative) groups.push((group = []));
      if (!dep[2]!.startsWith("<")) group.push(dep[2]!.replace(/:any$/, ""));
      alternative = dep[1] === "|";
    } else if (provider && group !== null) {
      group.push(provider[1]!.replace(/:any$/, ""));
    } else {
      group = null;
      alternative = false;
    }
  }
  return groups.filter((g) => g.length > 0);
}

function candidate(name: string): string {
  try {
    return candidateVersion(run("apt-cache", ["policy", name]).toString(), name);
  } catch {
    throw new InputError(`--packages: no package named ${JSON.stringify(name)} (apt-cache has no candidate; run apt-get update?)`);
  }
}

function pinAll(names: readonly string[]): PackagePin[] {
  const policy = run("apt-cache", ["policy", ...names]).toString();
  return names.map((name) => ({ name, version: candidateVersion(policy, name) }));
}

/** Every file, folder and symlink of the packages asked for, documentation left out. */
function packageEntries(trees: readonly string[]): { entries: CpioEntry[]; elf_files: { tree: string; rel: string }[] } {
  const entries: CpioEntry[] = [];
  const elf_files: { tree: string; rel: string }[] = [];
  const walk = (tree: string, rel: string) => {
    for (const name of readdirSync(path.join(tree, rel)).sort()) {
      const child = rel === "" ? name : `${rel}/${name}`;
      if (SKIPPED_PREFIXES.some((p) => `${child}/`.startsWith(p))) continue;
      const full = path.join(tree, child);
      const st = lstatSync(full);
      if (st.isSymbolicLink()) entries.push({ name: child, kind: "symlink", mode: 0o777, target: readlinkSync(full) });
      else if (st.isDirectory()) {
        entries.push({ name: child, kind: "dir", mode: st.mode & 0o7777 });
        walk(tree, child);
      } else if (st.isFile()) {
        const data = readFileSync(full);
        entries.push({ name: child, kind: "file", mode: st.mode & 0o7777, data });
        if (isDynamicElf(data)) elf_files.push({ tree, rel: child });
      }
    }
  };
  for (const tree of trees) walk(tree, "");
  return { entries, elf_files };
}

/**
 * The shared libraries the packages' programs and libraries load that the image lacks,
 * each under the name the loader found it by, as a file. Asks the packaged ld.so with only
 * the package trees on its path, so a library no package provides fails here, not in the guest.
 */
function libraryEntries(own: { entries: CpioEntry[]; elf_files: { tree: string; rel: string }[] }, trees: readonly string[], below: ReadonlyMap<string, string>): CpioEntry[] {
  const loader = trees.map((t) => path.join(t, LOADER)).find((p) => existsSync(p));
  if (loader === undefined) throw new Error(`${LOADER}: in none of the package trees`);
  const have = new Set([...below.keys(), ...own.entries.map((e) => e.name)]);
  const lib_path = libraryPath([...trees]);
  const out = new Map<string, CpioEntry>();
  for (const elf of own.elf_files) {
    const listing = run(loader, ["--library-path", lib_path, "--list", path.join(elf.tree, elf.rel)]).toString();
    const missing = /^\s*(\S+) => not found/m.exec(listing);
    if (missing) throw new InputError(`--packages: /${elf.rel} needs ${missing[1]}, which none of the packages in its Depends provides`);
    for (const match of listing.matchAll(/=>\s*(\/\S+)\s*\(/g)) {
      const resolved = match[1]!;
      const tree = trees.find((d) => resolved.startsWith(d + path.sep));
      if (tree === undefined) throw new InputError(`--packages: /${elf.rel} needs ${resolved}, which none of the packages provides`);
      const rel = path.relative(tree, resolved);
      if (have.has(rel) || out.has(rel)) continue;
      out.set(rel, { name: rel, kind: "file", mode: statSync(resolved).mode & 0o7777, data: readFileSync(resolved) });
    }
  }
  return [...out.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** An ELF file with a PT_DYNAMIC segment (a static binary has none, and ld.so --list crashes on it). */
export function isDynamicElf(data: Buffer): boolean {
  if (data.length < 64 || data.readUInt32BE(0) !== 0x7f454c46 || data[4] !== 2 || data[5] !== 1) return false;
  const phoff = Number(data.readBigUInt64LE(0x20));
  const phentsize = data.readUInt16LE(0x36);
  const phnum = data.readUInt16LE(0x38);
  const PT_DYNAMIC = 2;
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + 4 <= data.length && data.readUInt32LE(at) === PT_DYNAMIC) return true;
  }
  return false;
}
