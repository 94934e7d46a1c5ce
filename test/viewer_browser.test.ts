// The viewer in a real browser (headless Chromium via playwright-core): the page generated
// by `tapsim view` / `tapsim diff --html` is loaded and driven like a user would, and its
// test hook (window.__tapsimView) says where things are drawn and what is visible.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import type { Browser, Page } from "playwright-core";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { RecordKind, type FrameDeliverRecord } from "../engine/trace_records.js";
import { diffTraces } from "../recorder/diff.js";
import { decodeFrame } from "../recorder/frame_decode.js";
import { TraceReader } from "../recorder/reader.js";
import { artifactPath, launchChromium } from "./helpers/browser.js";
import { REPO_ROOT, tapsim } from "./helpers/cli.js";
import { MGMT_SYN, MGMT_SYN_ACK, PING_LINE, writeGuestTrace } from "./helpers/guest_trace.js";
import { FAULT_TRACE_FAULTS, writeFaultTrace } from "./helpers/fault_trace.js";

const tmp = mkdtempSync(path.join(tmpdir(), "tapsim-viewer-browser-"));
const TRACE_3X3 = path.join(REPO_ROOT, "traces/bracha_3x3.trace");
const JITTER_1 = path.join(REPO_ROOT, "traces/bracha_aws9_jitter_seed1.trace");
const JITTER_2 = path.join(REPO_ROOT, "traces/bracha_aws9_jitter_seed2.trace");
const VIEWPORT = { width: 1400, height: 800 };
let browser: Browser | null = null;

interface Point {
  x: number;
  y: number;
}
interface Win {
  t0_ns: number;
  t1_ns: number;
}

/** Calls window.__tapsimView[name](...args) in the page. */
async function hook<T>(page: Page, name: string, ...args: unknown[]): Promise<T> {
  return page.evaluate(
    ([n, a]) => {
      const h = (globalThis as unknown as { __tapsimView: Record<string, (...x: unknown[]) => unknown> }).__tapsimView;
      return h[n as string]!(...(a as unknown[]));
    },
    [name, args] as const,
  ) as Promise<T>;
}

async function openPage(url: string): Promise<Page> {
  if (browser === null) browser = await launchChromium();
  const page = await browser.newPage({ viewport: VIEWPORT });
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(url);
  await page.waitForFunction(() => (globalThis as { __tapsimView?: unknown }).__tapsimView !== undefined, null, { timeout: 60_000 }).catch(() => {
    throw new Error(`viewer page did not start: ${errors.join("; ") || "no page error reported"}`);
  });
  return page;
}

async function visibleAfterRedraw(page: Page): Promise<number> {
  await hook(page, "redraw");
  return hook<number>(page, "visibleFrames");
}

/** Deliveries of a trace, and one whose arrow no other arrow shares (same ends, same times). */
function deliveries(file: string): { all: FrameDeliverRecord[]; bytes: Map<number, Uint8Array>; unique: FrameDeliverRecord } {
  const reader = TraceReader.open(file);
  const all: FrameDeliverRecord[] = [];
  const bytes = new Map<number, Uint8Array>();
  for (const r of reader.records()) {
    if (r[0] === RecordKind.FrameDeliver) all.push(r);
    if (r[0] === RecordKind.FrameEmit) bytes.set(r[3], r[4].slice());
  }
  reader.close();
  const key = (r: FrameDeliverRecord) => `${r[4]} ${r[1]} ${r[5]} ${r[2]}`;
  const seen = new Map<string, number>();
  for (const r of all) seen.set(key(r), (seen.get(key(r)) ?? 0) + 1);
  const unique = all.slice(Math.floor(all.length / 2)).find((r) => seen.get(key(r)) === 1 && r[1] !== r[4]);
  assert.ok(unique, "the example trace has an arrow of its own");
  return { all, bytes, unique: unique! };
}

