// Inputs tapsim must refuse (or survive) with one line and the documented exit code, leaving
// no output file, process or hang behind: flags of another run kind, bad values, FIFOs and
// devices named as input files, crafted traces, a full disk, truncated traces, SSH with no
// guest, a QEMU that dies at start-up. Exit codes: 2 bad input, 1 a failure of the host.

import { execFileSync, spawn, spawnSync } from "node:child_process";
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import ssh2 from "ssh2";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { InputError } from "../engine/errors.js";
import { writeRunState } from "../cli/run_state.js";
import { qemuArgs, QemuVm, type VmSpec } from "../qmp/launcher.js";
import { REPO_ROOT, tapsim, tapsimWith, type CliResult } from "./helpers/cli.js";
import { rewriteTrace } from "./helpers/recorder_fixtures.js";

const tmp = mkdtempSync(path.join(tmpdir(), "tapsim-bad-"));
const TRACE_3 = "traces/bracha_3x3.trace";
const TRACE_9 = "traces/bracha_aws9.trace";

test.after(() => rmSync(tmp, { recursive: true, force: true }));

/** `code`, and stderr exactly one "tapsim: ..." line matching `pattern`, no stack. */
function oneLine(r: CliResult, code: number, pattern: RegExp): void {
  assert.is(r.code, code, `exit ${code} expected; stdout: ${r.stdout}; stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split("\n");
  assert.is(lines.length, 1, `one line on stderr: ${r.stderr}`);
  assert.match(lines[0]!, /^tapsim: /);
  assert.match(lines[0]!, pattern);
  assert.not.match(r.stderr, /\bat .*\.js:\d+/, "no stack trace");
}

/** Files in `dir` (temporary files of an aborted write included). */
function entries(dir: string): string[] {
  return readdirSync(dir).sort();
}

// ---- flags -----------------------------------------------------------------------------

test("flags of VM runs without --vms (and of other run kinds) are refused, naming the flag, and create no trace", () => {
  const trace = path.join(tmp, "flags.trace");
  const vm_flags = [["--memory", "128"], ["--rtc-base", "2025-01-01"], ["--no-ssh"], ["--image", "x.qcow2"], ["--boot-cmd", "true"], ["--ssh-port-base", "2400"], ["--password", "pw"], ["--ssh-timeout", "5000"]];
  for (const flag of vm_flags) {
    oneLine(tapsim("run", ...flag, "--trace", trace, "--no-progress"), 2, new RegExp(`${flag[0]} applies only to VM runs`));
  }
  oneLine(tapsim("run", "--netns-cmd", "true", "--trace", trace), 2, /--netns-cmd applies only to namespace runs/);
  oneLine(tapsim("run", "--vms", "2", "--messages", "3", "--trace", trace), 2, /--messages applies only to in-process runs/);
  oneLine(tapsim("run", "--netns", "2", "--nodes", "2", "--duration", "1s", "--trace", trace), 2, /--nodes applies only to in-process runs/);
  assert.not.ok(existsSync(trace));
});

test("a node listed twice in --silent is refused (it would count as two silent nodes)", () => {
  const trace = path.join(tmp, "silent.trace");
  oneLine(tapsim("run", "--latency", "latency_configs/wan_aws_9.yaml", "--silent", "1,1,1", "--trace", trace), 2, /--silent "1,1,1": 1 is listed twice/);
  assert.not.ok(existsSync(trace));
});

test("dump --node beyond the trace's nodes is an error, not an empty dump", () => {
  oneLine(tapsim("dump", TRACE_9, "--node", "99"), 2, /--node 99: node 99 does not exist \(.*bracha_aws9\.trace has 9 nodes/);
});

test("--slice-max 0 is refused before any file is created", () => {
  const trace = path.join(tmp, "slice0.trace");
  oneLine(tapsim("run", "--slice-max", "0", "--trace", trace), 2, /--slice-max "0": must be at least 1 ns/);
  assert.not.ok(existsSync(trace), "no header-only trace left behind");
});

test("a trace path that cannot be created gives the real reason", () => {
  oneLine(tapsim("run", "--trace", "/proc/t.trace"), 2, /\/proc\/t\.trace: cannot create trace: ENOENT \(no such file or directory: \/proc exists but does not let files be created in it\)/);
  oneLine(tapsim("run", "--trace", path.join(tmp, "gone", "t.trace")), 2, /cannot create trace: ENOENT \(its directory .*gone does not exist\)/);
  oneLine(tapsim("run", "--trace", tmp), 2, /cannot create trace: EISDIR/);
});

// ---- input files -----------------------------------------------------------------------

test("--latency and debug --commands refuse a FIFO, a device and an oversized file instead of blocking or filling memory", () => {
  const fifo = path.join(tmp, "topology.fifo");
  execFileSync("mkfifo", [fifo]);
  const big = path.join(tmp, "big.txt");
  closeSync(openSync(big, "w"));
  truncateSync(big, 17 * 1024 * 1024); // sparse: costs no disk
  const trace = path.join(tmp, "input.trace");
  const within = { timeout_ms: 20_000 };
  oneLine(tapsimWith(within, "run", "--latency", fifo, "--trace", trace), 2, /topology\.fifo: cannot read: not a regular file \(a FIFO\)/);
  oneLine(tapsimWith(within, "run", "--latency", "/dev/zero", "--trace", trace), 2, /\/dev\/zero: cannot read: not a regular file \(a character device\)/);
  oneLine(tapsimWith(within, "run", "--latency", big, "--trace", trace), 2, /big\.txt: cannot read: 17825792 bytes, more than the 16777216/);
  oneLine(tapsimWith(within, "debug", TRACE_3, "--commands", fifo), 2, /--commands .*topology\.fifo: cannot read: not a regular file \(a FIFO\)/);
  oneLine(tapsimWith(within, "debug", TRACE_3, "--commands", "/dev/zero"), 2, /--commands \/dev\/zero: cannot read: not a regular file/);
  assert.not.ok(existsSync(trace));
});

test("debug with /dev/zero on stdin stops at an over-long line instead of reading forever", () => {
  const zero = openSync("/dev/zero", "r");
  try {
    const r = spawnSync(process.execPath, [path.join(REPO_ROOT, "bin/tapsim.js"), "debug", TRACE_3], { cwd: REPO_ROOT, encoding: "utf8", stdio: [zero, "pipe", "pipe"], timeout: 20_000, killSignal: "SIGKILL" });
    oneLine({ code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr }, 2, /debug: stdin:1: line longer than 65536 bytes/);
  } finally {
    closeSync(zero);
  }
});

test("debug on a pipe that stays open runs each command as it arrives, and quits on quit", async () => {
  const child = spawn(process.execPath, [path.join(REPO_ROOT, "bin/tapsim.js"), "debug", TRACE_3], { cwd: REPO_ROOT, stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  try {
    child.stdin.write("step\n");
    const deadline = Date.now() + 15_000;
    while (!/^#0 0\.000000000s slice_grant node=0/m.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.match(out, /^#0 0\.000000000s slice_grant node=0/m, `step answered while stdin is still open: ${out}`);
    assert.is(child.exitCode, null, "still running, waiting for the next command");
    child.stdin.write("quit\n");
    assert.is(await exited, 0);
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
  }
});

// ---- VM inputs (refused before QEMU starts) ----------------------------------------------

test("--rtc-base tomorrow and a node name with a comma are refused before any VM starts", () => {
  const trace = path.join(tmp, "vm.trace");
  const started = Date.now();
  oneLine(tapsim("run", "--vms", "2", "--rtc-base", "tomorrow", "--ssh-port-base", "2400", "--trace", trace), 2, /--rtc-base "tomorrow": expected utc, localtime, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS/);
  oneLine(tapsim("run", "--vms", "2", "--rtc-base", "2025-01-01,clock=host", "--ssh-port-base", "2400", "--trace", trace), 2, /--rtc-base "2025-01-01,clock=host"/);
  const topo = path.join(tmp, "comma.yaml");
  writeFileSync(topo, 'nodes: ["a,script=/tmp/x", "b"]\ndefaults:\n  latency: 5ms\n');
  oneLine(tapsim("run", "--vms", "2", "--latency", topo, "--ssh-port-base", "2400", "--trace", trace), 2, /comma\.yaml: node 0 name "a,script=\/tmp\/x": a VM's name may hold only/);
  assert.not.ok(existsSync(trace));
  assert.ok(Date.now() - started < 30_000, "refused without booting anything");
});

/** A VM spec that never boots (the tests stop at argument checks or a fake QEMU). */
function vmSpec(run_dir: string): VmSpec {
  return {
    node: 0,
    name: "node0",
    mac: "02:00:00:00:00:01",
    boot: { kind: "initramfs", kernel_path: "/k", initrd_path: "/i", append: "" },
    ssh_port: 2400,
    memory_mib: 64,
    rtc_base: "2025-01-01",
    rng_seed: 1,
    run_dir,
  };
}

test("qemuArgs refuses values that would inject QEMU options", () => {
  const spec = vmSpec(tmp);
  assert.ok(qemuArgs(spec, "/r/g", "/r/q", "/r/c", null).includes("base=2025-01-01,clock=vm"));
  const bad: Partial<VmSpec>[] = [{ rtc_base: "2025-01-01,clock=host" }, { rtc_base: "tomorrow" }, { name: "n,debug-threads=on" }, { name: "a b" }, { mac: "02:00:00:00:00:01,romfile=/x" }];
  for (const change of bad) {
    assert.throws(() => qemuArgs({ ...spec, ...change }, "/r/g", "/r/q", "/r/c", null), (err: unknown) => err instanceof InputError, JSON.stringify(change));
  }
  assert.throws(() => qemuArgs(spec, "/r/g", "/r/q,x=y", "/r/c", null), (err: unknown) => err instanceof InputError);
});

test("a QEMU that dies at start-up is reported by what it said, without its hub warning", async () => {
  const fake = path.join(tmp, "fake-qemu.sh");
  writeFileSync(fake, '#!/bin/sh\necho "qemu-system-x86_64: warning: hub 0 is not connected to host network" >&2\necho "qemu-system-x86_64: something real broke" >&2\nexit 1\n');
  chmodSync(fake, 0o755);
  const run_dir = mkdtempSync(path.join(tmp, "run-"));
  const spec: VmSpec = { ...vmSpec(run_dir), qemu_binary: fake };
  let message = "";
  try {
    (await QemuVm.start(spec)).killNow();
  } catch (err) {
    message = (err as Error).message;
  }
  assert.match(message, /node0: QEMU exited during start-up \(exit code 1\): qemu-system-x86_64: something real broke$/);
  assert.not.match(message, /hub 0/);
});

// ---- SSH -------------------------------------------------------------------------------

/** A port on 127.0.0.1 that nothing listens on (just now). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The CLI as a child process without blocking this one (an SSH server runs here). */
function tapsimAsync(env: Record<string, string>, ...args: string[]): Promise<CliResult> {
  const child = spawn(process.execPath, [path.join(REPO_ROOT, "bin/tapsim.js"), ...args], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  return new Promise((resolve) =>
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    }),
  );
}

test("ssh and exec with no run on that --ssh-port-base: one line, exit 2; a run whose VM refuses: one line, exit 1", async () => {
  const home = mkdtempSync(path.join(tmpdir(), "tsA-home-"));
  try {
    const port = await freePort();
    const none = await tapsimAsync({ TAPSIM_HOME: home }, "exec", "--node", "0", "--ssh-port-base", String(port), "--", "true");
    oneLine(none, 2, new RegExp(`no running \`tapsim run --vms\` with --ssh-port-base ${port}`));
    oneLine(await tapsimAsync({ TAPSIM_HOME: home }, "ssh", "0", "--ssh-port-base", String(port), "true"), 2, /no running `tapsim run --vms`/);
    // A run-state file of a live process (this one) whose VM does not listen.
    writeRunState({ pid: process.pid, run_dir: home, port_base: port, ports: [port], image_kind: "initramfs", password_login: false, user: "root" }, [null], home);
    oneLine(await tapsimAsync({ TAPSIM_HOME: home }, "exec", "--node", "0", "--ssh-port-base", String(port), "--", "true"), 1, new RegExp(`ssh root@127\\.0\\.0\\.1:${port}: connection refused`));
    oneLine(await tapsimAsync({ TAPSIM_HOME: home }, "ssh", "0", "--ssh-port-base", String(port), "true"), 1, /connection refused/);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test("exec with a wrong password (key refused too): one line, exit 1", async () => {
  const home = mkdtempSync(path.join(tmpdir(), "tsA-home-"));
  const host_key = ssh2.utils.generateKeyPairSync("ed25519");
  const server = new ssh2.Server({ hostKeys: [host_key.private] }, (client) => {
    client.on("authentication", (ctx) => ctx.reject(["publickey", "password"]));
    client.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  try {
    writeRunState({ pid: process.pid, run_dir: home, port_base: port, ports: [port], image_kind: "initramfs", password_login: true, user: "root" }, [host_key.public], home);
    oneLine(await tapsimAsync({ TAPSIM_HOME: home }, "exec", "--node", "0", "--ssh-port-base", String(port), "--password", "wrong", "--", "true"), 1, /authentication failed \(.*password.* rejected for root\)/);
  } finally {
    server.close();
    rmSync(home, { recursive: true, force: true });
  }
});

// ---- traces that are wrong inside, with correct checksums ---------------------------------

test("a header with a bad or duplicate MAC or a null link override: one-line TraceError from every command", () => {
  const cases: [string, (h: Parameters<NonNullable<Parameters<typeof rewriteTrace>[2]>>[0]) => void, RegExp][] = [
    ["badmac", (h) => (h.config.nodes[1]!.mac = "zz:00"), /config\.nodes\[1\]\.mac "zz:00" is not a MAC address/],
    ["dupmac", (h) => (h.config.nodes[1]!.mac = h.config.nodes[0]!.mac), /config\.nodes\[1\]\.mac 02:00:00:00:00:00 is also node 0's/],
    ["nulloverride", (h) => ((h.config.topology.link_overrides as unknown[]) = [null]), /config\.topology\.link_overrides\[0\] is not an object/],
  ];
  const empty_script = path.join(tmp, "empty.txt");
  writeFileSync(empty_script, "");
  for (const [name, edit, why] of cases) {
    const file = rewriteTrace(TRACE_3, path.join(tmp, `${name}.trace`), edit);
    for (const cmd of [["replay", file], ["info", file], ["dump", file], ["debug", file, "--commands", empty_script], ["diff", file, TRACE_3]]) {
      oneLine(tapsim(...cmd), 2, new RegExp(`${name}\\.trace: header is malformed: ${why.source}`));
    }
  }
});

test("a frame_emit outside its slice, or a wake before the slice end: replay reports a divergence, debug one line", () => {
  const emit_outside = rewriteTrace(TRACE_3, path.join(tmp, "emit.trace"), null, (records) => {
    const i = records.findIndex((r) => r[0] === 3);
    const r = records[i] as number[];
    r[2] = r[2]! + 10e9;
  });
  const wake_early = rewriteTrace(TRACE_3, path.join(tmp, "wake.trace"), null, (records) => {
    const i = records.findIndex((r) => r[0] === 2 && r[2] > 0);
    (records[i] as number[])[3] = (records[i] as number[])[2]! - 1;
  });
  for (const [file, why] of [[emit_outside, /output at 10000693853 out of order or outside the slice/], [wake_early, /wake 49999999 before its slice end 50000000/]] as const) {
    const r = tapsim("replay", file);
    assert.is(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /^replay: DIVERGED at record #\d+ .*the trace's inputs for this slice are inconsistent: /);
    assert.match(r.stdout, why);
    assert.is(r.stderr, "");
    const script = path.join(tmp, "continue.txt");
    writeFileSync(script, "continue\n");
    oneLine(tapsim("debug", file, "--commands", script), 2, /replay diverged at record #\d+/);
  }
});

// ---- truncated traces ------------------------------------------------------------------

test("dump, export, view and debug on a truncated trace work on what is readable and warn on stderr (exit 0)", () => {
  const cut = path.join(tmp, "cut.trace");
  writeFileSync(cut, readFileSync(TRACE_9).subarray(0, 300_000));
  const warning = `tapsim: warning: ${cut}: incomplete: ends after chunk 1 / record 4096, no index — the run was killed or is still running`;
  const runs = [
    tapsim("dump", cut, "--limit", "1"),
    tapsim("export", cut, "--pcap", path.join(tmp, "cut.pcapng")),
    tapsim("view", cut, "-o", path.join(tmp, "cut.html")),
    tapsimWith({ input: "quit\n" }, "debug", cut),
  ];
  for (const r of runs) {
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stderr.trimEnd(), warning);
  }
  assert.ok(existsSync(path.join(tmp, "cut.pcapng")) && existsSync(path.join(tmp, "cut.html")));
});

test("export on a corrupt trace leaves no output file", () => {
  const dir = mkdtempSync(path.join(tmp, "corrupt-"));
  const bad = path.join(dir, "bad.trace");
  const bytes = readFileSync(TRACE_9);
  bytes[Math.floor(bytes.length * 0.6)]! ^= 0xff;
  writeFileSync(bad, bytes);
  oneLine(tapsim("export", bad, "--pcap", path.join(dir, "out.pcapng")), 2, /bad\.trace: chunk \d+ at byte \d+ is corrupt \(checksum mismatch\)/);
  oneLine(tapsim("export", bad, "--perfetto", path.join(dir, "out.json")), 2, /bad\.trace: chunk \d+ at byte \d+ is corrupt/);
  oneLine(tapsim("view", bad, "-o", path.join(dir, "out.html")), 2, /is corrupt/);
  oneLine(tapsim("diff", bad, TRACE_9, "--html", path.join(dir, "diff.html")), 2, /is corrupt/);
  assert.equal(entries(dir), ["bad.trace"]);
});

// ---- a full disk -----------------------------------------------------------------------

test("a full disk: run, export, view -o and diff --html fail with one line naming the file and ENOSPC, exit 1, and leave no partial file", () => {
  const full = path.join(tmp, "full");
  mkdirSync(full);
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=200k", "tapsim-test-full", full]);
  try {
    const trace = path.join(full, "t.trace");
    const run = tapsim("run", "--latency", "latency_configs/wan_aws_9.yaml", "--messages", "50", "--trace", trace, "--no-progress");
    oneLine(run, 1, new RegExp(`${trace}: cannot write trace: ENOSPC \\(no space left on the device\\)`));
    assert.not.match(run.stderr, /already closed/);
    // What the run could write is kept, cut back to whole chunks: a readable, incomplete trace.
    const info = tapsim("info", trace);
    assert.is(info.code, 0, info.stderr);
    assert.match(info.stdout, /status: INCOMPLETE/);
    rmSync(trace);
    const outputs: [string, string[]][] = [
      ["x.pcapng", ["export", TRACE_9, "--pcap"]],
      ["x.json", ["export", TRACE_9, "--perfetto"]],
      ["x.html", ["view", TRACE_9, "-o"]],
      ["d.html", ["diff", TRACE_9, "traces/bracha_aws9_2silent.trace", "--html"]],
    ];
    for (const [name, args] of outputs) {
      const out = path.join(full, name);
      const r = tapsim(...args, out);
      oneLine(r, 1, new RegExp(`${out}: cannot write: ENOSPC \\(no space left on the device\\)`));
      assert.equal(entries(full), [], `nothing left after ${args.join(" ")}`);
    }
  } finally {
    execFileSync("umount", [full]);
  }
});

test.run();
