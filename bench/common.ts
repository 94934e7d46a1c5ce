// Shared helpers for the benchmarks: mode (quick/full), medians, the generated AWS-like
// topology, tables. Benchmarks print ratios against a baseline measured in the same process
// and never assert wall-clock times (the machine is small and noisy).

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { LINK_DEFAULTS, type TopologySpec } from "../engine/topology.js";
import { hostNowNs } from "../engine/units.js";

export const QUICK = process.argv.includes("quick") || process.env["BENCH_QUICK"] === "1";
export const REPEATS = 3;

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Wall seconds of `fn` (awaited). */
export async function timeIt<T>(fn: () => T | Promise<T>): Promise<{ s: number; value: T }> {
  const t0 = hostNowNs();
  const value = await fn();
  return { s: (hostNowNs() - t0) / 1e9, value };
}

/** Frees what a previous case left behind, where the process allows it (--expose-gc). */
export function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** One-way latencies (ms) between the three regions of latency_configs/delays_9x9_aws.txt, [to][from]. */
const AWS_REGION_MS = [
  [1, 46, 125],
  [46, 1, 99],
  [125, 49, 1],
];

/** N nodes in three AWS-like regions (consecutive thirds), latencies as in delays_9x9_aws.txt. */
export function awsLikeTopology(n: number): TopologySpec {
  const region = (i: number) => Math.min(2, Math.floor((i * 3) / n));
  const latency_ns = Array.from({ length: n }, (_, to) => Array.from({ length: n }, (_, from) => AWS_REGION_MS[region(to)]![region(from)]! * 1_000_000));
  return {
    source: `bench:aws3x${n}`,
    node_names: Array.from({ length: n }, (_, i) => `n${i}`),
    latency_ns,
    link_defaults: { ...LINK_DEFAULTS },
    link_overrides: [],
  };
}

export function tempDir(prefix: string): { dir: string; file: (name: string) => string; remove: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, file: (name) => path.join(dir, name), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export const fmtM = (per_s: number): string => (per_s / 1e6).toFixed(2);
export const fmtRatio = (r: number): string => r.toFixed(2);

/** A compact fixed-width table: the first `left` columns left-aligned, the rest right-aligned. */
export function printTable(head: string[], rows: string[][], left = 1): void {
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? "").length)));
  const line = (cells: string[]) => cells.map((cell, c) => (c < left ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  ").trimEnd();
  console.log(line(head));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const r of rows) console.log(line(r));
}

export function note(text: string): void {
  console.log(text);
}

/** Per-repetition figures on stderr, only with BENCH_VERBOSE=1 (stdout keeps just the tables). */
export function progress(text: string): void {
  if (process.env["BENCH_VERBOSE"] === "1") process.stderr.write(`  .. ${text}\n`);
}
