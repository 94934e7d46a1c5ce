// The auction comparison (docs/auction.md): turns a sweep directory of auction runs
// (scenarios/auction_sweep.yaml) into a table and plots. Per point (mix x strategy) it reads
// the mix (--honest on the providers' line) and the strategy (--strategy on the trigger's)
// from the point's scenario.yaml and the consumer's transactions JSON (collected), then
// writes to OUT_DIR: comparison.json, table.md, and wins / running_price / running_rating
// as SVG (Vega-Lite rendered headless by vega) and PNG (rasterized by resvg).
//
//   node dist/bench/auction_report.js runs/auction_sweep docs/auction

import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { Resvg } from "@resvg/resvg-js";
import type * as vl from "vega-lite";
import { renderVegaLite } from "../sweep/plot.js";

export const TRANSACTIONS_PATH = "collected/consumer/tmp/consumer_transactions.json";
const PNG_WIDTH_PX = 900;

export interface TransactionRecord {
  winner: string;
  winner_index: number;
  price: number;
  price_consumer: number;
  average_uplink: number;
  average_downlink: number;
  rating: number;
  strategy: string;
  decision_ms: number;
}

export interface PointSummary {
  mix: string;
  honest: number;
  strategy: string;
  transactions: number;
  wins: number[];
  faulty_win_share: number;
  price_mean: number;
  rating_mean: number;
  downlink_mean_MBps: number;
  uplink_mean_MBps: number;
  decision_mean_ms: number;
  /** Per transaction in order: the running means. */
  running: { tx: number; price: number; rating: number }[];
}

const PROVIDERS = 10;

/** The transactions of one run, in transaction order. */
export function readTransactions(run_dir: string): TransactionRecord[] {
  const map = JSON.parse(readFileSync(path.join(run_dir, TRANSACTIONS_PATH), "utf8")) as Record<string, TransactionRecord>;
  return Object.keys(map)
    .map(Number)
    .sort((a, b) => a - b)
    .map((k) => map[String(k)]!);
}

export function summarize(honest: number, strategy: string, txs: TransactionRecord[]): PointSummary {
  assert(txs.length > 0, "a point has transactions");
  const wins = new Array<number>(PROVIDERS).fill(0);
  for (const t of txs) if (t.winner_index >= 0) wins[t.winner_index]! += 1;
  const won = txs.filter((t) => t.winner_index >= 0);
  const faulty_wins = won.filter((t) => t.winner_index >= honest).length;
  const running: PointSummary["running"] = [];
  let price_sum = 0;
  let rating_sum = 0;
  won.forEach((t, i) => {
    price_sum += t.price;
    rating_sum += t.rating;
    running.push({ tx: i + 1, price: price_sum / (i + 1), rating: rating_sum / (i + 1) });
  });
  const mean = (f: (t: TransactionRecord) => number): number => won.reduce((s, t) => s + f(t), 0) / Math.max(1, won.length);
  return {
    mix: honest === PROVIDERS ? "10 honest" : `${honest}+${PROVIDERS - honest}`,
    honest,
    strategy,
    transactions: txs.length,
    wins,
    faulty_win_share: faulty_wins / Math.max(1, won.length),
    price_mean: mean((t) => t.price),
    rating_mean: mean((t) => t.rating),
    downlink_mean_MBps: mean((t) => t.average_downlink),
    uplink_mean_MBps: mean((t) => t.average_uplink),
    decision_mean_ms: mean((t) => t.decision_ms),
    running,
  };
}

/** The mix and strategy a point ran, from the command lines of its scenario. */
function pointValues(scenario_text: string): { honest: number; strategy: string } {
  const honest = /auction provider .*--honest (\d+)/.exec(scenario_text);
  const strategy = /auction trigger .*--strategy (auction|naive)/.exec(scenario_text);
  assert(strategy !== null, "the trigger's line names a strategy");
  return { honest: honest === null ? PROVIDERS : Number(honest[1]), strategy: strategy![1]! };
}

export function readSweep(sweep_dir: string): PointSummary[] {
  const points_dir = path.join(sweep_dir, "points");
  const out: PointSummary[] = [];
  for (const name of readdirSync(points_dir).sort((a, b) => parseInt(a) - parseInt(b))) {
    const dir = path.join(points_dir, name);
    if (!existsSync(path.join(dir, TRANSACTIONS_PATH))) {
      process.stderr.write(`auction_report: ${dir}: no transactions (point failed or still running); left out\n`);
      continue;
    }
    const { honest, strategy } = pointValues(readFileSync(path.join(dir, "scenario.yaml"), "utf8"));
    out.push(summarize(honest, strategy, readTransactions(dir)));
  }
  return out;
}

