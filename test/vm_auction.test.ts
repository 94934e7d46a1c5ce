// Auction-based network selection on real VMs (docs/auction.md): our Go program
// (workloads/auction) as consumer, trigger and providers. To stay near 3 minutes of wall time
// on 2 cores the test runs 5 providers (p0..p4 of latency_configs/auction_10.yaml, their
// links as there) instead of 10, and 6 BUY events per run.
// 1. All honest, auction: every winner is the one an independent computation here of the
//    score FF = PF·SF·uptime·load·strength·feedback and of the consumer's |z| ≤ 1 filter
//    picks from the inputs the consumer logged; the feedback in the views follows
//    0.8·rating + 0.2·old from the recorded ratings.
// 2. p3, p4 faulty (seeded, recorded): the faulty providers win less often per provider
//    than the honest ones.

import { test } from "uvu";
import * as assert from "uvu/assert";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import YAML from "yaml";
import { RecordKind, type TraceRecord } from "../engine/trace_records.js";
import { TraceReader } from "../recorder/reader.js";
import { readTransactions, type TransactionRecord } from "../bench/auction_report.js";
import { REPO_ROOT, tapsimWith } from "./helpers/cli.js";

const tmp = mkdtempSync(path.join(tmpdir(), "tapsim-vm-auction-"));
const PROGRAM = path.join(REPO_ROOT, ".tapsim/workloads/auction");
const PROVIDERS = 5;
const COUNT = 6;
const UP_MBPS = "50,25,40,15,35";
const DOWN_MBPS = "30,10,20,5,25";
/** Our program's score is the formula's to the last bits; the tolerance only absorbs the mean of equal values. */
const EPSILON = 1e-9;

interface Requirement {
  up_mbps: number;
  down_mbps: number;
  price: number;
  mu: number;
  epsilon: number;
}

interface View {
  price: number;
  up_mbps: number;
  down_mbps: number;
  uptime: number;
  load: number;
  strength: number;
  feedback: number;
  score: number;
  missing?: boolean;
}

/** auction_10.yaml cut to the consumer and p0..p4, their links unchanged. */
function topology(): string {
  const full = YAML.parse(readFileSync(path.join(REPO_ROOT, "latency_configs/auction_10.yaml"), "utf8"));
  const nodes = ["consumer", ...Array.from({ length: PROVIDERS }, (_, k) => `p${k}`)];
  const links = (full.links as { from: string; to: string }[]).filter((l) => nodes.includes(l.from) && nodes.includes(l.to));
  assert.is(links.length, 2 * PROVIDERS);
  const file = path.join(tmp, "auction_5.yaml");
  writeFileSync(file, YAML.stringify({ nodes, defaults: full.defaults, links }));
  return file;
}

function scenario(name: string, honest: number): string {
  const file = path.join(tmp, `${name}.yaml`);
  const providers = Array.from({ length: PROVIDERS }, (_, k) => `p${k}`).join(", ");
  writeFileSync(
    file,
    [
      `topology: ${topology()}`,
      "seed: 1",
      `vm: {add: ["${PROGRAM}:/usr/bin/auction"]}`,
      "commands:",
      "  - name: provider",
      `    nodes: [${providers}]`,
      "    at: 3s",
      `    run: /usr/bin/auction provider --n ${PROVIDERS} --seed 1 --honest ${honest} --up ${UP_MBPS} --down ${DOWN_MBPS}`,
      "    timeout: 120s",
      "  - {name: consumer, node: consumer, at: 3s, run: /usr/bin/auction consumer --n 5 --out /tmp/consumer_transactions.json, timeout: 120s}",
      `  - {name: trigger, node: consumer, at: 4s, run: /usr/bin/auction trigger --count ${COUNT} --seed 1 --strategy auction, timeout: 120s}`,
      "until: {all_exited: true, duration: 130s}",
      "collect: [{node: consumer, path: /tmp/consumer_transactions.json}]",
      "",
    ].join("\n"),
  );
  return file;
}

/** The consumer's JSON lines (the agent prefixes them "[consumer.consumer] "). */
function consumerEvents(dir: string): Record<string, unknown>[] {
  const reader = TraceReader.open(path.join(dir, "trace.tapsim"));
  let text = "";
  try {
    for (const r of reader.records() as Iterable<TraceRecord>) {
      if (r[0] === RecordKind.GuestOutput && r[1] === 0) text += r[3] as string;
    }
  } finally {
    reader.close();
  }
  const prefix = "[consumer.consumer] {";
  return text
    .split("\n")
    .map((l) => l.replace(/\r$/, ""))
    .filter((l) => l.startsWith(prefix))
    .map((l) => JSON.parse(l.slice(prefix.length - 1)) as Record<string, unknown>);
}

