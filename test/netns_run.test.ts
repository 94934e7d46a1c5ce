// Network namespaces joined to the simulated network through tapio-rs TAP devices, on
// wall-clock time: ping between namespaces is never faster than the configured latencies
// (frames are held at least that long), the run records and replays, and nothing is left.

import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { REPO_ROOT, tapsim } from "./helpers/cli.js";

const dir = mkdtempSync(path.join(tmpdir(), "tapsim-netns-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const leftovers = () => execFileSync("ip", ["netns", "list"], { encoding: "utf8" }).split("\n").filter((l) => /^tapsim-\d+-\d+/.test(l));

test("3 namespaces on delays_3x3: ping RTTs >= m[i][j] + m[j][i], trace replays identical, namespaces and TAPs removed", () => {
  const before = leftovers();
  const trace = path.join(dir, "ns.trace");
  const r = tapsim("run", "--netns", "3", "--duration", "5s", "--trace", trace, "--netns-cmd", "0:ping -c 3 -i 0.5 10.0.0.2; ping -c 3 -i 0.5 10.0.0.3");
  assert.is(r.code, 0, r.stderr);
  const rtt = (to: string) => [...r.stdout.matchAll(new RegExp(`from ${to}: icmp_seq=\\d+ ttl=64 time=([\\d.]+) ms`, "g"))].map((m) => Number(m[1]));
  const to1 = rtt("10.0.0.2");
  const to2 = rtt("10.0.0.3");
  assert.is(to1.length, 3, r.stdout);
  assert.is(to2.length, 3, r.stdout);
  for (const t of to1) assert.ok(t >= 100, `RTT to node 1 ${t} ms below 50 + 50 ms`);
  for (const t of to2) assert.ok(t >= 300, `RTT to node 2 ${t} ms below 150 + 150 ms`);
  assert.match(r.stdout, /frames: \d+ emitted/);
  const replay = tapsim("replay", trace);
  assert.is(replay.code, 0, replay.stdout + replay.stderr);
  assert.equal(leftovers(), before);
  assert.not.match(execFileSync("ip", ["link"], { encoding: "utf8" }), /ts\d+n\d/);
});

test("--netns without --duration is a one-line error, and creates nothing", () => {
  const r = tapsim("run", "--netns", "2", "--latency", "latency_configs/delays_3x3.txt");
  assert.is(r.code, 2);
  assert.match(r.stderr, /^tapsim: --netns runs on wall-clock time: give --duration/);
  assert.equal(leftovers(), []);
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, ok: () => boolean, timeout_ms: number): Promise<void> {
  const deadline = Date.now() + timeout_ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Processes whose command line is exactly `cmd`. */
function processesRunning(cmd: string): number[] {
  const out = execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" });
  return out.split("\n").map((l) => l.trim()).filter((l) => l.endsWith(` ${cmd}`) && l.split(/\s+/).slice(1).join(" ") === cmd).map((l) => Number(l.split(/\s+/)[0]));
}

test("SIGKILL of a --netns run: its namespaces, TAPs and the commands in them are removed right after", async () => {
  const topology = path.join(dir, "two.yaml");
  writeFileSync(topology, "nodes: 2\ndefaults:\n  latency: 5ms\n");
  // A command nobody else runs, so that the test can find it.
  const marker = `sleep ${4000 + (process.pid % 1000)}`;
  const child = spawn(process.execPath, [`${REPO_ROOT}/bin/tapsim.js`, "run", "--netns", "2", "--latency", topology, "--duration", "120s", "--trace", path.join(dir, "killed.trace"), "--netns-cmd", marker, "--no-progress"], {
    cwd: REPO_ROOT,
    stdio: "ignore",
  });
  const pid = child.pid!;
  const mine = () => execFileSync("ip", ["netns", "list"], { encoding: "utf8" }).split("\n").filter((l) => l.startsWith(`tapsim-${pid}-`));
  try {
    await until("both namespaces and their commands", () => mine().length === 2 && processesRunning(marker).length === 2, 30_000);
    process.kill(pid, "SIGKILL");
    await until("the namespaces to go", () => mine().length === 0, 5_000);
    await until("the commands to go", () => processesRunning(marker).length === 0, 5_000);
    assert.not.match(execFileSync("ip", ["link"], { encoding: "utf8" }), new RegExp(`ts${pid}n\\d`));
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    for (const p of processesRunning(marker)) process.kill(p, "SIGKILL");
    for (const line of mine()) execFileSync("ip", ["netns", "del", line.split(" ")[0]!]);
  }
});

test.run();