/** A mark alone at its (node, time), so hovering there can only mean it. */
function uniqueMark(file: string): { node: number; t_ns: number; text: string } {
  const reader = TraceReader.open(file);
  const marks: Array<{ node: number; t_ns: number; text: string }> = [];
  for (const r of reader.records()) if (r[0] === RecordKind.Mark && r[1] >= 0) marks.push({ node: r[1], t_ns: r[2], text: r[3] });
  reader.close();
  const found = marks.find((m) => marks.filter((o) => o.node === m.node && Math.abs(o.t_ns - m.t_ns) < 1e5).length === 1);
  assert.ok(found, "the example trace has a mark of its own");
  return found!;
}

test("view: one lane per node; clicking an arrow decodes that frame; filters and zoom change what is visible", async () => {
  const out = path.join(tmp, "3x3.html");
  const gen = tapsim("view", TRACE_3X3, "-o", out);
  assert.is(gen.code, 0, gen.stderr);
  assert.match(gen.stdout, /tapsim view: wrote .*3x3\.html \(\d+\.\d KiB\)/);
  const page = await openPage(pathToFileURL(out).href);
  const header = TraceReader.open(TRACE_3X3).header;
  assert.is(await hook<number>(page, "lanes"), header.config.nodes.length, "one lane per node");

  const { all, bytes, unique } = deliveries(TRACE_3X3);
  const k = await page.evaluate((frame_id) => {
    const h = (globalThis as unknown as { __tapsimView: { arrows(g: number): number; arrowInfo(g: number, k: number): { frame_id: number } } }).__tapsimView;
    for (let k = 0; k < h.arrows(0); k++) if (h.arrowInfo(0, k).frame_id === frame_id) return k;
    return -1;
  }, unique[3]);
  assert.ok(k >= 0, `frame ${unique[3]} has an arrow`);
  const span_ns = unique[2] - unique[5];
  await hook(page, "setWindow", unique[5] - span_ns * 0.6, unique[2] + span_ns * 0.6);
  // An arrow may cross another exactly at one point: try a few points along it.
  let selected: { g: number; k: number } | null = null;
  for (const frac of [0.5, 0.35, 0.65, 0.2]) {
    const p = await hook<Point>(page, "arrowPoint", 0, k, frac);
    await page.mouse.click(p.x, p.y);
    selected = await hook<{ g: number; k: number } | null>(page, "selected");
    if (selected?.k === k) break;
  }
  assert.equal(selected, { g: 0, k }, "the click selected the arrow drawn there");
  const expected = decodeFrame(bytes.get(unique[3])!).summary;
  assert.is((await page.textContent("#decode .summary"))?.trim(), expected, "decode panel shows decodeFrame's summary of the same bytes");
  assert.match((await page.textContent("#decode pre.hex")) ?? "", /\S/, "hex dump shown");
  const shot = artifactPath("viewer.png");
  await page.screenshot({ path: shot });
  console.log(`  viewer screenshot: ${shot}`);

  await page.click("#zoom-fit");
  assert.is(await visibleAfterRedraw(page), all.length, "whole trace: every frame visible");
  await page.waitForSelector("#frames li");
  const row = await page.$("#frames li:nth-child(3)");
  const row_k = Number(await row!.getAttribute("data-k"));
  await row!.click();
  assert.equal(await hook(page, "selected"), { g: 0, k: row_k }, "picking a row of the frame list selects that frame");
  const row_frame = (await hook<{ frame_id: number }>(page, "arrowInfo", 0, row_k)).frame_id;
  assert.is((await page.textContent("#decode .summary"))?.trim(), decodeFrame(bytes.get(row_frame)!).summary);

  const mark = uniqueMark(TRACE_3X3);
  await hook(page, "setWindow", mark.t_ns - 1e6, mark.t_ns + 1e6);
  await page.mouse.move(await hook<number>(page, "xOfNs", mark.t_ns), (await hook<number>(page, "laneTop", 0, mark.node)) + 3);
  await page.waitForSelector("#tooltip:not([hidden])");
  assert.match((await page.textContent("#tooltip")) ?? "", mark.text, "hovering a mark shows its text");
  await hook(page, "setWindow", 0, 1e12);
  await page.click("#filter-node-0");
  const without_0 = all.filter((r) => r[1] !== 0 && r[4] !== 0).length;
  assert.is(await visibleAfterRedraw(page), without_0, "node 0 filtered out: its frames are not drawn");
  await page.click("#filter-node-0");
  const udp = all.filter((r) => decodeFrame(bytes.get(r[3])!).protocol === "udp").length;
  assert.ok(udp > 0, "Bracha sends UDP");
  await page.click("#filter-proto-udp");
  assert.is(await visibleAfterRedraw(page), all.length - udp, "udp filtered out");
  await page.click("#filter-proto-udp");
  assert.is(await visibleAfterRedraw(page), all.length);

  const width = (w: Win) => w.t1_ns - w.t0_ns;
  const w0 = await hook<Win>(page, "window");
  await page.focus("#diagram");
  await page.keyboard.press("+");
  await hook(page, "redraw");
  const w1 = await hook<Win>(page, "window");
  assert.ok(Math.abs(width(w1) - width(w0) / 2) < 1, `"+" halves the window: ${width(w0)} -> ${width(w1)}`);
  const plot = await hook<Point & { w: number }>(page, "plot");
  await page.mouse.move(plot.x + plot.w / 2, await hook<number>(page, "laneCentre", 0, 1));
  await page.mouse.wheel(0, -400);
  await page.waitForFunction((w) => {
    const h = (globalThis as unknown as { __tapsimView: { window(): Win } }).__tapsimView;
    return h.window().t1_ns - h.window().t0_ns < w;
  }, width(w1));
  const w2 = await hook<Win>(page, "window");
  await page.keyboard.press("ArrowRight");
  await hook(page, "redraw");
  const w3 = await hook<Win>(page, "window");
  assert.ok(w3.t0_ns > w2.t0_ns && Math.abs(width(w3) - width(w2)) < 1, "ArrowRight pans later, same width");
  assert.ok((await visibleAfterRedraw(page)) < all.length, "a zoomed window shows fewer frames");
  await page.close();
});

