// Scenario commands, file collection and node faults on a real VM (issue #10), driven by a
// tiny slice loop (no engine): commands start at their exact virtual time, exit codes and a
// kill come back as command outputs, a file is collected byte for byte, a pause makes the
// guest clock lag by the pause, and a node powered off and restarted boots again with its
// clock at RTC base + engine time. The same scenario on a second boot gives the same
// command outputs at the same times. One VM at a time, no management TAP (mgmt_live false).

import { existsSync } from "node:fs";
import path from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { SliceOutput } from "../engine/backend.js";
import { makeRunConfig } from "../engine/run.js";
import { LINK_DEFAULTS } from "../engine/topology.js";
import { rtcBaseEpochS } from "../engine/units.js";
import { ensureDefaultImage } from "../guest/image.js";
import type { VmBackend } from "../qmp/vm_backend.js";
import { VmCluster } from "../qmp/vm_cluster.js";
import { isAlive } from "./helpers/vm.js";

const RTC_BASE = "2025-01-01T00:00:00";
const RTC_BASE_NS = rtcBaseEpochS(RTC_BASE)! * 1e9;
const SLICE_NS = 100_000_000;
const MS = 1_000_000;
/** fork + exec of sh and the command, in virtual time: generous; the measured value is printed. */
const START_LATENCY_NS_MAX = 50 * MS;

interface Drive {
  backend: VmBackend;
  outputs: SliceOutput[];
  console: string;
}

type CommandOut = Extract<SliceOutput, { kind: "command" }>;

async function bootCluster(): Promise<VmCluster> {
  const topology = { source: "vm_agent test", node_names: ["n0"], latency_ns: [[0]], link_defaults: LINK_DEFAULTS, link_overrides: [] };
  const config = makeRunConfig({ topology, workload: null, seed: 7, until_ns: null, backend: "vm" });
  const image = await ensureDefaultImage({ log: () => {} });
  return await VmCluster.start({
    config, image, ssh_port_base: 25210, memory_mib: 256, rtc_base: RTC_BASE, boot_commands: [null],
    onCrash: (b) => { throw new Error(b.crash ?? "crash"); }, mgmt_net: "10.251", mgmt_live: false,
  });
}

async function slice(d: Drive): Promise<void> {
  const start_ns = d.backend.next_slice_ns;
  const result = await d.backend.runSlice({ node: 0 as never, start_ns, end_ns: start_ns + SLICE_NS, deliveries: [] });
  let last_ns = start_ns;
  for (const o of result.outputs) {
    assert.ok(o.t_ns >= last_ns && o.t_ns <= result.end_ns, `output ${o.kind} at ${o.t_ns} out of order in [${start_ns}, ${result.end_ns}]`);
    last_ns = o.t_ns;
    d.outputs.push(o);
    if (o.kind === "guest_output") d.console += o.text;
  }
}

async function runTo(d: Drive, t_ns: number): Promise<void> {
  while (d.backend.next_slice_ns < t_ns) await slice(d);
}

async function runUntil(d: Drive, re: RegExp, from: number, limit_ns: number): Promise<void> {
  const deadline = d.backend.next_slice_ns + limit_ns;
  while (!re.test(d.console.slice(from))) {
    assert.ok(d.backend.next_slice_ns < deadline, `no ${re} within ${limit_ns / 1e9} s of virtual time:\n${d.console.slice(-2000)}`);
    await slice(d);
  }
}

const commands = (d: Drive) => d.outputs.filter((o): o is CommandOut => o.kind === "command");
const commandOut = (d: Drive, id: string, event: "start" | "exit") => {
  const found = commands(d).find((o) => o.id === id && o.event === event);
  assert.ok(found, `no ${event} of ${id}:\n${d.console.slice(-3000)}`);
  return found!;
};
/** The output lines of command `id`, from the console. */
const linesOf = (d: Drive, id: string) => [...d.console.matchAll(new RegExp(`^\\[${id.replace(/\./g, "\\.")}\\] (.*?)\\r?$`, "gm"))].map((m) => m[1]!);

