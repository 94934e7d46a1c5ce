// `tapsim rerun TRACE`: re-execute a recorded VM run. The same VMs boot (image identity
// checked by hash) with the same configuration; the engine re-derives every decision from
// the trace as `replay` does, but each node is a real VM again: it gets the recorded
// deliveries and management frames at their recorded virtual times, and every record it
// produces (frames it sends, console output, management frames, slice ends) is checked
// against the trace. Exit 0 identical, 1 diverged (same report as replay), 3 consistent as
// far as an incomplete trace goes.

import type { Command } from "commander";
import type { NodeBackend } from "../engine/backend.js";
import { ScenarioController } from "../scenario/controller.js";
import { InputError } from "../engine/errors.js";
import { RecordKind, type TraceHeader } from "../engine/trace_records.js";
import { hostNowNs } from "../engine/units.js";
import { buildAdditions } from "../guest/additions.js";
import { defaultCacheRoot, ensureDefaultImage, openUserImage, type GuestImage } from "../guest/image.js";
import { checkQemu } from "../qmp/launcher.js";
import type { Snapshot } from "../qmp/snapshot.js";
import { ensureSnapshots } from "./run_vms.js";
import type { MgmtPort } from "../qmp/mgmt.js";
import { VmCluster } from "../qmp/vm_cluster.js";
import type { VmBackend } from "../qmp/vm_backend.js";
import { sameSimulation } from "../recorder/diff.js";
import { TraceReader } from "../recorder/reader.js";
import { checkAll, ReplayDriver, type RecordCursor, type ReplayOutcome } from "../recorder/replay.js";
import { ensureClientKey } from "./client_key.js";
import { EXIT_DIVERGED, EXIT_INCOMPLETE, printDivergence } from "./replay.js";

/** Records one slice's inputs may span before the port stops looking (the cursor's own bound is larger). */
const SLICE_RECORDS_SCAN_MAX = 1_000_000;

export function registerRerun(program: Command, setExit: (code: number) => void): void {
  program
    .command("rerun")
    .description("boot a recorded VM run's VMs again, feed them every recorded input, and check everything they do against the trace")
    .argument("<trace>", "trace of a `tapsim run --vms` run")
    .action(async (path: string) => setExit(await rerunCommand(path)));
}

async function rerunCommand(path: string): Promise<number> {
  const reader = TraceReader.open(path);
  try {
    const header = reader.header;
    const image = await imageOf(path, header);
    const extra_archives = additionsOf(path, header, image);
    const started = hostNowNs();
    const snapshots = await snapshotsOf(path, header, image);
    const outcome = await rerun(reader, header, image, extra_archives, snapshots);
    report(outcome, (hostNowNs() - started) / 1e9);
    return !outcome.identical ? EXIT_DIVERGED : outcome.trace_incomplete ? EXIT_INCOMPLETE : 0;
  } finally {
    reader.close();
  }
}

async function imageOf(path: string, header: TraceHeader): Promise<GuestImage> {
  const vm = header.config.vm;
  if (vm === undefined) throw new InputError(`${path}: not a VM run (rerun re-executes VMs; \`tapsim replay\` checks any trace)`);
  const qemu_version = await checkQemu();
  if (qemu_version !== vm.qemu_version) throw new InputError(`${path}: recorded with QEMU ${vm.qemu_version}, this host has ${qemu_version}; a rerun needs the same QEMU`);
  const image = vm.image.kind === "initramfs" ? await ensureDefaultImage() : await openUserImage(vm.image.source, {});
  if (image.identity !== vm.image.identity) {
    throw new InputError(`${path}: recorded with guest image ${vm.image.identity.slice(0, 12)}, but ${vm.image.kind === "initramfs" ? "the default image here" : vm.image.source} is ${image.identity.slice(0, 12)}`);
  }
  return image;
}

/**
 * The recorded run's extra initramfs archives (--add files, --packages, SSH access), built
 * again from the same sources and checked against the recorded hashes: a file changed
 * since, or another user's key, would make a different guest.
 */
function additionsOf(path: string, header: TraceHeader, image: GuestImage): Buffer[] | null {
  const recorded = header.config.vm!.additions;
  if (recorded === undefined || image.kind !== "initramfs") return null;
  const adds = recorded.nodes.flatMap((n, node) => n.sources.map((s) => ({ spec: `${node}:${s.host_path}:${s.guest_path}`, node, host_path: s.host_path, guest_path: s.guest_path })));
  const built = buildAdditions({
    image,
    node_count: header.config.nodes.length,
    adds,
    packages: recorded.packages?.requested ?? null,
    node_packages: recorded.nodes.map((n) => n.packages?.requested ?? null),
    authorized_key: ensureClientKey().public_line,
    password_login: recorded.ssh_password_login,
    memory_mib: header.config.vm!.memory_mib,
    ...(header.config.vm!.node_memory_mib === undefined ? {} : { node_memory_mib: header.config.vm!.node_memory_mib }),
    cache_root: defaultCacheRoot(),
    log: (line) => console.error(`tapsim image: ${line}`),
  });
  if ((built.record.packages?.archive_sha256 ?? null) !== (recorded.packages?.archive_sha256 ?? null)) {
    throw new InputError(`${path}: the --packages archive built here differs from the recorded one (other package versions?)`);
  }
  for (const [node, rec] of recorded.nodes.entries()) {
    const now = built.record.nodes[node]!;
    if ((now.packages?.archive_sha256 ?? null) !== (rec.packages?.archive_sha256 ?? null)) {
      throw new InputError(`${path}: node ${node}'s packages archive built here differs from the recorded one (other package versions?)`);
    }
    if (now.archive_sha256 === rec.archive_sha256) continue;
    const changed = rec.files.find((f, i) => JSON.stringify(f) !== JSON.stringify(now.files[i])) ?? rec.files[0];
    throw new InputError(`${path}: node ${node}'s added files differ from the recording${changed ? ` (first: ${changed.path})` : ""}; a rerun needs the same files and the same user's SSH key`);
  }
  return built.archives;
}

