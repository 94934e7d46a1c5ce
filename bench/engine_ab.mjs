// Usage: BEFORE=/path/to/old/checkout node --expose-gc bench/engine_ab.mjs   (SIZES=4,64 REPS=3 WARMUP=1 PARALLEL=0)
// The first WARMUP rounds per size (JIT warm-up) are printed on stderr but left out of the medians.
// Same process, alternating: engine before (the BEFORE checkout), engine after, after with --parallel
// (PARALLEL=0 skips it: quicker A/B while working), heap-DES baseline.
const sizes = (process.env.SIZES ?? "4,16,64,256,1024").split(",").map(Number);
const CASES = { 4: [12000, null], 16: [200, null], 64: [3, null], 256: [1, 8], 1024: [1, 1] };
const REPS = Number(process.env.REPS ?? 3);
const WARMUP = Number(process.env.WARMUP ?? 1);
const load = async (root) => ({
  w: await import(`${root}/dist/nodes/inprocess/workloads.js`),
  r: await import(`${root}/dist/engine/run.js`),
  ip: await import(`${root}/dist/nodes/inprocess/run.js`),
  c: await import(`${root}/dist/bench/common.js`),
});
// BEFORE: a checkout of the old engine with dist/ built (and node_modules); AFTER: this one (default: cwd).
const A = await load(process.env.BEFORE), B = await load(process.env.AFTER ?? process.cwd());
// One null sink for every run (as engine_bench): a new literal per run would bring new `write`
// closures, and each run would start by discarding code specialised to the last one's.
class NullSink { transient_bytes = true; transient_records = true; write() {} writeFrameEmitIn() {} }
const NULL_SINK = new NullSink();
async function once(L, n, par) {
  const [m, b] = CASES[n];
  const config = L.r.makeRunConfig({ topology: L.c.awsLikeTopology(n), workload: L.w.brachaConfig({ messages_per_node: m, broadcasters: b }), seed: 1, until_ns: null });
  if (par) config.parallel = true;
  const { engine } = L.ip.createInProcessRun(config, NULL_SINK);
  globalThis.gc?.();
  const t0 = process.hrtime.bigint();
  const s = await engine.run();
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  return { rate: s.events / dt, events: s.events, slices: s.slices };
}
function baseline(nodes, population, events) {
  let x = 0x9e3779b9 | 0;
  const rand = () => { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; return x >>> 0; };
  const a = [];
  const before = (p, q) => p.t < q.t || (p.t === q.t && p.seq < q.seq);
  const push = (e) => { let i = a.length; a.push(e); while (i > 0) { const p = (i - 1) >> 1; if (!before(e, a[p])) break; a[i] = a[p]; i = p; } a[i] = e; };
  const pop = () => { const top = a[0]; const last = a.pop(); if (a.length === 0) return top; const n = a.length; let i = 0; for (;;) { const l = 2 * i + 1; if (l >= n) break; const r = l + 1; const c = r < n && before(a[r], a[l]) ? r : l; if (!before(a[c], last)) break; a[i] = a[c]; i = c; } a[i] = last; return top; };
  const handled = new Float64Array(nodes);
  let seq = 0;
  for (let i = 0; i < population; i++) push({ t: rand() % 100_000_000, seq: seq++, node: i % nodes });
  globalThis.gc?.();
  const t0 = process.hrtime.bigint();
  for (let k = 0; k < events; k++) { const ev = pop(); handled[ev.node] += 1; push({ t: ev.t + 1_000_000 + (rand() % 100_000_000), seq: seq++, node: rand() % nodes }); }
  return events / (Number(process.hrtime.bigint() - t0) / 1e9);
}
const med = (xs) => { const s = [...xs].sort((p, q) => p - q); const k = s.length >> 1; return s.length % 2 ? s[k] : (s[k - 1] + s[k]) / 2; };
const f = (v) => (v / 1e6).toFixed(2);
console.log("| nodes | Mevents | before Mev/s | after Mev/s | after --parallel Mev/s | heap-DES Mev/s | before/base | after/base | parallel/base | after/before | slices seq / parallel |");
console.log("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const n of sizes) {
  const ra = [], rb = [], rp = [], rq = [];
  let ev = 0, sl = 0, slp = 0;
  for (let rep = 0; rep < WARMUP + REPS; rep++) {
    const a = await once(A, n, false); ev = a.events;
    const b = await once(B, n, false); sl = b.slices;
    if (b.events !== a.events) throw new Error(`events differ ${a.events} ${b.events}`);
    const p = process.env.PARALLEL === "0" ? { rate: NaN, slices: 0 } : await once(B, n, true);
    slp = p.slices;
    const q = baseline(n, n * (n - 1), ev);
    const warm = rep >= WARMUP;
    if (warm) { ra.push(a.rate); rb.push(b.rate); rp.push(p.rate); rq.push(q); }
    process.stderr.write(`${n} ${warm ? `rep ${rep - WARMUP}` : "warm-up"}: before ${f(a.rate)} after ${f(b.rate)} parallel ${f(p.rate)} base ${f(q)}\n`);
  }
  const [a, b, p, q] = [med(ra), med(rb), med(rp), med(rq)];
  console.log(`| ${n} | ${(ev / 1e6).toFixed(2)} | ${f(a)} | **${f(b)}** | ${f(p)} | ${f(q)} | ${(a / q).toFixed(2)} | **${(b / q).toFixed(2)}** | ${(p / q).toFixed(2)} | ${(b / a).toFixed(2)} | ${sl} / ${slp} |`);
}
