// The slice gate on its own (no engine): slices of random length end exactly at their
// deadlines, a frame injected at virtual time T reaches the guest at T (its ARP reply is
// stamped microseconds after T, never before), and the QMP command the
// plugin registers reads the same virtual clock. The QMP monitor's I/O thread is not woken by
// the guest's virtual-timer events (the gate silences its list; a build that does not shows
// that the count would catch it).

import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Prng } from "../engine/prng.js";
import { ensureDefaultImage, kernelCmdline } from "../guest/image.js";
import { QmpClient } from "../qmp/client.js";
import { gateVariantPath, QemuVm, type VmSpec } from "../qmp/launcher.js";

const run_dir = mkdtempSync(path.join(tmpdir(), "tapsim-gatetest-"));
test.after(() => rmSync(run_dir, { recursive: true, force: true }));
const GUEST_MAC = "02:00:00:00:00:00";
const PEER_MAC = [0x02, 0, 0, 0, 0, 0x09];
const BOOT_NS = 10_000_000_000;

async function spec(node: number): Promise<VmSpec> {
  const image = await ensureDefaultImage();
  return {
    node,
    name: `gate${node}`,
    mac: GUEST_MAC,
    boot: { kind: "initramfs", kernel_path: image.kernel_path, initrd_path: image.initrd_path, append: kernelCmdline(image, { id: 0, ip_cidr: "10.0.0.1/16", hostname: "node0" }) },
    ssh_port: 26222 + node,
    memory_mib: 256,
    rtc_base: "2025-01-01T00:00:00",
    rng_seed: 1,
    run_dir,
  };
}

/** Broadcast ARP request from 10.0.0.10 (PEER_MAC): who has 10.0.0.1? */
function arpRequest(): Uint8Array {
  const f = new Uint8Array(60);
  f.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 0);
  f.set(PEER_MAC, 6);
  f.set([0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01], 12);
  f.set(PEER_MAC, 22);
  f.set([10, 0, 0, 10], 28);
  f.set([10, 0, 0, 1], 38);
  return f;
}

const isArpReplyToPeer = (f: Uint8Array) => f[12] === 0x08 && f[13] === 0x06 && f[21] === 2 && f.subarray(0, 6).every((b, i) => b === PEER_MAC[i]);

/** Boots to BOOT_NS in 10 ms slices, injects an ARP request at an odd instant, returns the reply's delay. */
async function arpReplyDelayNs(vm: QemuVm): Promise<number> {
  let t_ns = 0;
  for (; t_ns < BOOT_NS; t_ns += 10_000_000) await vm.gate.run(t_ns + 10_000_000, []);
  const inject_ns = t_ns + 123_457;
  const done = await vm.gate.run(t_ns + 50_000_000, [{ t_ns: inject_ns, bytes: arpRequest() }]);
  const reply = done.frames.find((f) => isArpReplyToPeer(f.bytes));
  assert.ok(reply, `the guest answered the ARP request (${done.frames.length} frames in the slice)`);
  assert.ok(reply!.t_ns > inject_ns, "the reply leaves after the request arrived");
  return reply!.t_ns - inject_ns;
}

test("slices of random length (1 ns .. 5 ms) all end exactly at their deadlines; QMP reads the same clock", async () => {
  const vm = await QemuVm.start(await spec(0));
  try {
    const prng = new Prng(7, 1, 0);
    let t_ns = 0;
    let error_ns_max = 0;
    const SLICES = 1500;
    for (let k = 0; k < SLICES; k++) {
      const len_ns = 1 + Math.floor(prng.nextFloat() ** 3 * 5_000_000);
      const done = await vm.gate.run(t_ns + len_ns, []);
      error_ns_max = Math.max(error_ns_max, Math.abs(done.clock_ns - (t_ns + len_ns)));
      t_ns += len_ns;
    }
    console.log(`  slice gate: ${SLICES} slices to t=${t_ns} ns, worst |clock - deadline| = ${error_ns_max} ns`);
    assert.is(error_ns_max, 0);
    // QMP is served by QEMU's main loop, which is frozen with the guest: keep slices running
    // (1 ms each) until the handshake and the command have gone through.
    let settled = false;
    const asked = QmpClient.connect(vm.qmp_socket).then(async (qmp) => {
      const clock_ns = await qmp.execute<number>("get-virtual-clock-ns");
      qmp.close();
      return clock_ns;
    });
    void asked.finally(() => (settled = true)).catch(() => {});
    const before_ns = t_ns;
    for (let k = 0; k < 1_000_000 && !settled; k++, t_ns += 1_000_000) {
      vm.gate.runSync(t_ns + 1_000_000, []);
      await new Promise((resolve) => setImmediate(resolve)); // the QMP socket is served by the event loop
    }
    const seen_ns = await asked;
    assert.ok(seen_ns >= before_ns && seen_ns <= t_ns, `QMP clock ${seen_ns} within the slices run meanwhile [${before_ns}, ${t_ns}]`);
  } finally {
    await vm.stop();
  }
});