/** The part both boots run: commands, exit codes, a kill, a collect, the clock. Returns T (ready). */
async function commonScenario(d: Drive): Promise<number> {
  await runUntil(d, /tapsim-guest: ready/, 0, 60e9);
  const T = d.backend.next_slice_ns;
  const b = d.backend;
  b.runCommand(T + 12_345_678, "ok", "echo hello; echo err >&2; exit 0");
  b.runCommand(T + 12_345_678, "three", "printf 'a\\nb\\n'; exit 3");
  b.runCommand(T + 200_000_007, "sleeper", "sleep 100");
  b.runCommand(T + 300_000_000, "mk", "seq 1 3000 > /tmp/f.txt; echo made");
  b.killCommand(T + 700_000_000, "sleeper");
  b.collectFile(T + 900_000_000, "/tmp/f.txt");
  b.collectFile(T + 1_000_000_000, "/nonexistent");
  b.runCommand(T + 1_500_000_000, "clock", "vclock -r; vclock -c");
  assert.throws(() => b.runCommand(T - 1, "late", "true"), /before the node's next slice/);
  await runTo(d, T + 2_500_000_000);
  return T;
}

/** How far the guest's CLOCK_REALTIME (first output line: vclock -r) is from RTC base + engine time at the command's start. */
function clockVsEngine(d: Drive, id: string): { lead_ns: number; vclock_c: string } {
  const [real, vclock_c] = linesOf(d, id);
  const [s, ns] = real!.split(".");
  const real_ns = Number(s) * 1e9 + Number(ns);
  return { lead_ns: real_ns - (RTC_BASE_NS + commandOut(d, id, "start").t_ns), vclock_c: vclock_c! };
}

function checkVclockC(line: string): void {
  const m = /offset_ns=(-?\d+) window_ns=(\d+)/.exec(line);
  assert.ok(m, line);
  assert.ok(Math.abs(Number(m![1])) <= Number(m![2]), `vclock -c disagrees: ${line}`);
}

let first: { T: number; commands: CommandOut[]; lines: string[] } | null = null;

test("commands at exact times, exit codes 0/3, a kill (signal 9), output lines, a collected file; pause lags the clock by 2 s; poweroff + restart boots again at RTC base + engine time", async () => {
  const wall0 = Date.now();
  const cluster = await bootCluster();
  try {
    const d: Drive = { backend: cluster.backends[0]!, outputs: [], console: "" };
    const T = await commonScenario(d);
    // engine = QEMU clock - hello (+ t0 after a restart); the guest's TSC is QEMU's clock.
    assert.is(d.backend.vm.gate.hello_clock_ns, 0);
    const start_ok = commandOut(d, "ok", "start");
    const latency_ns = start_ok.t_ns - (T + 12_345_678);
    assert.ok(latency_ns > 0 && latency_ns < START_LATENCY_NS_MAX, `start latency ${latency_ns} ns`);
    assert.is(start_ok.detail, "echo hello; echo err >&2; exit 0");
    assert.is(commandOut(d, "ok", "exit").detail, "0");
    assert.is(commandOut(d, "three", "exit").detail, "3");
    assert.equal(linesOf(d, "ok"), ["hello", "err"]);
    assert.equal(linesOf(d, "three"), ["a", "b"]);
    const killed = commandOut(d, "sleeper", "exit");
    assert.is(killed.detail, "signal 9");
    assert.ok(killed.t_ns > T + 700_000_000 && killed.t_ns < T + 700_000_000 + START_LATENCY_NS_MAX, `kill took ${killed.t_ns - T - 700_000_000} ns`);
    const files = d.backend.takeCollected();
    const expected = Array.from({ length: 3000 }, (_, i) => `${i + 1}\n`).join("");
    assert.equal(files.map((f) => [f.guest_path, f.bytes?.toString() === expected, f.error]), [["/tmp/f.txt", true, null], ["/nonexistent", false, "No such file or directory"]]);
    const before = clockVsEngine(d, "clock");
    checkVclockC(before.vclock_c);
    assert.ok(before.lead_ns > 0 && before.lead_ns < START_LATENCY_NS_MAX, `guest clock - (RTC base + engine) = ${before.lead_ns} ns`);
    first = { T, commands: commands(d), lines: d.console.split("\n").filter((l) => /^\[|^tapsim-agent: (start|exit|file|end|nofile)/.test(l)) };
    const file_done = d.outputs.find((o) => o.kind === "guest_output" && o.text.includes("tapsim-agent: end /tmp/f.txt"))!;
    console.log(`  measured: boot to ready ${(T / 1e9).toFixed(3)} s virtual; injection -> start marker ${latency_ns} ns; guest clock read ${before.lead_ns} ns after start; ` +
      `13,893-byte file back within ${(file_done.t_ns - T - 900_000_000) / 1e6} ms virtual (slice resolution); wall so far ${((Date.now() - wall0) / 1000).toFixed(1)} s`);

    // Pause 2 s: QEMU's clock stands still, so the guest's clock falls 2 s behind engine time.
    const P = d.backend.next_slice_ns;
    await d.backend.control({ t_ns: P, action: "pause" });
    await runTo(d, P + 2e9); // paused slices: nothing runs
    await d.backend.control({ t_ns: P + 2e9, action: "resume" });
    d.backend.runCommand(P + 2e9 + 100 * MS, "lag", "vclock -r; vclock -c");
    await runTo(d, P + 2.5e9);
    const lag = clockVsEngine(d, "lag");
    assert.ok(lag.lead_ns + 2e9 > 0 && lag.lead_ns + 2e9 < START_LATENCY_NS_MAX, `after a 2 s pause the guest clock leads engine time by ${lag.lead_ns} ns (expected -2 s + latency)`);

    // Poweroff: QEMU gone quietly, its files too; no slices until restart.
    const Q = d.backend.next_slice_ns;
    const old = d.backend.vm;
    await d.backend.control({ t_ns: Q, action: "poweroff" });
    assert.not.ok(isAlive(old.pid), "QEMU stopped");
    assert.not.ok(existsSync(path.join(cluster.run_dir, "node0.gate")) || existsSync(path.join(cluster.run_dir, "node0.console.log")), "run-dir files removed");
    assert.throws(() => d.backend.runSlice({ node: 0 as never, start_ns: Q, end_ns: Q + SLICE_NS, deliveries: [] }), /powered-off/);
    d.backend.runCommand(Q + 500 * MS, "lost", "true"); // due while off: dropped at the restart

    // Restart at a time that is not a whole second: the clock must still be exact.
    const R = Q + 1_234_567_891;
    const wall_restart = Date.now();
    await d.backend.control({ t_ns: R, action: "restart" });
    assert.is.not(d.backend.vm.pid, old.pid);
    const from = d.console.length;
    await slice(d);
    const boot = d.outputs.find((o) => o.kind === "lifecycle" && o.t_ns === R);
    assert.ok(boot && boot.kind === "lifecycle" && boot.event === "boot" && boot.detail === `qemu pid ${d.backend.vm.pid}`, "boot lifecycle with the new pid");
    await runUntil(d, /tapsim-guest: ready/, from, 60e9);
    const restart_wall_s = (Date.now() - wall_restart) / 1000;
    const ready_ns = d.backend.next_slice_ns - R;
    d.backend.runCommand(d.backend.next_slice_ns + 10 * MS, "after", "vclock -r; vclock -c");
    await runTo(d, d.backend.next_slice_ns + 500 * MS);
    const after = clockVsEngine(d, "after");
    checkVclockC(after.vclock_c);
    assert.ok(after.lead_ns > 0 && after.lead_ns < START_LATENCY_NS_MAX, `after restart: guest clock - (RTC base + engine) = ${after.lead_ns} ns`);
    assert.not.ok(commands(d).some((o) => o.id === "lost"), "a command due while powered off never ran");
    console.log(`  measured: restart to ready ${restart_wall_s.toFixed(1)} s wall (${(ready_ns / 1e9).toFixed(3)} s virtual); after restart the guest clock read ${after.lead_ns} ns after the start marker (${after.vclock_c}); after the pause ${lag.lead_ns} ns`);
  } finally {
    await cluster.stop();
  }
});

test("the same scenario on a second boot: the same command outputs at the same virtual times", async () => {
  assert.ok(first, "the first test ran");
  const cluster = await bootCluster();
  try {
    const d: Drive = { backend: cluster.backends[0]!, outputs: [], console: "" };
    const T = await commonScenario(d);
    assert.is(T, first!.T);
    assert.equal(commands(d), first!.commands);
    assert.equal(d.console.split("\n").filter((l) => /^\[|^tapsim-agent: (start|exit|file|end|nofile)/.test(l)), first!.lines);
    d.backend.takeCollected();
  } finally {
    await cluster.stop();
  }
});

test.run();
