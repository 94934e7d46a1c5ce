// Slice switches per second through the slice gate against plain QMP stop/cont, measured in
// the same run on booted, idle default guests:
//   gate: one RUN/DONE exchange per slice over the gate's unix socket, with blocking I/O from
//         the native addon (the default) and through the Node event loop; each slice is
//         100 us of virtual time and ends exactly at its deadline (frozen in between);
//   QMP:  a `stop` then a `cont` per switch on a second QEMU started with the same arguments
//         but without the plugin (the reference simulator's way of pausing a VM).
// A switch is "VM frozen -> run one slice -> frozen again". Ratio gate/QMP is the figure.

import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ensureDefaultImage, kernelCmdline } from "../guest/image.js";
import { QmpClient } from "../qmp/client.js";
import { QemuVm, qemuArgs, QEMU_BINARY_DEFAULT, type VmSpec } from "../qmp/launcher.js";
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
  const plain = startPlain(spec(1), run_dir);
  try {
    let t_ns = 0;
    for (; t_ns < BOOT_VIRTUAL_NS; t_ns += BOOT_SLICE_NS) {
      gated.gate.runSync(t_ns + BOOT_SLICE_NS, []);
      await gated_async.gate.run(t_ns + BOOT_SLICE_NS, []);
    }
    const qmp = await QmpClient.connect(plain.qmp_socket);
    await new Promise((r) => setTimeout(r, BOOT_WALL_MS)); // let the plain VM boot to idle too
    const gate_rates: number[] = [];
    const async_rates: number[] = [];
    const qmp_rates: number[] = [];
    let t_async_ns = t_ns;
    for (let rep = 0; rep < REPEATS; rep++) {
      let t0 = process.hrtime.bigint();
      for (let k = 0; k < SWITCHES; k++, t_ns += SLICE_NS) gated.gate.runSync(t_ns + SLICE_NS, []);
      gate_rates.push(SWITCHES / (Number(process.hrtime.bigint() - t0) / 1e9));
      t0 = process.hrtime.bigint();
      for (let k = 0; k < SWITCHES; k++, t_async_ns += SLICE_NS) await gated_async.gate.run(t_async_ns + SLICE_NS, []);
      async_rates.push(SWITCHES / (Number(process.hrtime.bigint() - t0) / 1e9));
      t0 = process.hrtime.bigint();
      for (let k = 0; k < SWITCHES; k++) {
        await qmp.execute("stop");
        await qmp.execute("cont");
      }
      qmp_rates.push(SWITCHES / (Number(process.hrtime.bigint() - t0) / 1e9));
    }
    qmp.close();
    const gate = median(gate_rates);
    const gate_async = median(async_rates);
    const base = median(qmp_rates);
    printTable(
      ["channel", "switches/s", "us/switch", "vs QMP stop/cont"],
      [
        ["slice gate, blocking exchange (default)", gate.toFixed(0), (1e6 / gate).toFixed(1), fmtRatio(gate / base)],
        ["slice gate, event-loop socket", gate_async.toFixed(0), (1e6 / gate_async).toFixed(1), fmtRatio(gate_async / base)],
        ["QMP stop + cont", base.toFixed(0), (1e6 / base).toFixed(1), "1.00"],
      ],
      1,
    );
    note(`median of ${REPEATS} x ${SWITCHES} switches; gate slices ${SLICE_NS} ns of virtual time each; idle booted default guest`);
  } finally {
    await gated.stop();
    await gated_async.stop();
    plain.child.kill("SIGKILL");
    rmSync(run_dir, { recursive: true, force: true });
  }
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