export function tableMarkdown(points: PointSummary[]): string {
  const head = ["mix", "strategy", "txs", ...Array.from({ length: PROVIDERS }, (_, k) => `p${k}`), "faulty wins", "mean price", "mean rating", "down MB/s", "up MB/s", "decision ms"];
  const rows = points.map((p) => [
    p.mix,
    p.strategy,
    String(p.transactions),
    ...p.wins.map((w, k) => (k >= p.honest ? `${w}*` : String(w))),
    `${(100 * p.faulty_win_share).toFixed(0)} %`,
    p.price_mean.toFixed(3),
    p.rating_mean.toFixed(3),
    p.downlink_mean_MBps.toFixed(2),
    p.uplink_mean_MBps.toFixed(2),
    p.decision_mean_ms.toFixed(0),
  ]);
  const line = (cells: string[]): string => `| ${cells.join(" | ")} |`;
  return [line(head), line(head.map(() => "---")), ...rows.map(line), "", "(* = a faulty provider's wins)", ""].join("\n");
}

const MIX_ORDER = ["10 honest", "8+2", "7+3", "5+5"];

function winsSpec(points: PointSummary[]): vl.TopLevelSpec {
  const values = points.flatMap((p) => p.wins.map((w, k) => ({ mix: p.mix, strategy: p.strategy, provider: `p${k}`, wins: w, kind: k >= p.honest ? "faulty" : "honest" })));
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title: "wins per provider, per mix and strategy",
    data: { values },
    facet: { column: { field: "mix", type: "ordinal", sort: MIX_ORDER, title: "mix (honest+faulty)" }, row: { field: "strategy", type: "nominal", title: "strategy" } },
    spec: {
      width: 220,
      height: 140,
      mark: "bar",
      encoding: {
        x: { field: "provider", type: "ordinal", sort: Array.from({ length: PROVIDERS }, (_, k) => `p${k}`), title: "provider" },
        y: { field: "wins", type: "quantitative", title: "wins" },
        color: { field: "kind", type: "nominal", title: "provider", scale: { domain: ["honest", "faulty"], range: ["#4c78a8", "#e45756"] } },
      },
    },
  };
}

function runningSpec(points: PointSummary[], field: "price" | "rating"): vl.TopLevelSpec {
  const values = points.flatMap((p) => p.running.map((r) => ({ mix: p.mix, strategy: p.strategy, tx: r.tx, value: r[field] })));
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title: `running mean of the ${field === "price" ? "price paid" : "rating"} per transaction`,
    data: { values },
    facet: { column: { field: "mix", type: "ordinal", sort: MIX_ORDER, title: "mix (honest+faulty)" } },
    spec: {
      width: 220,
      height: 180,
      mark: { type: "line", point: true },
      encoding: {
        x: { field: "tx", type: "quantitative", title: "transaction" },
        y: { field: "value", type: "quantitative", title: `running mean ${field}`, scale: { zero: false } },
        color: { field: "strategy", type: "nominal", title: "strategy" },
      },
    },
  };
}

async function writePlot(out_dir: string, name: string, spec: vl.TopLevelSpec): Promise<void> {
  const svg = await renderVegaLite({ ...spec, background: "white" } as vl.TopLevelSpec);
  writeFileSync(path.join(out_dir, `${name}.svg`), svg);
  const png = new Resvg(svg, { fitTo: { mode: "width", value: PNG_WIDTH_PX }, font: { loadSystemFonts: true } }).render().asPng();
  writeFileSync(path.join(out_dir, `${name}.png`), png);
}

export async function writeReport(sweep_dir: string, out_dir: string): Promise<PointSummary[]> {
  const points = readSweep(sweep_dir).sort((a, b) => b.honest - a.honest || a.strategy.localeCompare(b.strategy));
  assert(points.length > 0, "the sweep has finished points");
  mkdirSync(out_dir, { recursive: true });
  writeFileSync(path.join(out_dir, "comparison.json"), JSON.stringify(points, null, 2) + "\n");
  writeFileSync(path.join(out_dir, "table.md"), tableMarkdown(points));
  await writePlot(out_dir, "wins", winsSpec(points));
  await writePlot(out_dir, "running_price", runningSpec(points, "price"));
  await writePlot(out_dir, "running_rating", runningSpec(points, "rating"));
  return points;
}

function assert(ok: boolean, what: string): void {
  if (!ok) throw new Error(`auction_report: ${what}`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [sweep_dir, out_dir] = process.argv.slice(2);
  if (sweep_dir === undefined || out_dir === undefined) {
    process.stderr.write("usage: node dist/bench/auction_report.js SWEEP_DIR OUT_DIR\n");
    process.exit(2);
  }
  const points = await writeReport(sweep_dir, out_dir);
  process.stdout.write(tableMarkdown(points));
}