test("view: dropped frames are drawn and their panel says why", async () => {
  const topo = path.join(tmp, "lossy.yaml");
  writeFileSync(topo, "nodes: 4\ndefaults:\n  latency: 10ms\n  loss: 20%\n");
  const trace = path.join(tmp, "lossy.trace");
  assert.is(tapsim("run", "--latency", topo, "--messages", "3", "--trace", trace, "--no-progress").code, 0);
  const out = path.join(tmp, "lossy.html");
  assert.is(tapsim("view", trace, "-o", out).code, 0);
  const page = await openPage(pathToFileURL(out).href);
  const k = await page.evaluate(() => {
    const h = (globalThis as unknown as { __tapsimView: { arrows(g: number): number; arrowInfo(g: number, k: number): { kind: number } } }).__tapsimView;
    for (let k = 0; k < h.arrows(0); k++) if (h.arrowInfo(0, k).kind === 1) return k;
    return -1;
  });
  assert.ok(k >= 0, "a drop arrow exists");
  const info = await hook<{ t_send_ns: number; t_recv_ns: number }>(page, "arrowInfo", 0, k);
  const span = Math.max(1e6, info.t_recv_ns - info.t_send_ns);
  await hook(page, "setWindow", info.t_send_ns - span, info.t_recv_ns + span);
  let picked = false;
  for (const frac of [0.5, 0.35, 0.65, 0.2, 0.8]) {
    const p = await hook<Point>(page, "arrowPoint", 0, k, frac);
    await page.mouse.click(p.x, p.y);
    if ((await hook<{ k: number } | null>(page, "selected"))?.k === k) {
      picked = true;
      break;
    }
  }
  assert.ok(picked, "the drop arrow can be clicked");
  assert.match((await page.textContent("#decode .facts")) ?? "", /dropped \(loss\) at/);
  await page.close();
});

