// Deterministic VM clusters (issue #9): the same scenario run twice gives the same trace,
// record for record and byte for byte (`tapsim diff` exit 0; host facts such as QEMU pids
// are not compared), and `tapsim rerun` re-executes a recorded run, interactive SSH and an
// SFTP copy included, and finds a changed input at the first record it affects.

import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { RecordKind, type TraceRecord } from "../engine/trace_records.js";
import { TraceReader } from "../recorder/reader.js";
import { TraceWriter } from "../recorder/writer.js";
import { sshCopy, sshExec } from "../qmp/ssh.js";
import { nodeTarget, runAccess } from "../cli/ssh_target.js";
import { tapsim } from "./helpers/cli.js";
import { readAll } from "./helpers/recorder_fixtures.js";
import { leftovers, runResources, startRun } from "./helpers/vm.js";

const dir = mkdtempSync(path.join(tmpdir(), "tapsim-det-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const BOOT_TIMEOUT_MS = 420_000;

/** Runs the same `tapsim run` twice (one after the other, `between` in between) and diffs the traces. */
function twice(name: string, args: string[], between: () => void = () => {}): { a: string; b: string; diff: ReturnType<typeof tapsim> } {
  const [a, b] = [path.join(dir, `${name}-a.trace`), path.join(dir, `${name}-b.trace`)];
  for (const trace of [a, b]) {
    if (trace === b) between();
    const r = tapsim("run", ...args, "--trace", trace, "--no-progress");
    assert.is(r.code, 0, r.stderr);
  }
  return { a, b, diff: tapsim("diff", a, b) };
}

/** The cached default image's identity (it changes with the host key). */
function imageIdentity(): string {
  const info = tapsim("image", "info");
  assert.is(info.code, 0, info.stderr);
  return /^identity: ([0-9a-f]{64})$/m.exec(info.stdout)![1]!;
}

/**
 * Rebuilds the default image with a new random host key: what another machine (or CI) has.
 * Its SSH key must not reach guest timing, else the same scenario gives other results there.
 */
function rebuildImageWithNewHostKey(): void {
  const before = imageIdentity();
  const r = tapsim("image", "build", "--force");
  assert.is(r.code, 0, r.stderr);
  assert.is.not(imageIdentity(), before, "a new host key");
}

const records = (trace: string): TraceRecord[] => readAll(trace).records;

const consoleOf = (rs: TraceRecord[], node: number) => rs.filter((r) => r[0] === RecordKind.GuestOutput && r[1] === node).map((r) => r[3]).join("");

test("the demo's 3-VM ping scenario twice: identical traces", () => {
  const { a, diff } = twice("demo", ["--vms", "3", "--latency", "latency_configs/delays_3x3.txt", "--duration", "12s", "--no-ssh",
    "--boot-cmd", "sleep 1; for ip in 10.0.0.1 10.0.0.2 10.0.0.3; do ping -c 3 $ip; done"]);
  assert.is(diff.code, 0, diff.stdout + diff.stderr);
  assert.match(diff.stdout, /identical event by event/);
  const rs = records(a);
  assert.ok(rs.filter((r) => r[0] === RecordKind.FrameEmit).length >= 30, "the pings crossed the network");
  assert.match(consoleOf(rs, 0), /3 packets transmitted, 3 packets received/);
});

test("a TCP transfer between VMs twice, the second time on an image rebuilt with another host key (as another machine builds it): identical traces, and the file arrived", () => {
  const { a, diff } = twice("tcp", ["--vms", "3", "--latency", "latency_configs/delays_3x3.txt", "--duration", "10s", "--no-ssh",
    "--boot-cmd", "2:mkdir -p /tmp/www && head -c 300000 /dev/urandom > /tmp/www/f && sha256sum /tmp/www/f && httpd -p 8080 -h /tmp/www",
    "--boot-cmd", "0:sleep 2; wget -q -O /tmp/got http://10.0.0.3:8080/f && sha256sum /tmp/got"], rebuildImageWithNewHostKey);
  assert.is(diff.code, 0, diff.stdout + diff.stderr);
  const rs = records(a);
  const sent = /([0-9a-f]{64}) {2}\/tmp\/www\/f/.exec(consoleOf(rs, 2))?.[1];
  const got = /([0-9a-f]{64}) {2}\/tmp\/got/.exec(consoleOf(rs, 0))?.[1];
  assert.ok(sent && got, `both hashes printed:\n${consoleOf(rs, 2)}\n${consoleOf(rs, 0)}`);
  assert.is(got, sent);
  assert.ok(rs.filter((r) => r[0] === RecordKind.FrameEmit).length > 200, "the transfer took many frames");
});

test("8 VMs with traffic (jittered, shaped links) twice: identical traces", () => {
  const { a, diff } = twice("eight", ["--vms", "8", "--latency", "latency_configs/wan_8.yaml", "--duration", "8s", "--no-ssh", "--seed", "7",
    "--boot-cmd", "sleep 1; i=$(hostname | tr -d n); ping -c 4 -i 0.2 10.0.0.$(( (i + 1) % 8 + 1 )); ping -c 2 10.0.0.$(( (i + 3) % 8 + 1 ))"]);
  assert.is(diff.code, 0, diff.stdout + diff.stderr);
  const rs = records(a);
  const senders = new Set(rs.filter((r) => r[0] === RecordKind.FrameEmit).map((r) => r[1]));
  assert.is(senders.size, 8, "every VM sent frames");
});

test("rerun of a run with an interactive exec and an SFTP copy in the middle: identical; one changed input byte: divergence where it takes effect", async () => {
  const trace = path.join(dir, "interactive.trace");
  const port_base = 24722;
  const run = startRun(["run", "--vms", "3", "--latency", "latency_configs/delays_3x3.txt", "--trace", trace, "--ssh-port-base", String(port_base), "--mgmt-net", "10.251", "--no-progress"]);
  try {
    await run.waitFor(/^READY /m, BOOT_TIMEOUT_MS);
    await run.waitFor(/run dir \S+; QEMU pids [\d ]+;/, 10_000);
    const resources = runResources(run.stderr());
    const exec = tapsim("exec", "--ssh-port-base", String(port_base), "--node", "0", "--", "ping -c 2 10.0.0.2 && echo pinged");
    assert.is(exec.code, 0, exec.stderr);
    assert.match(exec.stdout, /pinged/);
    const blob = path.join(dir, "blob");
    writeFileSync(blob, Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 7919) & 0xff)));
    const target = nodeTarget(runAccess({ sshPortBase: port_base }), 1);
    await sshCopy(target, blob, "/tmp/blob");
    const sum = await sshExec(target, "sha256sum /tmp/blob");
    assert.match(sum.stdout.toString(), /^[0-9a-f]{64} /);
    run.child.kill("SIGINT");
    assert.is((await run.done).code, 130, run.stderr());
    assert.equal(leftovers(resources), []);
  } finally {
    if (run.child.exitCode === null) run.child.kill("SIGKILL");
  }
  const rs = records(trace);
  const mgmt_in = rs.filter((r) => r[0] === RecordKind.MgmtIn).length;
  assert.ok(mgmt_in > 20, `the SSH traffic is in the trace as inputs (${mgmt_in} mgmt_in records)`);
  const rerun = tapsim("rerun", trace);
  assert.is(rerun.code, 0, rerun.stdout + rerun.stderr);
  assert.match(rerun.stdout, /^rerun: identical: \d+ records/);

  // The management traffic is in the pcapng export, on interfaces of its own.
  const pcap = path.join(dir, "interactive.pcapng");
  const exported = tapsim("export", trace, "--pcap", pcap);
  assert.is(exported.code, 0, exported.stderr);
  const shark = spawnSync("tshark", ["-r", pcap, "-T", "fields", "-e", "frame.interface_name", "-e", "_ws.col.Protocol"], { encoding: "utf8" });
  const rows = shark.stdout.trim().split("\n").map((l) => l.split("\t"));
  assert.is(rows.filter((x) => x[0] === "n1-mgmt" && /SSH/.test(x[1] ?? "")).length > 10, true, "the SFTP session is on n1-mgmt");
  assert.is(rows.filter((x) => x[0] === "n0" || x[0] === "n1" || x[0] === "n2").every((x) => !/SSH/.test(x[1] ?? "")), true, "no management traffic on the simulated interfaces");

  // One byte of one host->guest frame changed (a TCP payload byte of the copy, mid-run).
  const tampered = path.join(dir, "tampered.trace");
  const big = rs.findIndex((r) => r[0] === RecordKind.MgmtIn && r[1] === 1 && r[3].length > 1000);
  assert.ok(big > 0, "a full-size frame of the copy reached node 1");
  const header = TraceReader.open(trace).header;
  const writer = TraceWriter.create(tampered, header);
  for (const [i, r] of rs.entries()) {
    if (i !== big) writer.write(r);
    else {
      const bytes = Uint8Array.from(r[3] as Uint8Array);
      bytes[bytes.length - 10] = bytes[bytes.length - 10]! ^ 0x01;
      writer.write([RecordKind.MgmtIn, r[1], r[2], bytes] as TraceRecord);
    }
  }
  writer.close();
  const diverged = tapsim("rerun", tampered);
  assert.is(diverged.code, 1, diverged.stdout + diverged.stderr);
  const m = /^rerun: DIVERGED at record #(\d+)/m.exec(diverged.stdout);
  assert.ok(m, diverged.stdout);
  assert.ok(Number(m![1]) > big, `the divergence (#${m![1]}) follows the changed input (#${big})`);
  const first_affected = rs.findIndex((r, i) => i > big && r[1] === 1 && (r[0] === RecordKind.MgmtOut || r[0] === RecordKind.FrameEmit || r[0] === RecordKind.GuestOutput));
  assert.is(Number(m![1]), first_affected, `reported at the first record of node 1's that the changed byte affects\n${diverged.stdout}`);
});

test.run();
