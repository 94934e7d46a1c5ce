// The initrd a default-guest VM boots: the image's initramfs with the node's extra archive
// (tapsim run --add/--packages, SSH access) appended. The kernel unpacks concatenated gzip'd
// cpio archives one after the other, so appending is all it takes. QEMU reads the file
// while it builds the machine, before the first gate, after which the copy is removed.

import { copyFileSync, appendFileSync, readFileSync, rmSync } from "node:fs";
import type { BootSpec } from "./launcher.js";

export interface BootInitrd {
  /** The boot spec QEMU gets: the combined file in place of the image's initrd. */
  readonly boot: BootSpec;
  /** Removes the combined file (QEMU has it in guest memory by then). */
  remove(): void;
}

/** `file`: where the combined initrd goes (the private run directory). */
export function bootInitrd(boot: BootSpec, file: string): BootInitrd {
  if (boot.kind !== "initramfs" || boot.extra_initrd_path === undefined) return { boot, remove: () => {} };
  copyFileSync(boot.initrd_path, file);
  appendFileSync(file, readFileSync(boot.extra_initrd_path));
  return { boot: { ...boot, initrd_path: file }, remove: () => rmSync(file, { force: true }) };
}