function runVms(name: string, honest: number): { events: Record<string, unknown>[]; txs: TransactionRecord[] } {
  assert.ok(existsSync(PROGRAM), `${PROGRAM} missing: run scripts/bootstrap.sh (it needs Go)`);
  const dir = path.join(tmp, name);
  const r = tapsimWith({ timeout_ms: 300_000 }, "run", scenario(name, honest), "--out", dir, "--no-progress");
  assert.is(r.code, 0, r.stdout + r.stderr);
  const results = JSON.parse(readFileSync(path.join(dir, "results.json"), "utf8")) as { commands: { ok: boolean }[] };
  assert.ok(results.commands.every((c) => c.ok), "every program exited 0");
  return { events: consumerEvents(dir), txs: readTransactions(dir) };
}

// The score, written again from the seed's text, not from the program.
function ff(req: Requirement, v: View): number {
  const pf = (req.epsilon - v.price / req.price) / req.epsilon;
  const s = (x: number): number => x ** req.mu / (1 + x ** req.mu);
  const sf = s(v.up_mbps / req.up_mbps) * s(v.down_mbps / req.down_mbps);
  return pf * sf * v.uptime * v.load * v.strength * v.feedback;
}

function zMean(values: number[], z_max: number): number {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const std = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
  if (std === 0) return mean;
  const kept = values.filter((x) => Math.abs(x - mean) / std <= z_max);
  return kept.reduce((a, b) => a + b, 0) / kept.length;
}

function close(a: number, b: number): boolean {
  return Math.abs(a - b) <= EPSILON * Math.max(1, Math.abs(a), Math.abs(b));
}

test(`${PROVIDERS} honest providers, ${COUNT} BUYs: winners = the score formula and |z| <= 1 filter recomputed from the consumer's logged inputs`, () => {
  const { events, txs } = runVms("honest", PROVIDERS);
  assert.is(txs.length, COUNT);
  const feedback = new Array<number>(PROVIDERS).fill(1);
  for (let tx = 1; tx <= COUNT; tx++) {
    const buy = events.find((e) => e.ev === "buy" && e.tx === tx);
    assert.ok(buy !== undefined, `tx ${tx}: BUY logged`);
    const req = buy!.req as Requirement;
    const informs = events.filter((e) => e.ev === "inform_vote" && e.tx === tx);
    assert.is(informs.length, PROVIDERS, `tx ${tx}: every provider reported`);
    const recomputed: number[][] = [];
    for (const inform of informs) {
      const views = events
        .filter((e) => e.ev === "view" && e.tx === tx && e.from === inform.from)
        .sort((a, b) => (a.target as number) - (b.target as number))
        .map((e) => e.view as View);
      assert.is(views.length, PROVIDERS, `tx ${tx}: provider ${inform.from}'s views logged`);
      const scores = inform.scores as number[];
      const row = views.map((v, j) => {
        assert.not.ok(v.missing, `tx ${tx}: provider ${inform.from} has p${j}'s beacon`);
        assert.ok(close(v.feedback, feedback[j]!), `tx ${tx}: p${j}'s feedback ${v.feedback}, recomputed ${feedback[j]}`);
        const score = ff(req, v);
        assert.ok(close(score, v.score), `tx ${tx}: provider ${inform.from}'s score of p${j}: ${v.score}, recomputed ${score}`);
        // Honest providers see the same inputs, so their averaged report is that score.
        assert.ok(close(scores[j]!, score), `tx ${tx}: provider ${inform.from} reports ${scores[j]} for p${j}, recomputed ${score}`);
        return score;
      });
      recomputed.push(row);
    }
    const means = Array.from({ length: PROVIDERS }, (_, j) => zMean(recomputed.map((row) => row[j]!), 1));
    const winner = means.indexOf(Math.max(...means));
    const decision = events.find((e) => e.ev === "decision" && e.tx === tx);
    assert.is(decision?.winner, winner, `tx ${tx}: means ${means.join(", ")}`);
    assert.is(txs[tx - 1]!.winner, `p${winner}`);
    feedback[winner] = 0.8 * txs[tx - 1]!.rating + 0.2 * feedback[winner]!;
  }
});

test(`${PROVIDERS} providers, p3 and p4 faulty (seed 1, recorded): faulty providers win less often than honest ones`, () => {
  const honest = 3;
  const { txs } = runVms("faulty", honest);
  assert.is(txs.length, COUNT);
  const wins = new Array<number>(PROVIDERS).fill(0);
  for (const t of txs) wins[t.winner_index]! += 1;
  const honest_rate = wins.slice(0, honest).reduce((a, b) => a + b, 0) / honest;
  const faulty_rate = wins.slice(honest).reduce((a, b) => a + b, 0) / (PROVIDERS - honest);
  assert.ok(faulty_rate < honest_rate, `wins ${wins.join(", ")}: per faulty provider ${faulty_rate}, per honest ${honest_rate}`);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
