// The per-run extra initramfs archive of a default-guest VM: host files and folders given
// with `tapsim run --add`, and what SSH access needs (root's authorized_keys, the
// password-login switch). It is appended to the image's initramfs, so these reach the
// guest before its first instruction, as recorded inputs, and nothing needs SSH.

import { createHash } from "node:crypto";
import { lstatSync, readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import path from "node:path";
import { fsErrorText, InputError } from "../engine/errors.js";
import type { GuestFileRecord } from "../engine/trace_records.js";
import { cpioGz, readCpioGz, type CpioEntry } from "./cpio.js";

/** One `--add` after parsing: which node (null: every node), from where, to where. */
export interface AddSpec {
  readonly spec: string;
  readonly node: number | null;
  readonly host_path: string;
  /** Absolute, normalised, no '..'. */
  readonly guest_path: string;
}


/** Names (relative, like the archive's) already in the archives below this one, and what each is. */
export type ExistingTree = ReadonlyMap<string, CpioEntry["kind"]>;

/** The flag file init.sh looks for: present, dropbear accepts passwords too. */
export const PASSWORD_LOGIN_FLAG = "etc/tapsim/ssh-password-login";
export const AUTHORIZED_KEYS = "root/.ssh/authorized_keys";

/** `HOST:GUEST` (every node) or `N:HOST:GUEST` (node N); the guest path is after the last ':'. */
export function parseAddSpecs(specs: readonly string[], node_count: number): AddSpec[] {
  return specs.map((spec) => {
    const split = spec.lastIndexOf(":");
    if (split <= 0) throw new InputError(`--add ${JSON.stringify(spec)}: expected HOST_PATH:GUEST_PATH or N:HOST_PATH:GUEST_PATH`);
    const guest_path = checkGuestPath(spec, spec.slice(split + 1));
    const m = /^(\d+):(.+)$/s.exec(spec.slice(0, split));
    const node = m ? Number(m[1]) : null;
    if (node !== null && node >= node_count) throw new InputError(`--add ${JSON.stringify(spec)}: node ${node} does not exist (${node_count} VMs)`);
    return { spec, node, host_path: m ? m[2]! : spec.slice(0, split), guest_path };
  });
}

function checkGuestPath(spec: string, guest: string): string {
  const segments = guest.split("/");
  if (!guest.startsWith("/") || segments.includes("..") || path.posix.normalize(guest) === "/") {
    throw new InputError(`--add ${JSON.stringify(spec)}: guest path ${JSON.stringify(guest)} must be absolute, below /, with no '..'`);
  }
  return path.posix.normalize(guest).replace(/\/$/, "");
}

/** The archive entries for one --add: a file, or a folder with everything under it (symlinks kept). */
export function hostEntries(add: AddSpec): CpioEntry[] {
  let st;
  try {
    st = statSync(add.host_path);
  } catch (err) {
    throw new InputError(`--add ${JSON.stringify(add.spec)}: ${add.host_path}: ${fsErrorText(err)}`);
  }
  const name = add.guest_path.slice(1);
  if (st.isFile()) return [{ name, kind: "file", mode: st.mode & 0o7777, data: readHostFile(add, add.host_path) }];
  if (!st.isDirectory()) throw new InputError(`--add ${JSON.stringify(add.spec)}: ${add.host_path}: not a file or a folder`);
  const out: CpioEntry[] = [{ name, kind: "dir", mode: st.mode & 0o7777 }];
  walk(add, add.host_path, name, out);
  return out;
}

function walk(add: AddSpec, dir: string, name: string, out: CpioEntry[]): void {
  for (const child of readdirSync(dir).sort()) {
    const host = path.join(dir, child);
    const guest = `${name}/${child}`;
    const st = lstatSync(host);
    if (st.isSymbolicLink()) out.push({ name: guest, kind: "symlink", mode: 0o777, target: readlinkSync(host) });
    else if (st.isFile()) out.push({ name: guest, kind: "file", mode: st.mode & 0o7777, data: readHostFile(add, host) });
    else if (st.isDirectory()) {
      out.push({ name: guest, kind: "dir", mode: st.mode & 0o7777 });
      walk(add, host, guest, out);
    } else throw new InputError(`--add ${JSON.stringify(add.spec)}: ${host}: not a file, folder or symlink`);
  }
}

function readHostFile(add: AddSpec, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new InputError(`--add ${JSON.stringify(add.spec)}: ${file}: ${fsErrorText(err)}`);
  }
}