interface LogLabel {
  node: number;
  i: number;
  x: number;
  text: string;
}

/** Index (in the page's time-sorted columns) of the first item whose info satisfies pred. */
async function findIndex<T>(page: Page, count: string, info: string, pred: (x: T) => boolean): Promise<number> {
  const n = await hook<number>(page, count, 0);
  for (let i = 0; i < n; i++) if (pred(await hook<T>(page, info, 0, i))) return i;
  return -1;
}

test("view of a VM-like trace: console text in each node's strip beside the frame that caused it; hover and click show it; management frames decode", async () => {
  const trace = path.join(tmp, "guest.trace");
  await writeGuestTrace(trace);
  const out = path.join(tmp, "guest.html");
  assert.is(tapsim("view", trace, "-o", out).code, 0);
  const page = await openPage(pathToFileURL(out).href);
  assert.is(await hook<number>(page, "lanes"), 3, "one lane per node (the strips are not lanes)");
  assert.match((await page.textContent("#summary")) ?? "", /7 console outputs, 2 management frames \(1 in, 1 out\)/);

  // Node 0's ping reaches node 1 at 7 ms; node 1 prints at 7.5 ms.
  await hook(page, "setWindow", 1e6, 16e6);
  const ping = await findIndex<{ text: string }>(page, "outputs", "outputInfo", (o) => o.text === PING_LINE);
  assert.ok(ping >= 0);
  const labels = await hook<LogLabel[]>(page, "logLabels");
  const label = labels.find((l) => l.node === 1 && l.i === ping);
  assert.ok(label, `node 1's console strip shows the ping line: ${JSON.stringify(labels)}`);
  assert.is(label!.text, "got ping from 10.0.0.1 ok·", "ANSI escapes left out, the DEL shown as ·");
  assert.ok(Math.abs(label!.x - ((await hook<number>(page, "xOfNs", 7.5e6)) + 3)) < 1, "the text starts at the time it was printed");
  const k = await page.evaluate(() => {
    const h = (globalThis as unknown as { __tapsimView: { arrows(g: number): number; arrowInfo(g: number, k: number): { to: number; frame_id: number } } }).__tapsimView;
    for (let k = 0; k < h.arrows(0); k++) if (h.arrowInfo(0, k).to === 1) return k;
    return -1;
  });
  const arrow_end = await hook<Point>(page, "arrowPoint", 0, k, 1);
  assert.ok(Math.abs(arrow_end.x - (await hook<number>(page, "xOfNs", 7e6))) < 1 && arrow_end.x < label!.x, "the ping's arrow ends just before, on the same axis");
  assert.ok(labels.some((l) => l.node === 2 && l.text === "ice up ⏎ login: "), "a piece with a line break shows it as ⏎");

  const strip_y = await hook<number>(page, "logStripCentre", 0, 1);
  await page.mouse.move(label!.x + 20, strip_y);
  await page.waitForSelector("#tooltip:not([hidden])");
  assert.is(await page.textContent("#tooltip"), "7.500000 ms n1 printed:\ngot ping from 10.0.0.1 ok·\n", "hovering shows the text");
  await page.mouse.click(label!.x + 20, strip_y);
  assert.equal(await hook(page, "picked"), { what: "output", g: 0, i: ping });
  assert.is(await page.textContent("#decode pre.console"), "got ping from 10.0.0.1 \\u001b[1mok\\u001b[0m\\u007f\n", "the panel shows exactly what was printed");

  await hook(page, "setWindow", 2.8e6, 3.4e6);
  for (const [dir, bytes, title] of [[0, MGMT_SYN, "management frame host → n1"], [1, MGMT_SYN_ACK, "management frame n1 → host"]] as const) {
    const i = await findIndex<{ dir: number }>(page, "mgmts", "mgmtInfo", (m) => m.dir === dir);
    const p = await hook<Point>(page, "mgmtPoint", 0, i);
    await page.mouse.click(p.x, p.y);
    assert.equal(await hook(page, "picked"), { what: "mgmt", g: 0, i }, `clicking the ${title} picks it`);
    assert.is(await hook(page, "selected"), null, "no frame arrow selected");
    assert.is((await page.textContent("#decode h3"))?.trim(), title);
    assert.is((await page.textContent("#decode .summary"))?.trim(), decodeFrame(bytes).summary, "decoded with the frame decoder");
    assert.match((await page.textContent("#decode pre.hex")) ?? "", /^0000 {2}52 54 00 12/);
  }
  await page.screenshot({ path: artifactPath("viewer-guest.png") });

  await page.click("#filter-node-1");
  await hook(page, "setWindow", 1e6, 16e6);
  assert.not.ok((await hook<LogLabel[]>(page, "logLabels")).some((l) => l.node === 1), "node 1 filtered out: its console is not drawn");
  await page.close();
});

