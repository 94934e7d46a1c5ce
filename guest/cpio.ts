// The "newc" cpio format the kernel unpacks as an initramfs, written and read in process.
// Written archives are reproducible by construction: owner 0:0, mtime 0, inode numbers by
// position, entries in the order given, gzip without a name or time (the header's mtime
// is 0 and its OS byte fixed by zlib). The kernel accepts several archives one after
// another, uncompressed or gzip'd (an uncompressed one first, as early microcode is), a later
// entry replacing an earlier one of the same name.

import { gunzipSync, gzipSync } from "node:zlib";

export type CpioEntry =
  | { readonly name: string; readonly kind: "dir"; readonly mode: number }
  | { readonly name: string; readonly kind: "file"; readonly mode: number; readonly data: Buffer }
  | { readonly name: string; readonly kind: "symlink"; readonly mode: number; readonly target: string };

const MAGIC = "070701";
const HEADER_BYTES = 110;
const TRAILER = "TRAILER!!!";
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFMT = 0o170000;
const GZIP_LEVEL = 9;

/** The gzip'd newc archive of `entries` (names relative, no leading '/'), then the trailer. */
export function cpioGz(entries: readonly CpioEntry[]): Buffer {
  return gzipSync(cpioRaw(entries), { level: GZIP_LEVEL });
}

/** The uncompressed newc archive of `entries`, padded to a multiple of 4 bytes. */
export function cpioRaw(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  entries.forEach((e, i) => {
    if (e.name === "" || e.name.startsWith("/") || e.name.includes("\0")) throw new Error(`cpio entry name ${JSON.stringify(e.name)}: expected a relative path`);
    parts.push(...member(e.name, i + 1, typeBits(e) | (e.mode & 0o7777), e.kind === "dir" ? 2 : 1, body(e)));
  });
  parts.push(...member(TRAILER, 0, 0, 1, Buffer.alloc(0)));
  return Buffer.concat(parts);
}

function typeBits(e: CpioEntry): number {
  return e.kind === "dir" ? S_IFDIR : e.kind === "file" ? S_IFREG : S_IFLNK;
}

function body(e: CpioEntry): Buffer {
  return e.kind === "file" ? e.data : e.kind === "symlink" ? Buffer.from(e.target) : Buffer.alloc(0);
}

function member(name: string, ino: number, mode: number, nlink: number, data: Buffer): Buffer[] {
  const name_bytes = Buffer.from(`${name}\0`);
  const fields = [ino, mode, 0, 0, nlink, 0, data.length, 0, 0, 0, 0, name_bytes.length, 0];
  const header = Buffer.from(MAGIC + fields.map((v) => v.toString(16).toUpperCase().padStart(8, "0")).join(""), "ascii");
  return [header, name_bytes, padding(HEADER_BYTES + name_bytes.length), data, padding(data.length)];
}

function padding(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}

/**
 * Every entry of an initramfs in archive order: uncompressed newc archives first (if any),
 * then gzip'd ones (several concatenated gzip members are one stream to gunzip).
 */
export function readCpioGz(initramfs: Buffer): CpioEntry[] {
  const out: CpioEntry[] = [];
  let at = 0;
  while (at < initramfs.length && initramfs.toString("ascii", at, at + MAGIC.length) === MAGIC) {
    at = readArchive(initramfs, at, out, true);
    while (at < initramfs.length && initramfs[at] === 0) at++;
  }
  if (at < initramfs.length) readArchive(gunzipSync(initramfs.subarray(at)), 0, out, false);
  return out;
}

/** Reads newc members from `at` into out: to the first trailer (returning the offset after it) or to the end. */
function readArchive(raw: Buffer, at: number, out: CpioEntry[], stop_at_trailer: boolean): number {
  while (at + HEADER_BYTES <= raw.length) {
    if (raw.toString("ascii", at, at + 6) !== MAGIC) {
      // Between concatenated archives there may be zero padding.
      if (raw[at] === 0) {
        at += 4;
        continue;
      }
      throw new Error(`not a newc cpio archive (bad magic at byte ${at})`);
    }
    const field = (i: number) => parseInt(raw.toString("ascii", at + 6 + i * 8, at + 14 + i * 8), 16);
    const mode = field(1);
    const size = field(6);
    const name_size = field(11);
    const name = raw.toString("utf8", at + HEADER_BYTES, at + HEADER_BYTES + name_size - 1);
    const data_at = align4(at + HEADER_BYTES + name_size);
    const data = raw.subarray(data_at, data_at + size);
    at = align4(data_at + size);
    if (name === TRAILER) {
      if (stop_at_trailer) return at;
      continue;
    }
    out.push(entryOf(name, mode, data));
  }
  return at;
}

function entryOf(name: string, mode: number, data: Buffer): CpioEntry {
  const perm = mode & 0o7777;
  switch (mode & S_IFMT) {
    case S_IFDIR:
      return { name, kind: "dir", mode: perm };
    case S_IFLNK:
      return { name, kind: "symlink", mode: perm, target: data.toString() };
    default:
      return { name, kind: "file", mode: perm, data: Buffer.from(data) };
  }
}

function align4(n: number): number {
  return (n + 3) & ~3;
}
