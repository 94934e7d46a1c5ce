// Slice switches per second through the slice gate against plain QMP stop/cont, measured in
// the same run on booted, idle default guests:
//   gate: one RUN/DONE exchange per slice over the gate's unix socket, with blocking I/O from
//         the native addon (the default) and through the Node event loop; each slice is
//         100 us of virtual time and ends exactly at its deadline (frozen in between). The
//         gate ends such idle slices in place (gate.c, end_idle_slice_in_place); a third
//         gated VM runs tapsim-gate-no-in-place.so, where every slice goes through QEMU's
//         timers and main loop (the gate before issue #12), for comparison;
//   QMP:  a `stop` then a `cont` per switch on another QEMU started with the same arguments
//         but without the plugin (the reference simulator's way of pausing a VM).
// A switch is "VM frozen -> run one slice -> frozen again". Ratio gate/QMP is the figure.
// Only the VM being measured runs: the plain VM is stopped while the gates are measured (an
// idle guest under -icount sleep=off warps from timer to timer and burns a whole core), and
// the gated VMs are frozen in their gates while QMP is measured.

import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ensureDefaultImage, kernelCmdline } from "../guest/image.js";
import { QmpClient } from "../qmp/client.js";
import { gateVariantPath, QemuVm, qemuArgs, QEMU_BINARY_DEFAULT, type VmSpec } from "../qmp/launcher.js";
import { fmtRatio, median, note, printTable, QUICK, REPEATS } from "./common.js";

const SWITCHES = QUICK ? 500 : 5000;
const SLICE_NS = 100_000;
const BOOT_VIRTUAL_NS = 12_000_000_000;
const BOOT_SLICE_NS = 10_000_000;
const BOOT_WALL_MS = 12_000;

async function main(): Promise<void> {
  const image = await ensureDefaultImage({ log: (l) => note(l) });
  const run_dir = mkdtempSync(path.join(tmpdir(), "tapsim-bench-gate-"));
  const spec = (node: number): VmSpec => ({
    node,
    name: `bench${node}`,
    mac: `02:00:00:00:00:0${node}`,
    boot: { kind: "initramfs", kernel_path: image.kernel_path, initrd_path: image.initrd_path, append: kernelCmdline(image, { id: node, ip_cidr: `10.0.0.${node + 1}/16`, hostname: `bench${node}` }) },
    ssh_port: 40222 + node,
    memory_mib: 256,
    rtc_base: "2025-01-01T00:00:00",
    rng_seed: 1,
    run_dir,
  });
  const gated = await QemuVm.start(spec(0));
  const gated_async = await QemuVm.start({ ...spec(2), blocking_gate: false });
  const gated_via_timers = await QemuVm.start({ ...spec(3), gate_plugin_path: NO_IN_PLACE_PLUGIN_PATH });
  const plain = startPlain(spec(1), run_dir);
  const gates = [gated, gated_async, gated_via_timers];
  try {
    let t_ns = 0;
    for (; t_ns < BOOT_VIRTUAL_NS; t_ns += BOOT_SLICE_NS) {
      for (const vm of gates) await vm.gate.run(t_ns + BOOT_SLICE_NS, []);
    }
    const qmp = await QmpClient.connect(plain.qmp_socket);
    await new Promise((r) => setTimeout(r, BOOT_WALL_MS)); // let the plain VM boot to idle too
    const rates: number[][] = gates.map(() => []);
    const qmp_rates: number[] = [];
    const t_gate_ns = gates.map(() => t_ns);
    for (let rep = 0; rep < REPEATS; rep++) {
      await qmp.execute("stop");
      for (let i = 0; i < gates.length; i++) {
        const gate = gates[i]!.gate;
        const t0 = process.hrtime.bigint();
        if (gate.blocking) {
          for (let k = 0; k < SWITCHES; k++, t_gate_ns[i]! += SLICE_NS) checkExact(gate.runSync(t_gate_ns[i]! + SLICE_NS, []).clock_ns, t_gate_ns[i]! + SLICE_NS);
        } else {
          for (let k = 0; k < SWITCHES; k++, t_gate_ns[i]! += SLICE_NS) checkExact((await gate.run(t_gate_ns[i]! + SLICE_NS, [])).clock_ns, t_gate_ns[i]! + SLICE_NS);
        }
        rates[i]!.push(SWITCHES / (Number(process.hrtime.bigint() - t0) / 1e9));
      }
      await qmp.execute("cont");
      const t0 = process.hrtime.bigint();
      for (let k = 0; k < SWITCHES; k++) {
        await qmp.execute("stop");
        await qmp.execute("cont");
      }
      qmp_rates.push(SWITCHES / (Number(process.hrtime.bigint() - t0) / 1e9));
    }
    qmp.close();
    const [gate, gate_async, gate_via_timers] = rates.map(median) as [number, number, number];
    const base = median(qmp_rates);
    printTable(
      ["channel", "switches/s", "us/switch", "vs QMP stop/cont"],
      [
        ["slice gate, blocking exchange (default)", gate.toFixed(0), (1e6 / gate).toFixed(1), fmtRatio(gate / base)],
        ["slice gate, event-loop socket", gate_async.toFixed(0), (1e6 / gate_async).toFixed(1), fmtRatio(gate_async / base)],
        ["slice gate, blocking, no slice in place", gate_via_timers.toFixed(0), (1e6 / gate_via_timers).toFixed(1), fmtRatio(gate_via_timers / base)],
        ["QMP stop + cont", base.toFixed(0), (1e6 / base).toFixed(1), "1.00"],
      ],
      1,
    );
    note(`median of ${REPEATS} x ${SWITCHES} switches; gate slices ${SLICE_NS} ns of virtual time each, every one ended at its deadline exactly; idle booted default guest`);
  } finally {
    for (const vm of gates) await vm.stop();
    plain.child.kill("SIGKILL");
    rmSync(run_dir, { recursive: true, force: true });
  }
}

/** Every slice through QEMU's timers (built by scripts/build_gate.sh next to the gate). */
const NO_IN_PLACE_PLUGIN_PATH = gateVariantPath("no-in-place");

function checkExact(clock_ns: number, deadline_ns: number): void {
  if (clock_ns !== deadline_ns) throw new Error(`slice ended at ${clock_ns} ns, deadline ${deadline_ns} ns`);
}

/** The same VM without the plugin: what pausing looks like with QMP alone. */
function startPlain(spec: VmSpec, run_dir: string) {
  const base = path.join(run_dir, `node${spec.node}`);
  const qmp_socket = `${base}.qmp`;
  const args = qemuArgs(spec, `${base}.gate`, qmp_socket, `${base}.console.log`, null);
  const at = args.indexOf("-plugin");
  args.splice(at, 2);
  execFileSync(QEMU_BINARY_DEFAULT, ["--version"]);
  const child = spawn(QEMU_BINARY_DEFAULT, args, { stdio: "ignore" });
  return { child, qmp_socket };
}

await main();