test("a frame injected at T mid-slice reaches the guest at T: its ARP reply leaves microseconds after T, never before", async () => {
  const vm = await QemuVm.start(await spec(1));
  try {
    const delay_ns = await arpReplyDelayNs(vm);
    console.log(`  ARP reply ${delay_ns} ns after the request was injected`);
    assert.ok(delay_ns > 0 && delay_ns < 1_000_000, `reply within 1 ms of virtual time (${delay_ns} ns)`);
  } finally {
    await vm.stop();
  }
});

/** Voluntary context switches of the QEMU thread named `name` (QEMU runs with debug-threads=on), or of its main loop (the main thread). */
function threadWakeups(pid: number, name: string): number {
  const tids = name === "main loop" ? [String(pid)] : readdirSync(`/proc/${pid}/task`).filter((tid) => readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim() === name);
  assert.is(tids.length, 1, `one thread named "${name}" in QEMU ${pid}`);
  const status = readFileSync(`/proc/${pid}/task/${tids[0]}/status`, "utf8");
  const m = /^voluntary_ctxt_switches:\s+(\d+)$/m.exec(status);
  assert.ok(m, "voluntary_ctxt_switches in /proc/<pid>/task/<tid>/status");
  return Number(m![1]);
}

/** Runs the first `virtual_ns` of boot in 1 ms slices; wake-ups of the monitor's and the main loop's threads meanwhile. */
async function bootWakeups(vm: QemuVm, virtual_ns: number): Promise<{ monitor: number; main_loop: number }> {
  const before = { monitor: threadWakeups(vm.pid, "IO mon_iothread"), main_loop: threadWakeups(vm.pid, "main loop") };
  for (let t_ns = 0; t_ns < virtual_ns; t_ns += 1_000_000) await vm.gate.run(t_ns + 1_000_000, []);
  return { monitor: threadWakeups(vm.pid, "IO mon_iothread") - before.monitor, main_loop: threadWakeups(vm.pid, "main loop") - before.main_loop };
}

// QMP itself, served with the silenced thread, is checked by the first test.
test("the QMP monitor's I/O thread sleeps through the guest's timer events", async () => {
  const BOOT_PART_NS = 1_500_000_000;
  // One VM at a time, so that a failed start leaves nothing running.
  const wakeups = async (s: VmSpec) => {
    const vm = await QemuVm.start(s);
    try {
      return await bootWakeups(vm, BOOT_PART_NS);
    } finally {
      await vm.stop();
    }
  };
  const q = await wakeups(await spec(4));
  const l = await wakeups({ ...(await spec(5)), gate_plugin_path: gateVariantPath("loud-monitor") });
  console.log(`  first ${BOOT_PART_NS / 1e9} s of boot: monitor thread woken ${q.monitor} times (main loop ${q.main_loop}); without silencing ${l.monitor} (main loop ${l.main_loop})`);
  // The guest's timer events wake the main loop (the idle warp needs it) either way.
  assert.ok(q.main_loop > 1000 && l.main_loop > 1000, "the boot produced timer events");
  assert.ok(l.monitor > 1000, "without silencing, the monitor thread wakes with them");
  assert.ok(q.monitor < 50, `silenced: ${q.monitor} wake-ups`);
});

test("closing the gate makes a frozen QEMU exit on its own (no signal needed)", async () => {
  const vm = await QemuVm.start(await spec(3));
  await vm.gate.run(1_000_000, []);
  vm.gate.close();
  const exit = await vm.exited;
  assert.is(exit.signal, null);
  assert.is(exit.code, 0);
});

test.run();