/**
 * The snapshots the recorded VMs started from, found in (or built into) the cache and
 * checked against the recorded saved states: a template that parked elsewhere would start
 * other guests.
 */
async function snapshotsOf(path: string, header: TraceHeader, image: GuestImage): Promise<Map<number, Snapshot> | null> {
  const vm = header.config.vm!;
  if (vm.snapshots === undefined) return null;
  const found = await ensureSnapshots({ json: false }, image, vm.qemu_version, vm);
  for (const rec of vm.snapshots) {
    const now = found.get(rec.memory_mib);
    if (now === undefined || now.state_sha256 !== rec.state_sha256) {
      throw new InputError(`${path}: recorded from a snapshot whose saved state is ${rec.state_sha256.slice(0, 12)}, but the one here (${rec.memory_mib} MiB) is ${now?.state_sha256.slice(0, 12) ?? "missing"}`);
    }
  }
  return found;
}

async function rerun(reader: TraceReader, header: TraceHeader, image: GuestImage, extra_archives: Buffer[] | null, snapshots: Map<number, Snapshot> | null): Promise<ReplayOutcome> {
  const vm = header.config.vm!;
  const ports = header.config.nodes.map((_, node) => new RecordedMgmtPort(node));
  let failure: string | null = null;
  const cluster = await VmCluster.start({
    config: header.config,
    image,
    ssh_port_base: vm.ssh_port_base,
    memory_mib: vm.memory_mib,
    rtc_base: vm.rtc_base,
    boot_commands: vm.boot_commands,
    ...(extra_archives === null ? {} : { extra_archives }),
    onCrash: (b: VmBackend) => (failure ??= b.crash),
    ...(vm.mgmt_net === undefined ? {} : { mgmt_net: vm.mgmt_net }),
    mgmt_live: false,
    mgmt_ports: ports,
    ...(snapshots === null ? {} : { snapshots }),
  });
  // Ctrl+C ends the process: each QEMU follows (parent-death signal) and removes its files.
  try {
    const driver = new ReplayDriver(reader, {
      backends: (cursor) => {
        for (const p of ports) p.cursor = cursor;
        return withScenario(header, cluster.backends);
      },
      equal: sameSimulation,
    });
    const outcome = await checkAll(driver);
    if (failure !== null && outcome.identical) console.error(`tapsim: note: ${failure} (as recorded)`);
    return outcome;
  } finally {
    await cluster.stop();
  }
}

/**
 * A scenario run's commands, kills and collect requests are re-derived by the same
 * controller from the same outputs (the trace's command records are checked, not fed);
 * the recorded trace says when the run ended, so the controller's stop is not needed.
 */
function withScenario(header: TraceHeader, backends: VmBackend[]): NodeBackend[] {
  const scenario = header.config.scenario;
  if (scenario === undefined) return backends;
  const controller = new ScenarioController(scenario, backends.length, { stop: () => {} });
  return backends.map((b, node) => controller.wrap(node, b));
}

/**
 * A VM's management NIC fed from the trace: at the start of each slice, the mgmt_in frames
 * recorded for that slice (they follow the slice's grant, before its slice_end); what the
 * guest sends back is checked as mgmt_out records, not handed to anyone.
 */
class RecordedMgmtPort implements MgmtPort {
  cursor: RecordCursor | null = null;

  constructor(private readonly node: number) {}

  takeFrames(): Uint8Array[] {
    const cursor = this.cursor;
    if (cursor === null) return [];
    const frames: Uint8Array[] = [];
    for (let k = 0; k < SLICE_RECORDS_SCAN_MAX; k++) {
      const r = cursor.peek(k);
      if (r === undefined || (r[0] === RecordKind.SliceEnd && r[1] === this.node)) break;
      if (r[0] === RecordKind.MgmtIn && r[1] === this.node) frames.push(r[3]);
    }
    return frames;
  }

  giveFrames(): void {}
}

function report(outcome: ReplayOutcome, wall_s: number): void {
  if (outcome.identical && outcome.trace_incomplete) {
    console.log(`rerun: INCOMPLETE trace, consistent so far: ${outcome.slices_checked} complete slices, ${outcome.records_checked} records re-executed and identical`);
  } else if (outcome.identical) {
    console.log(`rerun: identical: ${outcome.records_checked} records (${outcome.slices_checked} slices) re-executed on ${outcome.header.config.nodes.length} VMs and checked in ${wall_s.toFixed(2)} s`);
  } else {
    printDivergence("rerun", outcome.divergence!);
  }
}
