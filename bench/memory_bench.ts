// Peak memory of `tapsim replay` and `tapsim info` on traces of growing length (~1M, ~3M and
// >=10M records; in-process Bracha on latency_configs/delays_9x9_aws.txt). Each command runs
// as a child process, measured with `/usr/bin/time -v` (max RSS); without it, a small child
// script does the same work and reports process.resourceUsage().maxRSS. Both tools stream the
// trace chunk by chunk, so maxRSS(10M) / maxRSS(1M) should stay close to 1. Reference: the
// max RSS of a bare `node -e 0`. The largest trace is replayed and summarised once more with
// V8's old generation capped far below its size: that passes only if nothing accumulates with
// trace length (some RSS growth between sizes is V8 sizing its heap, not retained data).
// Traces go under os.tmpdir() and are deleted afterwards.

import { spawnSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { fmtRatio, note, printTable, progress, QUICK, tempDir } from "./common.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const TIME = "/usr/bin/time";
/** BENCH_NO_TIME=1 forces the child-script path (to test it where /usr/bin/time exists). */
const HAVE_TIME = process.env["BENCH_NO_TIME"] !== "1" && existsSync(TIME) && spawnSync(TIME, ["-v", "true"], { encoding: "utf8" }).status === 0;
const CHILD = fileURLToPath(new URL("./rss_child.js", import.meta.url));
/** The flags bin/tapsim.js's shebang passes, so the figures are those a user gets. */
const NODE_FLAGS = ["--max-semi-space-size=32"];
const TOPOLOGY = "latency_configs/delays_9x9_aws.txt";
/** Old-generation cap for the check that nothing accumulates: far below what the traces hold. */
const OLD_SPACE_CAP_MB = 48;
/** ~341 records per Bracha broadcast on 9 nodes: 9 * m * 341 records. */
const SIZES = QUICK
  ? [
      { label: "0.1M", messages: 33 },
      { label: "0.3M", messages: 98 },
      { label: "1M", messages: 330 },
    ]
  : [
      { label: "1M", messages: 330 },
      { label: "3M", messages: 980 },
      { label: "10M", messages: 3300 },
    ];

interface Measured {
  maxrss_kb: number;
  wall_s: number;
  stdout: string;
}

function run(args: string[], what: string, flags: string[] = []): { stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [...NODE_FLAGS, ...flags, ...args], { cwd: ROOT, encoding: "utf8", maxBuffer: 256 * 2 ** 20 });
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status ?? r.signal}): ${(r.stderr || r.stdout).trim().split("\n").slice(-3).join(" | ")}`);
  return { stdout: r.stdout, stderr: r.stderr };
}

/** Max RSS of `node <args>` (a tapsim command, or `-e 0`), via /usr/bin/time or the child script. */
function measure(args: string[], fallback: string[], what: string, flags: string[] = []): Measured {
  const t0 = process.hrtime.bigint();
  if (HAVE_TIME) {
    const r = spawnSync(TIME, ["-v", process.execPath, ...NODE_FLAGS, ...flags, ...args], { cwd: ROOT, encoding: "utf8", maxBuffer: 256 * 2 ** 20 });
    const wall_s = Number(process.hrtime.bigint() - t0) / 1e9;
    const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr);
    if (r.status !== 0 || !m) throw new Error(`${what} failed (exit ${r.status ?? r.signal}): ${r.stderr.trim().split("\n").slice(-3).join(" | ")}`);
    return { maxrss_kb: Number(m[1]), wall_s, stdout: r.stdout };
  }
  const r = run([CHILD, ...fallback], what, flags);
  const wall_s = Number(process.hrtime.bigint() - t0) / 1e9;
  const out = JSON.parse(r.stdout) as { maxrss_kb: number; result: unknown };
  return { maxrss_kb: out.maxrss_kb, wall_s, stdout: JSON.stringify(out.result) };
}

const mb = (kb: number) => (kb / 1024).toFixed(0);

function main(): void {
  note(`memory_bench (${QUICK ? "quick" : "full"}): peak RSS of replay / info child processes (node ${NODE_FLAGS.join(" ")}), measured with ${HAVE_TIME ? "/usr/bin/time -v" : "process.resourceUsage().maxRSS in a child script"}`);
  const floor = measure(["-e", "0"], ["noop"], "node -e 0");
  const tmp = tempDir("tapsim-memory-bench-");
  const rows: string[][] = [];
  const rss: { replay: number; info: number }[] = [];
  let capped = "";
  try {
    for (const size of SIZES) {
      const trace = tmp.file(`bracha_${size.label}.trace`);
      const ran = run(["bin/tapsim.js", "run", "-l", TOPOLOGY, "-m", String(size.messages), "-t", trace, "--json", "--no-progress"], `tapsim run (${size.label})`);
      const summary = JSON.parse(ran.stdout) as { events: number; trace_bytes: number; wall_s: number };
      progress(`${size.label}: ${summary.events} records, ${(summary.trace_bytes / 2 ** 20).toFixed(0)} MiB, run ${summary.wall_s.toFixed(1)} s`);
      const replay = measure(["bin/tapsim.js", "replay", trace, "--json"], ["replay", trace], `tapsim replay (${size.label})`);
      const replayed = JSON.parse(replay.stdout) as { identical: boolean; records_checked: number };
      if (!replayed.identical || replayed.records_checked !== summary.events) {
        throw new Error(`replay of ${size.label}: identical ${replayed.identical}, ${replayed.records_checked} of ${summary.events} records`);
      }
      const info = measure(["bin/tapsim.js", "info", trace, "--json"], ["info", trace], `tapsim info (${size.label})`);
      const described = JSON.parse(info.stdout) as { records: number };
      if (described.records !== summary.events) throw new Error(`info of ${size.label}: ${described.records} of ${summary.events} records`);
      if (size === SIZES.at(-1)) capped = cappedCheck(trace);
      rmSync(trace);
      rss.push({ replay: replay.maxrss_kb, info: info.maxrss_kb });
      progress(`${size.label}: replay ${mb(replay.maxrss_kb)} MB in ${replay.wall_s.toFixed(1)} s, info ${mb(info.maxrss_kb)} MB in ${info.wall_s.toFixed(1)} s`);
      rows.push([
        size.label,
        String(summary.events),
        (summary.trace_bytes / 2 ** 20).toFixed(0),
        summary.wall_s.toFixed(1),
        replay.wall_s.toFixed(1),
        mb(replay.maxrss_kb),
        info.wall_s.toFixed(1),
        mb(info.maxrss_kb),
      ]);
    }
  } finally {
    tmp.remove();
  }
  printTable(["trace", "records", "MiB", "run s", "replay s", "replay maxRSS MB", "info s", "info maxRSS MB"], rows);
  const ratio = (a: number, b: number) => `${SIZES[a]!.label}/${SIZES[b]!.label}: replay ${fmtRatio(rss[a]!.replay / rss[b]!.replay)}, info ${fmtRatio(rss[a]!.info / rss[b]!.info)}`;
  note(`maxRSS ratio ${ratio(2, 0)} (flat memory: close to 1); ${ratio(2, 1)}; bare node -e 0: ${mb(floor.maxrss_kb)} MB`);
  note(`${SIZES.at(-1)!.label} again with --max-old-space-size=${OLD_SPACE_CAP_MB}: ${capped}`);
}

/** Replay and info of the largest trace with the old generation capped: they only pass if nothing accumulates. */
function cappedCheck(trace: string): string {
  const flags = [`--max-old-space-size=${OLD_SPACE_CAP_MB}`];
  const one = (name: string, args: string[], fallback: string[]): string => {
    try {
      const m = measure(args, fallback, `capped ${name}`, flags);
      return `${name} ok, maxRSS ${mb(m.maxrss_kb)} MB`;
    } catch (err) {
      return `${name} FAILED (${String((err as Error).message).slice(0, 120)})`;
    }
  };
  return [one("replay", ["bin/tapsim.js", "replay", trace, "--json"], ["replay", trace]), one("info", ["bin/tapsim.js", "info", trace, "--json"], ["info", trace])].join("; ");
}

main();
