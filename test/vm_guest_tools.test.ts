// What a user running a cluster of default guests meets, on one real 3-VM run (delays_3x3):
// boot stage lines on stderr; stdin through `tapsim ssh` and `tapsim exec --all`; `tapsim
// cp` both ways and to every VM; busybox's applets and nohup in the guest; `vclock`
// against the trace's own times; the guest's clock against RTC base + virtual time; and
// the pcapng of a TCP transfer between VMs as Wireshark's TCP analysis sees it.

import { execFileSync, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { RecordKind } from "../engine/trace_records.js";
import { defaultCacheRoot } from "../guest/image.js";
import { TraceReader } from "../recorder/reader.js";
import { REPO_ROOT, tapsim } from "./helpers/cli.js";
import { startRun, type BackgroundRun } from "./helpers/vm.js";

const dir = mkdtempSync(path.join(tmpdir(), "tapsim-vmtools-"));
const PORT_BASE = 2560;
const BOOT_TIMEOUT_MS = 600_000;
/** --rtc-base default, 2025-01-01T00:00:00Z. */
const RTC_BASE_S = 1735689600;
const trace = path.join(dir, "tools.trace");
let run: BackgroundRun;

test.before(async () => {
  run = startRun(["run", "--vms", "3", "--latency", "latency_configs/delays_3x3.txt", "--trace", trace, "--ssh-port-base", String(PORT_BASE), "--no-progress"]);
  await run.waitFor(/^READY /m, BOOT_TIMEOUT_MS);
});

test.after(async () => {
  await stopRun();
  rmSync(dir, { recursive: true, force: true });
});

/** The CLI with bytes on its stdin (a pipe, so not a terminal). */
function tapsimIn(input: Buffer | string, ...args: string[]) {
  const r = spawnSync(process.execPath, [path.join(REPO_ROOT, "bin/tapsim.js"), ...args], { cwd: REPO_ROOT, input, encoding: "utf8", timeout: 120_000, maxBuffer: 64 << 20 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function sh(node: number, command: string): string {
  const r = tapsim("exec", "--ssh-port-base", String(PORT_BASE), "--node", String(node), "--", command);
  assert.is(r.code, 0, `${command}: ${r.stderr}\n${runState()}`);
  return r.stdout;
}

/** For failure messages: whether the run is still going, and its last words. */
function runState(): string {
  const c = run.child;
  return `the run (exit ${c.exitCode ?? "-"}, signal ${c.signalCode ?? "-"}) said:\n${run.stdout().slice(-1000)}\n${run.stderr().slice(-2000)}`;
}

const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");
const port = ["--ssh-port-base", String(PORT_BASE)];

test("boot: a line per stage per VM on stderr (kernel, init, sshd, in that order, before SSH), with the guest's virtual time", () => {
  const err = run.stderr();
  for (let node = 0; node < 3; node++) {
    const at = (re: RegExp) => {
      const m = re.exec(err);
      assert.ok(m, `node ${node}: ${re} in:\n${err}`);
      return { index: m!.index, t: m![1] };
    };
    const kernel = at(new RegExp(`^boot: node ${node} kernel \\([1-3]/3\\), [\\d.]+ s wall$`, "m"));
    const init = at(new RegExp(`^boot: node ${node} init \\([1-3]/3\\) at t=(\\d+\\.\\d{9})s virtual, [\\d.]+ s wall$`, "m"));
    const sshd = at(new RegExp(`^boot: node ${node} sshd \\([1-3]/3\\) at t=(\\d+\\.\\d{9})s virtual, [\\d.]+ s wall$`, "m"));
    const ssh = at(new RegExp(`^ssh: node ${node} ready`, "m"));
    assert.ok(kernel.index < init.index && init.index < sshd.index && sshd.index < ssh.index, `stage order for node ${node}:\n${err}`);
    assert.ok(Number(init.t) > 0 && Number(init.t) < Number(sshd.t), `init at ${init.t}s before sshd at ${sshd.t}s (virtual)`);
  }
});

test("stdin: `ssh N 'cat > f' < file` copies 1 MB byte-exact (EOF reaches cat); `exec --all` gives every node all of stdin; -n sends none", () => {
  const data = randomBytes(1 << 20);
  const r = tapsimIn(data, "ssh", ...port, "0", "cat > /tmp/in.bin && sha256sum /tmp/in.bin && wc -c < /tmp/in.bin");
  assert.is(r.code, 0, `${r.stderr}\n${runState()}`);
  assert.is(r.stdout, `${sha256(data)}  /tmp/in.bin\n${data.length}\n`);
  const all = tapsimIn(data, "exec", ...port, "--all", "--", "sha256sum");
  assert.is(all.code, 0, all.stderr);
  assert.equal(all.stdout.trim().split("\n").sort(), [0, 1, 2].map((n) => `[node${n}] ${sha256(data)}  -`));
  const none = tapsimIn("ignored", "exec", ...port, "--node", "1", "-n", "--", "wc -c");
  assert.is(none.stdout.trim(), "0");
  // A command that does not read stdin ends the session; the rest of the input is not waited for.
  const early = tapsimIn(data, "ssh", ...port, "2", "exit 4");
  assert.is(early.code, 4, early.stderr);
});

test("cp: host -> node (a folder keeps the name, mode kept), node -> host, --all to every node: sha256 equal; errors are one line", () => {
  const data = randomBytes(1 << 20);
  const local = path.join(dir, "up.bin");
  writeFileSync(local, data);
  chmodSync(local, 0o750);
  const put = tapsim("cp", ...port, local, "1:/tmp/");
  assert.is(put.code, 0, put.stderr);
  assert.is(put.stdout + put.stderr, "", "cp is silent when not on a terminal");
  assert.is(sh(1, "sha256sum /tmp/up.bin; stat -c %a /tmp/up.bin"), `${sha256(data)}  /tmp/up.bin\n750\n`);
  const back = path.join(dir, "down.bin");
  const get = tapsim("cp", ...port, "1:/tmp/up.bin", back);
  assert.is(get.code, 0, get.stderr);
  assert.is(sha256(readFileSync(back)), sha256(data));
  const all = tapsim("cp", ...port, "--all", local, "/tmp/all.bin");
  assert.is(all.code, 0, all.stderr);
  const sums = tapsim("exec", ...port, "--all", "--", "sha256sum < /tmp/all.bin");
  assert.equal(sums.stdout.trim().split("\n").sort(), [0, 1, 2].map((n) => `[node${n}] ${sha256(data)}  -`));
  const missing = tapsim("cp", ...port, "0:/tmp/nothing-here", back);
  assert.is(missing.code, 1);
  assert.is(missing.stderr, `tapsim: ssh root@127.0.0.1:${PORT_BASE}: /tmp/nothing-here: no such file in the guest\n`);
  const two_remotes = tapsim("cp", ...port, "0:/a", "1:/b");
  assert.is(two_remotes.code, 2);
  assert.match(two_remotes.stderr, /^tapsim: tapsim cp: exactly one of SRC and DST must be N:PATH/);
  const no_local = tapsim("cp", ...port, path.join(dir, "absent"), "0:/tmp/");
  assert.is(no_local.code, 2);
  assert.match(no_local.stderr, /^tapsim: .*absent: no such file\n$/);
});

test("guest: every applet of the packaged busybox is there, and nohup (which that busybox lacks) keeps a command alive through SIGHUP", () => {
  const unpacked = path.join(defaultCacheRoot(), "unpacked");
  const pkg = readdirSync(unpacked).find((d) => d.startsWith("busybox-static_"));
  assert.ok(pkg, "the image's busybox-static package is unpacked in the cache");
  const applets = execFileSync(path.join(unpacked, pkg!, "bin/busybox"), ["--list"], { encoding: "utf8" }).trim().split("\n");
  assert.ok(applets.length > 200 && applets.includes("wget") && applets.includes("tc"), `${applets.length} applets`);
  assert.is(sh(0, `for a in ${applets.join(" ")}; do command -v "$a" >/dev/null || echo "missing $a"; done; echo checked`), "checked\n");
  assert.is(sh(0, "command -v nohup"), "/usr/bin/nohup\n");
  // A shell that starts with SIGHUP ignored cannot be hung up, even by itself.
  assert.is(sh(0, `nohup sh -c 'kill -HUP $$; echo survived'`), "survived\n");
  assert.is(sh(0, `sh -c 'kill -HUP $$; echo survived'; echo "status $?"`), "status 129\n", "without nohup the same command dies of SIGHUP");
});

test("guest clock: CLOCK_REALTIME = RTC base + virtual time (vclock) to within 1 µs, tens of virtual seconds after init set it", () => {
  assert.match(sh(0, "cat /proc/cmdline"), new RegExp(` sim\\.rtc_base=${RTC_BASE_S}( |$)`, "m"));
  for (let node = 0; node < 3; node++) {
    const out = sh(node, "cat /proc/uptime; vclock -c");
    const uptime_s = Number(out.split(" ")[0]);
    const m = /^virtual_ns=(\d+) realtime_ns=(\d+) offset_ns=(-?\d+) window_ns=(\d+)$/m.exec(out);
    assert.ok(m, out);
    const [virtual_ns, realtime_ns, offset_ns, window_ns] = m!.slice(1).map(BigInt) as [bigint, bigint, bigint, bigint];
    assert.is(realtime_ns - (BigInt(RTC_BASE_S) * 1_000_000_000n + virtual_ns), offset_ns);
    // The clock was set at init (~2 s of virtual time) and read here after SSH came up, tens
    // of seconds later: the kernel's own calibration (999.999 MHz) would be 1 µs off per
    // virtual second by now. vclock reads CLOCK_REALTIME between two rdtsc (window_ns
    // apart, ~80 instructions) and compares it with their midpoint: the bound is 1 µs plus
    // that window.
    assert.ok(uptime_s > 10, `uptime ${uptime_s} s`);
    assert.ok(window_ns < 1000n, `the paired read took ${window_ns} ns`);
    const bound_ns = 1000n + window_ns;
    assert.ok(offset_ns < bound_ns && offset_ns > -bound_ns, `node ${node}: guest clock - (RTC base + virtual time) = ${offset_ns} ns`);
    console.log(`  (node ${node}: guest clock - (RTC base + virtual time) = ${offset_ns} ns at ${uptime_s} s uptime, read window ${window_ns} ns)`);
  }
  // date's whole seconds agree (busybox date has no %N; vclock -r prints nanoseconds).
  // busybox date reads time(), glibc's vDSO coarse clock: the seconds as of the last timer
  // tick (4 ms at HZ=250, the PIT here), so just after a second boundary it may still say
  // the second before. Allowed: up to COARSE_CLOCK_LAG_NS behind the first reading.
  const [v1, date_s, real_s, v2] = sh(2, "vclock; date +%s; vclock -r; vclock").trim().split("\n");
  const base_ns = BigInt(RTC_BASE_S) * 1_000_000_000n;
  const COARSE_CLOCK_LAG_NS = 20_000_000n;
  const sec = (v: string, minus_ns = 0n) => (base_ns + BigInt(v) - minus_ns) / 1_000_000_000n;
  assert.ok(BigInt(date_s!) >= sec(v1!, COARSE_CLOCK_LAG_NS) && BigInt(date_s!) <= sec(v2!), `date ${date_s} within [${sec(v1!, COARSE_CLOCK_LAG_NS)}, ${sec(v2!)}] (v1 ${v1})`);
  const real_ns = BigInt(real_s!.replace(".", ""));
  assert.ok(real_ns >= base_ns + BigInt(v1!) && real_ns <= base_ns + BigInt(v2!), `vclock -r ${real_s} between the two virtual readings`);
});

/** Datagrams sent by the probe, each stamped with the TSC read right before its sendto. */
let stamps: { before_ns: bigint; sent: bigint[]; after_ns: bigint } | null = null;

test("workload for the trace checks below: UDP datagrams stamped with the TSC (vclock's clock), and a 300 kB HTTP download between VMs", () => {
  const probe = path.join(dir, "udp_stamp");
  execFileSync("gcc", ["-static", "-Os", "-o", probe, path.join(REPO_ROOT, "test/guest_probes/udp_stamp.c")]);
  assert.is(tapsim("cp", ...port, probe, "0:/tmp/udp_stamp").code, 0);
  const out = sh(0, "vclock; /tmp/udp_stamp 10.0.0.2 9999 5; vclock").trim().split("\n").map(BigInt);
  stamps = { before_ns: out[0]!, sent: out.slice(1, -1), after_ns: out[out.length - 1]! };
  assert.is(stamps.sent.length, 5);
  const serve = sh(2, "mkdir -p /tmp/www && head -c 300000 /dev/urandom > /tmp/www/f && sha256sum /tmp/www/f && httpd -p 8080 -h /tmp/www");
  const got = sh(0, "wget -q -O /tmp/got http://10.0.0.3:8080/f && sha256sum /tmp/got");
  assert.is(got.split(" ")[0], serve.split(" ")[0]);
});

test("after the run: vclock is the trace's clock (each datagram leaves the NIC the same few µs after its stamp); the pcapng has each TCP segment once, in time order, at RTC base + virtual time", async () => {
  await stopRun();
  assert.ok(stamps, "the workload test ran");
  const emits = udpEmits(trace);
  assert.is(emits.length, 5, "every datagram is in the trace");
  // The first datagram waits for ARP; the others go straight out.
  const delays_ns = emits.slice(1).map((e, i) => e.t_ns - stamps!.sent[i + 1]!);
  for (let i = 0; i < 5; i++) assert.is(emits[i]!.stamp, stamps.sent[i]!, "the trace carries the stamped datagrams in order");
  // The send path costs the same instructions every time, so the same virtual ns: the TSC
  // and the trace's clock do not drift apart over the 400 ms of sends. Now and then an
  // interrupt lands between the stamp and the NIC and adds its own cost to one datagram.
  const min_ns = delays_ns.reduce((a, b) => (b < a ? b : a));
  assert.ok(delays_ns.filter((d) => d === min_ns).length >= 3, `send path cost is the same (to the ns) for at least 3 of 4 datagrams: ${delays_ns.join(", ")} ns`);
  assert.ok(min_ns > 0n && min_ns < 20_000n, `a datagram leaves ${min_ns} ns after its stamp (sendto + the NIC's 1 µs TX timer)`);
  assert.ok(stamps.before_ns < emits[0]!.t_ns && emits[4]!.t_ns < stamps.after_ns, "vclock before and after brackets the datagrams' trace times");
  console.log(`  (datagrams leave the NIC ${delays_ns.join(", ")} ns of virtual time after their TSC stamps)`);

  const full = path.join(dir, "tools-full.pcapng");
  const ex = tapsim("export", trace, "--pcap", full);
  assert.is(ex.code, 0, ex.stderr);
  assert.match(ex.stdout, /each frame once, at delivery; \d+ management frames on the <node>-mgmt interfaces\), timestamps 2025-01-01T00:00:00Z \+ virtual time/);
  // The SSH sessions that drove this test are on the management interfaces; Wireshark's TCP
  // analysis is about the simulated network, so it reads the other interfaces only.
  const pcap = simulatedOnly(full);
  const fields = (file: string, ...f: string[]) =>
    execFileSync("tshark", ["-r", file, "-T", "fields", "-E", "separator=/t", ...f.flatMap((x) => ["-e", x])], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], maxBuffer: 64 << 20 })
      .trimEnd()
      .split("\n")
      .map((l) => l.split("\t"));
  const rows = fields(pcap, "frame.time_epoch", "tcp.len", "tcp.analysis.retransmission", "tcp.analysis.out_of_order", "tcp.analysis.duplicate_ack", "tcp.analysis.lost_segment");
  const tcp_data = rows.filter((r) => Number(r[1]) > 0);
  assert.ok(tcp_data.length > 100, `${tcp_data.length} TCP segments with data`);
  const flagged = rows.filter((r) => r.slice(2).some((v) => v !== ""));
  assert.is(flagged.length, 0, `TCP analysis flags: ${JSON.stringify(flagged.slice(0, 3))}`);
  const times = rows.map((r) => BigInt(r[0]!.replace(".", "")));
  for (let i = 1; i < times.length; i++) assert.ok(times[i]! >= times[i - 1]!, `packet ${i + 1} earlier than packet ${i}`);
  assert.ok(times[0]! >= BigInt(RTC_BASE_S) * 1_000_000_000n, "timestamps start at the RTC base");
  const expert = execFileSync("tshark", ["-r", pcap, "-q", "-z", "expert"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  assert.not.match(expert, /retransmission|out-of-order|Duplicate ACK|Previous segment/i);
  // Both ends: the same segment twice, which is what made Wireshark see retransmissions.
  const both_full = path.join(dir, "tools-both-full.pcapng");
  assert.is(tapsim("export", trace, "--pcap", both_full, "--pcap-both-ends").code, 0);
  const both_rows = fields(simulatedOnly(both_full), "tcp.analysis.retransmission", "tcp.analysis.out_of_order");
  assert.ok(both_rows.some((r) => r.some((v) => v !== "")), "--pcap-both-ends shows each segment twice (flagged by TCP analysis)");
});

/** The packets of a pcapng that are not on a "<node>-mgmt" interface, as a new file. */
function simulatedOnly(file: string): string {
  const out = file.replace(/-full\.pcapng$/, ".pcapng");
  execFileSync("tshark", ["-r", file, "-Y", 'not (frame.interface_name contains "-mgmt")', "-w", out], { stdio: "ignore" });
  return out;
}

/** node 0's UDP frames carrying a stamp, with their send times from the trace. */
function udpEmits(file: string): { t_ns: bigint; stamp: bigint }[] {
  const reader = TraceReader.open(file);
  const out: { t_ns: bigint; stamp: bigint }[] = [];
  for (const r of reader.records()) {
    if (r[0] !== RecordKind.FrameEmit || r[1] !== 0) continue;
    const m = /tsc=(\d{20})/.exec(Buffer.from(r[4]).toString("latin1"));
    if (m) out.push({ t_ns: BigInt(r[2]), stamp: BigInt(m[1]!) });
  }
  reader.close();
  return out;
}

/** Ctrl+C lets the run finalise its trace; SIGKILL only if it hangs. */
async function stopRun(): Promise<void> {
  if (!run || run.child.exitCode !== null || run.child.signalCode !== null) return;
  run.child.kill("SIGINT");
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([run.done, new Promise((resolve) => (timer = setTimeout(resolve, 30_000)))]);
  clearTimeout(timer);
  if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill("SIGKILL");
}

test.run();
