// Boot progress of a run's VMs, read from their console logs (the serial console goes to
// a file in the run dir): the kernel's banner, the default guest's init line, and its
// ready line once dropbear listens (both carry the guest's virtual time). Polled on wall
// time; reading a log never touches the guest, so watching changes nothing in the run.
//
// The watching runs in a worker thread that writes its lines to stderr itself: during a
// boot the engine keeps the main thread busy for seconds between yields (slices of busy
// guests), so a timer there would fire only in bursts.

import { closeSync, openSync, readSync, writeSync } from "node:fs";
import { isMainThread, Worker, workerData } from "node:worker_threads";

export type BootStage = "kernel" | "init" | "sshd";
export const BOOT_STAGES: readonly BootStage[] = ["kernel", "init", "sshd"];

/** What each stage looks like on the console (guest/init.sh prints the tapsim-guest lines). */
const STAGE_MARKERS: readonly [BootStage, RegExp][] = [
  ["kernel", /Linux version \S+/],
  ["init", /^tapsim-guest: init(?: t=(\d+\.\d{9})s)?\r?\n/m],
  ["sshd", /^tapsim-guest: ready .*?(?: t=(\d+\.\d{9})s)?\r?\n/m],
];
const FAILED_RE = /^tapsim-guest: FAILED: (.*?)\r?\n/m;
const POLL_INTERVAL_MS = 250;
const READ_BYTES_MAX = 64 * 1024;
/** Enough of the log's end to hold a marker line split across two reads. */
const CARRY_BYTES = 512;

export interface BootEvents {
  /** virtual_s: the guest's own reading of the virtual clock, when its line has one. */
  onStage(node: number, stage: BootStage, virtual_s: string | null): void;
  onFailed(node: number, why: string): void;
}

interface Watched {
  readonly path: string;
  offset: number;
  text: string;
  /** Index into STAGE_MARKERS of the next stage to look for. */
  next: number;
  failed: boolean;
}

export class BootWatcher {
  private readonly watched: Watched[];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    console_paths: readonly string[],
    private readonly events: BootEvents,
  ) {
    this.watched = console_paths.map((path) => ({ path, offset: 0, text: "", next: 0, failed: false }));
  }

  /** unref: the timer alone does not keep the process (or worker) alive. */
  start(unref = true): void {
    this.timer = setInterval(() => this.poll(), POLL_INTERVAL_MS);
    if (unref) this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Reads what each log gained since the last poll; reports stages in order, each once. */
  poll(): void {
    let open = 0;
    this.watched.forEach((w, node) => {
      if (w.failed || w.next >= STAGE_MARKERS.length) return;
      open++;
      const text = w.text + readNew(w);
      // A guest without a kernel banner on its console (quiet) still reaches init: every
      // stage up to a marker seen counts as passed.
      for (let k = STAGE_MARKERS.length - 1; k >= w.next; k--) {
        if (!STAGE_MARKERS[k]![1].test(text)) continue;
        for (; w.next <= k; w.next++) {
          const [stage, re] = STAGE_MARKERS[w.next]!;
          this.events.onStage(node, stage, re.exec(text)?.[1] ?? null);
        }
        break;
      }
      const failed = FAILED_RE.exec(text);
      if (failed) {
        w.failed = true;
        this.events.onFailed(node, failed[1]!);
      }
      w.text = text.slice(-CARRY_BYTES);
    });
    if (open === 0) this.stop();
  }
}

function readNew(w: Watched): string {
  let fd: number;
  try {
    fd = openSync(w.path, "r");
  } catch {
    return ""; // QEMU has not created it yet
  }
  try {
    const buf = Buffer.alloc(READ_BYTES_MAX);
    const n = readSync(fd, buf, 0, buf.length, w.offset);
    w.offset += n;
    return buf.subarray(0, n).toString("latin1");
  } finally {
    closeSync(fd);
  }
}

export interface BootLinesOptions {
  readonly console_paths: readonly string[];
  /** Clear a progress line on the terminal before each line. */
  readonly clear_line: boolean;
}

/**
 * Starts a worker that prints a line per stage per VM on stderr, e.g.
 * `boot: node 2 init (3/9) at t=1.523000000s virtual, 41.0 s wall`, and a FAILED line.
 * It ends by itself once every VM is past its last stage; stop() ends it sooner.
 */
export function startBootLines(opts: BootLinesOptions): { stop(): void } {
  const worker = new Worker(new URL(import.meta.url), { workerData: { ...opts, wall_start_ms: Date.now() } satisfies BootLinesData });
  worker.unref();
  worker.on("error", () => {}); // progress lines are a courtesy: never fail a run for them
  return { stop: () => void worker.terminate() };
}

interface BootLinesData extends BootLinesOptions {
  readonly wall_start_ms: number;
}

/** The worker's side: poll, and write whole lines straight to fd 2 (no main-thread hop). */
export function runBootLines(data: BootLinesData): void {
  const n = data.console_paths.length;
  const counts = new Map<BootStage, number>(BOOT_STAGES.map((s) => [s, 0]));
  const write = (line: string) => writeSync(2, `${data.clear_line ? "\r\x1b[K" : ""}${line}\n`);
  const wall = () => `${((Date.now() - data.wall_start_ms) / 1000).toFixed(1)} s wall`;
  const watcher = new BootWatcher(data.console_paths, {
    onStage: (node, stage, virtual_s) => {
      const count = counts.get(stage)! + 1;
      counts.set(stage, count);
      write(`boot: node ${node} ${stage} (${count}/${n})${virtual_s === null ? "" : ` at t=${virtual_s}s virtual`}, ${wall()}`);
    },
    onFailed: (node, why) => write(`boot: node ${node} FAILED: ${why}`),
  });
  watcher.start(false);
}

// Loaded as a worker (startBootLines), this module runs the watcher.
if (!isMainThread && (workerData as Partial<BootLinesData> | null)?.console_paths !== undefined) runBootLines(workerData as BootLinesData);