test("view --serve: serves on 127.0.0.1, prints the URL; SIGINT stops it with exit 0", async () => {
  const child = spawn(process.execPath, [path.join(REPO_ROOT, "bin/tapsim.js"), "view", TRACE_3X3, "--serve", "0"], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  child.stdout.on("data", (d) => (stdout += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no URL printed: ${stdout}`)), 20_000);
      child.stdout.on("data", () => {
        const m = /serving (http:\/\/127\.0\.0\.1:\d+\/)/.exec(stdout);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
    });
    const page = await openPage(url);
    assert.is(await hook<number>(page, "lanes"), 3);
    const missing = await page.request.get(`${url}nothing-here`);
    assert.is(missing.status(), 404);
    await page.close();
  } finally {
    child.kill("SIGINT");
  }
  assert.is(await exited, 0, `exit 0 after SIGINT; stdout: ${stdout}`);
  assert.match(stdout, /tapsim view: stopped/);
});

test("diff --html: both traces on one axis, the divergence marked at diffTraces' record index and in view", async () => {
  const out = path.join(tmp, "diff.html");
  const r = tapsim("diff", JITTER_1, JITTER_2, "--html", out);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stdout, /tapsim diff: wrote .*diff\.html/);
  const expected = diffTraces(JITTER_1, JITTER_2, 0).first_divergence!;
  const page = await openPage(pathToFileURL(out).href);
  assert.is(await page.getAttribute("#divergence", "data-record-index"), String(expected.index));
  assert.is((await hook<{ index: number }>(page, "diff")).index, expected.index);
  assert.is(await hook<number>(page, "lanes"), 18, "9 lanes of A above 9 lanes of B");
  const t_ns = Number(await page.getAttribute("#divergence", "data-t-ns"));
  const w = await hook<Win>(page, "window");
  assert.ok(w.t0_ns <= t_ns && t_ns <= w.t1_ns, "the divergence is in the visible window");
  const x = await hook<number>(page, "xOfNs", t_ns);
  const plot = await hook<Point & { w: number }>(page, "plot");
  assert.ok(x >= plot.x && x <= plot.x + plot.w, "and inside the plot");
  assert.match((await page.textContent("#config-diff")) ?? "", /config\.seed: 1 vs 2/);
  await page.screenshot({ path: artifactPath("viewer-diff.png") });
  await page.close();
  const same_out = path.join(tmp, "same.html");
  assert.is(tapsim("diff", TRACE_3X3, TRACE_3X3, "--html", same_out).code, 0);
  const same = await openPage(pathToFileURL(same_out).href);
  assert.match((await same.textContent("#divergence")) ?? "", /Event streams identical: \d+ records/);
  assert.is(await same.$("#goto-divergence"), null, "nothing to go to");
  await same.close();
});

test("100k frames: the page loads and zoom/pan redraws complete (times reported, not asserted)", async () => {
  const trace = path.join(tmp, "big.trace");
  const t_run = Date.now();
  const run = tapsim("run", "--latency", "latency_configs/delays_9x9_aws.txt", "--messages", "74", "--trace", trace, "--no-progress");
  assert.is(run.code, 0, run.stderr);
  const frames = Number(/frames: (\d+) emitted/.exec(run.stdout)?.[1]);
  assert.ok(frames >= 100_000, `at least 100k frames: ${frames}`);
  const out = path.join(tmp, "big.html");
  const t_gen = Date.now();
  const gen = tapsim("view", trace, "-o", out);
  assert.is(gen.code, 0, gen.stderr);
  const t_load = Date.now();
  const page = await openPage(pathToFileURL(out).href);
  const load_ms = Date.now() - t_load;
  await hook(page, "redraw");
  assert.is(await hook<number>(page, "visibleFrames"), frames, "whole trace: every frame counted visible");
  const boot_ms = (await hook<{ boot_ms: number }>(page, "stats")).boot_ms;
  const full = await hook<Win>(page, "window");
  const full_ms = await hook<number>(page, "redraw");
  const span = full.t1_ns - full.t0_ns;
  const zoom_ms: number[] = [];
  for (const f of [0.3, 0.1, 0.01]) zoom_ms.push(await hook<number>(page, "setWindow", span * 0.4, span * (0.4 + f)));
  const pan_ms: number[] = [];
  for (let i = 1; i <= 5; i++) pan_ms.push(await hook<number>(page, "setWindow", span * (0.4 + i * 0.01), span * (0.5 + i * 0.01)));
  const zoomed_visible = await hook<number>(page, "visibleFrames");
  assert.ok(zoomed_visible > 0 && zoomed_visible < frames, "a tenth of the run shows part of the frames");
  const fmt = (xs: number[]) => xs.map((x) => x.toFixed(1)).join(", ");
  console.log(
    `  viewer 100k: ${frames} frames; run ${((t_gen - t_run) / 1000).toFixed(1)} s, page ${(statSync(out).size / 2 ** 20).toFixed(1)} MiB generated in ${((t_load - t_gen) / 1000).toFixed(1)} s, ` +
      `loaded in ${load_ms} ms (in-page parse + unpack + first draw ${boot_ms.toFixed(0)} ms); redraw ms: whole ${full_ms.toFixed(1)}, zoom 30%/10%/1% ${fmt(zoom_ms)}, pan ${fmt(pan_ms)}`,
  );
  for (const ms of [full_ms, ...zoom_ms, ...pan_ms]) assert.ok(Number.isFinite(ms) && ms >= 0);
  await page.close();
});

test.after(async () => {
  await browser?.close();
  rmSync(tmp, { recursive: true, force: true });
});

test("view of a faulted trace: a node fault is marked on its lane, a network change on every lane; hovering shows what happened", async () => {
  const trace = path.join(tmp, "faults.trace");
  await writeFaultTrace(trace);
  const out = path.join(tmp, "faults.html");
  const gen = tapsim("view", trace, "-o", out);
  assert.is(gen.code, 0, gen.stderr);
  const page = await openPage(pathToFileURL(out).href);
  assert.match((await page.textContent("#summary")) ?? "", /3 faults, 0 command events/);
  assert.not.ok(await page.isHidden("#legend-faults"), "the legend names the fault marks");
  const shot = artifactPath("viewer_faults.png");
  await page.screenshot({ path: shot });
  console.log(`  viewer screenshot (faults): ${shot}`);
  for (const f of FAULT_TRACE_FAULTS) {
    await hook(page, "setWindow", f.t_ns - 1e6, f.t_ns + 1e6);
    // A network change spans every lane: hover it on the last one.
    const lane = f.node >= 0 ? f.node : 3;
    await page.mouse.move(0, 0);
    await page.mouse.move(await hook<number>(page, "xOfNs", f.t_ns), (await hook<number>(page, "laneTop", 0, lane)) + 3);
    await page.waitForSelector("#tooltip:not([hidden])");
    const who = f.node >= 0 ? `n${f.node}` : "network";
    assert.is(await page.textContent("#tooltip"), `${(f.t_ns / 1e6).toFixed(6)} ms ${who}: ${f.text}`);
  }
  await page.close();
});

test.run();
