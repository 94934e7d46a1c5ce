// Everything a default-guest run adds to its VMs' initramfs, per node: the --packages
// archive (shared, cached), then the node's own archive (its --add files and the SSH access
// files, which come last so they win over an --add of the same path). Also what the trace
// records of them.

import { readFileSync } from "node:fs";
import { InputError } from "../engine/errors.js";
import type { VmAdditionsConfig } from "../engine/trace_records.js";
import { readCpioGz, type CpioEntry } from "./cpio.js";
import { accessEntries, buildArchive, existingTree, hostEntries, readArchive, type AddSpec, unpackedBytes } from "./extra.js";
import type { InitramfsImage } from "./image.js";
import { ensurePackagesArchive } from "./packages.js";

export interface AdditionsInput {
  readonly image: InitramfsImage;
  readonly node_count: number;
  readonly adds: readonly AddSpec[];
  /** Sorted package names, or null for no --packages. */
  readonly packages: readonly string[] | null;
  /** "ssh-ed25519 AAAA…": root's authorized_keys in every node. */
  readonly authorized_key: string;
  readonly password_login: boolean;
  /** Per node, packages of its own (a scenario's nodes[i].packages), added to `packages`. */
  readonly node_packages?: readonly (readonly string[] | null)[];
  /** An initramfs must fit in half the guest's memory. */
  readonly memory_mib: number;
  readonly node_memory_mib?: readonly number[];
  readonly cache_root: string;
  readonly log: (line: string) => void;
}

export interface Additions {
  /** Per node: the gzip'd archives to append to the image's initramfs, concatenated. */
  readonly archives: Buffer[];
  readonly record: VmAdditionsConfig;
}

export function buildAdditions(input: AdditionsInput): Additions {
  const base = readArchive(input.image.initrd_path);
  const per_node = input.node_packages !== undefined && input.node_packages.some((p) => p !== null && p.length > 0);
  const sets = Array.from({ length: input.node_count }, (_, node) => packageSet(input.packages, per_node ? input.node_packages![node] ?? null : null));
  const archives_by_set = new Map<string, PackagesArchiveRead | null>();
  for (const set of sets) if (!archives_by_set.has(setKey(set))) archives_by_set.set(setKey(set), readPackages(set, input));
  const hosts = input.adds.map((add) => ({ add, entries: hostEntries(add) }));
  const access = accessEntries(input.authorized_key, input.password_login);
  const archives: Buffer[] = [];
  const nodes: VmAdditionsConfig["nodes"] = [];
  for (let node = 0; node < input.node_count; node++) {
    const pkgs = archives_by_set.get(setKey(sets[node]!))!;
    const below = existingTree(base, pkgs?.entries ?? []);
    const mine = hosts.filter((h) => h.add.node === null || h.add.node === node);
    const entries = [...mine.flatMap((h) => h.entries), ...access];
    checkFits(node, [base, pkgs?.entries ?? [], entries], input.node_memory_mib?.[node] ?? input.memory_mib);
    const built = buildArchive(entries, below);
    archives.push(pkgs === null ? built.gz : Buffer.concat([pkgs.gz, built.gz]));
    const record = { sources: mine.map((h) => ({ host_path: h.add.host_path, guest_path: h.add.guest_path })), files: built.files, archive_sha256: built.sha256 };
    nodes.push(per_node ? { ...record, packages: pkgs?.record ?? null } : record);
  }
  const shared = per_node ? null : archives_by_set.get(setKey(sets[0] ?? null))?.record ?? null;
  return { archives, record: { nodes, packages: shared, ssh_password_login: input.password_login } };
}

interface PackagesArchiveRead {
  gz: Buffer;
  entries: CpioEntry[];
  record: NonNullable<VmAdditionsConfig["packages"]>;
}

/** The run's packages and the node's own, sorted, without repeats; null for none. */
function packageSet(shared: readonly string[] | null, own: readonly string[] | null): string[] | null {
  const all = [...new Set([...(shared ?? []), ...(own ?? [])])].sort();
  return all.length === 0 ? null : all;
}

function setKey(set: readonly string[] | null): string {
  return set === null ? "" : set.join(",");
}

function readPackages(set: readonly string[] | null, input: AdditionsInput): PackagesArchiveRead | null {
  if (set === null) return null;
  const pkgs = ensurePackagesArchive(set, input.image, { cache_root: input.cache_root, log: input.log });
  const gz = readFileSync(pkgs.path);
  return { gz, entries: readCpioGz(gz), record: pkgs.record };
}

/** The kernel unpacks the initramfs into a RAM file system capped at half the memory. */
function checkFits(node: number, archives: CpioEntry[][], memory_mib: number): void {
  const bytes = archives.reduce((sum, a) => sum + unpackedBytes(a), 0);
  const limit = (memory_mib * 1024 * 1024) / 2;
  if (bytes > limit) {
    throw new InputError(`--add/--packages: node ${node}'s initramfs would hold ${(bytes / 1e6).toFixed(1)} MB, more than half of --memory ${memory_mib} MiB; give the VMs more memory`);
  }
}
