// What the VM benchmarks share: a closed-world cluster of default guests (no management
// TAPs, nothing reaches the guests but the run's own inputs), booted or started from a
// snapshot, and a record sink that keeps nothing.

import type { RunConfig, RecordSink } from "../engine/trace_records.js";
import { defaultCacheRoot, ensureDefaultImage } from "../guest/image.js";
import { checkQemu } from "../qmp/launcher.js";
import { ensureSnapshot, type Snapshot } from "../qmp/snapshot.js";
import { VmCluster } from "../qmp/vm_cluster.js";

export const BENCH_MEMORY_MIB = 256;
export const NULL_SINK: RecordSink = { write: () => {} };
/** Unused (no management network), but VmCluster takes one. */
const SSH_PORT_BASE = 43000;

/** The default guest's snapshot at BENCH_MEMORY_MIB from the repo's cache, built first if missing (before any clock starts). */
export async function benchSnapshot(log: (line: string) => void): Promise<{ snapshot: Snapshot; built: boolean }> {
  return await ensureSnapshot(await ensureDefaultImage(), BENCH_MEMORY_MIB, { cache_root: defaultCacheRoot(), qemu_version: await checkQemu(), log });
}

/** Every node of `config` as a VM; a crash throws. With `snapshot`, each starts from it. */
export async function startBenchCluster(config: RunConfig, boot_commands: (string | null)[], snapshot: Snapshot | null, gate_plugin_path?: string): Promise<VmCluster> {
  return await VmCluster.start({
    config,
    image: await ensureDefaultImage(),
    ssh_port_base: SSH_PORT_BASE,
    memory_mib: BENCH_MEMORY_MIB,
    rtc_base: "2025-01-01T00:00:00",
    boot_commands,
    mgmt_live: false,
    onCrash: (b) => {
      throw new Error(b.crash ?? "crash");
    },
    ...(snapshot === null ? {} : { snapshots: new Map([[BENCH_MEMORY_MIB, snapshot]]) }),
    ...(gate_plugin_path === undefined ? {} : { gate_plugin_path }),
  });
}