/** root's authorized_keys with the client's public key, and the password-login switch when asked for. */
export function accessEntries(authorized_key: string, password_login: boolean): CpioEntry[] {
  if (!/^ssh-ed25519 [A-Za-z0-9+/=]+( \S+)?$/.test(authorized_key.trim())) throw new Error(`authorized key: expected one "ssh-ed25519 AAAA..." line`);
  const out: CpioEntry[] = [
    { name: "root/.ssh", kind: "dir", mode: 0o700 },
    { name: AUTHORIZED_KEYS, kind: "file", mode: 0o600, data: Buffer.from(`${authorized_key.trim()}\n`) },
  ];
  if (password_login) out.push({ name: PASSWORD_LOGIN_FLAG, kind: "file", mode: 0o644, data: Buffer.from("1\n") });
  return out;
}

/** What the archives below hold: the image's initramfs and any archive appended before this one. */
export function existingTree(...archives: readonly CpioEntry[][]): Map<string, CpioEntry["kind"]> {
  const tree = new Map<string, CpioEntry["kind"]>();
  for (const entries of archives) for (const e of entries) tree.set(e.name, e.kind);
  return tree;
}

export function readArchive(file: string): CpioEntry[] {
  return readCpioGz(readFileSync(file));
}

/**
 * The entries in archive order with the folders they need first. A folder the archives
 * below already have gets no entry of its own (the kernel would reset its mode); one
 * asked for explicitly keeps its entry. Later entries of the same name win.
 */
export function withParents(entries: readonly CpioEntry[], existing: ExistingTree): CpioEntry[] {
  const last = new Map<string, CpioEntry>();
  for (const e of entries) last.set(e.name, e);
  const out: CpioEntry[] = [];
  const made = new Set<string>();
  const ensureDir = (dir: string) => {
    // A name below that is a symlink (var/run) is left alone too: the kernel would chmod its target.
    if (dir === "." || made.has(dir) || existing.has(dir)) return;
    ensureDir(path.posix.dirname(dir));
    made.add(dir);
    const asked = last.get(dir);
    out.push(asked?.kind === "dir" ? asked : { name: dir, kind: "dir", mode: 0o755 });
  };
  for (const e of last.values()) {
    ensureDir(path.posix.dirname(e.name));
    if (e.kind === "dir") {
      if (!made.has(e.name)) {
        made.add(e.name);
        out.push(e);
      }
    } else out.push(e);
  }
  return out;
}

export function buildArchive(entries: readonly CpioEntry[], existing: ExistingTree): { gz: Buffer; files: GuestFileRecord[]; sha256: string } {
  const ordered = withParents(entries, existing);
  const gz = cpioGz(ordered);
  return { gz, files: ordered.map(fileRecord), sha256: createHash("sha256").update(gz).digest("hex") };
}

function fileRecord(e: CpioEntry): GuestFileRecord {
  const data = e.kind === "file" ? e.data : e.kind === "symlink" ? Buffer.from(e.target) : Buffer.alloc(0);
  return { path: `/${e.name}`, kind: e.kind, mode: e.mode, bytes: data.length, sha256: createHash("sha256").update(data).digest("hex") };
}

/** Bytes the entries take once unpacked (file contents and symlink targets). */
export function unpackedBytes(entries: readonly CpioEntry[]): number {
  return entries.reduce((sum, e) => sum + (e.kind === "file" ? e.data.length : e.kind === "symlink" ? e.target.length : 0), 0);
}
