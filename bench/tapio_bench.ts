// Frames per second through tapio-rs against a plain blocking read/write loop (C, one
// syscall per frame: bench/tap_loop.c) on the same kind of TAP, in the same run. Each side
// owns a TAP moved into its own network namespace whose kernel answers ICMP echo; a round
// writes BATCH echo requests and reads until BATCH replies are back. tapio: one writeBatch
// per round, then waitReadable + readBatch (JS never polls). Frames = requests + replies.

import { execFileSync, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { TapDevice } from "../nodes/tap/tapio.js";
import { deleteNamespace, icmpEcho, ip, joinNamespace } from "../test/helpers/netns.js";
import { fmtRatio, median, note, printTable, QUICK, REPEATS, tempDir } from "./common.js";

const ROUNDS = QUICK ? 200 : 2000;
const BATCH = 64;
const HOST_MAC = "02:00:00:00:00:09";
const tag = process.pid % 100000;

function nsMac(ns: string, dev: string): string {
  const m = /link\/ether ([0-9a-f:]{17})/.exec(ip("-n", ns, "link", "show", dev));
  if (!m) throw new Error(`no MAC for ${dev} in ${ns}`);
  return m[1]!;
}

function prepareNamespace(ns: string, dev: string): string {
  joinNamespace(ns, dev, "10.77.0.1/16");
  ip("-n", ns, "neigh", "add", "10.77.0.9", "lladdr", HOST_MAC, "dev", dev);
  return nsMac(ns, dev);
}

async function tapioRun(): Promise<number> {
  const dev = `tb${tag}a`;
  const ns = `tapsim-bench-${tag}a`;
  const tap = TapDevice.create(dev);
  try {
    const request = icmpEcho(HOST_MAC, prepareNamespace(ns, dev), "10.77.0.9", "10.77.0.1", 1);
    const batch = Array.from({ length: BATCH }, () => request);
    const t0 = process.hrtime.bigint();
    let frames = 0;
    for (let r = 0; r < ROUNDS; r++) {
      frames += tap.writeBatch(batch);
      for (let got = 0, guard = 0; got < BATCH && guard < 100_000; guard++) {
        let b = tap.readBatch(); // drain first: wait (a worker thread round trip) only when empty
        if (b.count === 0) {
          if (!(await tap.waitReadable(5000))) throw new Error("tapio: replies stopped");
          b = tap.readBatch();
        }
        frames += b.count;
        let off = 0;
        for (let i = 0; i < b.count; i++) {
          if (b.bytes[off + 12] === 8 && b.bytes[off + 13] === 0 && b.bytes[off + 23] === 1 && b.bytes[off + 34] === 0) got++;
          off += b.lens[i]!;
        }
      }
    }
    return frames / (Number(process.hrtime.bigint() - t0) / 1e9);
  } finally {
    tap.close();
    deleteNamespace(ns);
  }
}

async function baselineRun(binary: string, frame_file: string): Promise<number> {
  writeFileSync(frame_file, ""); // written once the namespace (and its MAC) exists
  const dev = `tb${tag}b`;
  const ns = `tapsim-bench-${tag}b`;
  const child = spawn(binary, [dev, frame_file, String(ROUNDS), String(BATCH)], { stdio: ["pipe", "pipe", "inherit"] });
  let out = "";
  child.stdout!.setEncoding("utf8").on("data", (s: string) => (out += s));
  try {
    for (let i = 0; i < 500 && !out.includes("ready"); i++) await new Promise((r) => setTimeout(r, 10));
    writeFileSync(frame_file, icmpEcho(HOST_MAC, prepareNamespace(ns, dev), "10.77.0.9", "10.77.0.1", 1));
    child.stdin!.write("go\n");
    await new Promise((resolve) => child.once("exit", resolve));
    const m = /frames (\d+) seconds ([\d.]+)/.exec(out);
    if (!m) throw new Error(`tap_loop: ${out}`);
    return Number(m[1]) / Number(m[2]);
  } finally {
    child.kill("SIGKILL");
    deleteNamespace(ns);
  }
}

async function main(): Promise<void> {
  const tmp = tempDir("tapsim-bench-tap-");
  try {
    const binary = tmp.file("tap_loop");
    execFileSync("gcc", ["-O2", "-o", binary, new URL("../../bench/tap_loop.c", import.meta.url).pathname]);
    const frame_file = tmp.file("frame.bin");
    const tapio: number[] = [];
    const base: number[] = [];
    for (let rep = 0; rep < REPEATS; rep++) {
      tapio.push(await tapioRun());
      base.push(await baselineRun(binary, frame_file));
    }
    const t = median(tapio);
    const b = median(base);
    printTable(
      ["TAP I/O", "frames/s", "vs blocking loop"],
      [
        ["tapio-rs (batched, poll wake-up)", t.toFixed(0), fmtRatio(t / b)],
        ["C blocking read/write loop", b.toFixed(0), "1.00"],
      ],
      1,
    );
    note(`median of ${REPEATS}; ${ROUNDS} rounds of ${BATCH} ICMP echo requests + replies through a TAP into a namespace's kernel`);
  } finally {
    tmp.remove();
  }
}

await main();
