// The sweep's plots: per metric, its mean against the first swept parameter (one line per
// value of the second, if any), and the frames delivered the same way, as Vega-Lite specs
// rendered to SVG headless (vega's View.toSVG, no browser). Scenarios declare no plots
// yet; these are the ones every sweep gets.

import { mkdirSync } from "node:fs";
import path from "node:path";
import * as vega from "vega";
import * as vl from "vega-lite";
import { writeOutput } from "../recorder/output_file.js";
import { valueText } from "./plan.js";
import type { Merged, MergedRow } from "./merge.js";

export const PLOTS_DIR = "plots";
/** A plot per metric; a sweep with more metrics plots the first ones. */
const PLOTS_MAX = 16;

interface PlotSpec {
  file: string;
  title: string;
  y_label: string;
  y: (row: MergedRow) => number | null;
}

/** Writes plots/<name>.svg for each plot that has a point to show; returns their paths. */
export async function writePlots(dir: string, m: Merged): Promise<string[]> {
  if (m.params.length === 0) return [];
  const specs: PlotSpec[] = m.metrics.slice(0, PLOTS_MAX).map((name) => {
    const unit = m.rows.find((r) => r.metrics[name] !== undefined)?.metrics[name]?.unit ?? "";
    return { file: `${safeName(name)}.svg`, title: `${name}: mean per point`, y_label: `${name} mean${unit === "" ? "" : ` (${unit})`}`, y: (r) => r.metrics[name]?.mean ?? null };
  });
  specs.push({ file: "frames_delivered.svg", title: "frames delivered per point", y_label: "frames delivered", y: (r) => r.frames_delivered });
  const out: string[] = [];
  for (const spec of specs) {
    const svg = await renderPlot(m, spec);
    if (svg === null) continue;
    mkdirSync(path.join(dir, PLOTS_DIR), { recursive: true });
    const file = path.join(dir, PLOTS_DIR, spec.file);
    writeOutput(file, (o) => o.write(svg));
    out.push(file);
  }
  return out;
}

async function renderPlot(m: Merged, spec: PlotSpec): Promise<string | null> {
  const x = m.params[0]!;
  const series = m.params[1] ?? null;
  const values = m.rows.flatMap((r) => {
    const y = spec.y(r);
    if (y === null || r.state !== "ok") return [];
    return [{ x: r.values[x], y, series: series === null ? "" : valueText(r.values[series]) }];
  });
  if (values.length === 0) return null;
  const numeric = values.every((v) => typeof v.x === "number");
  const chart: vl.TopLevelSpec = {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title: `${m.name}: ${spec.title}`,
    width: 480,
    height: 300,
    data: { values: values.map((v) => ({ ...v, x: numeric ? v.x : valueText(v.x) })) },
    mark: { type: "line", point: true },
    encoding: {
      x: { field: "x", type: numeric ? "quantitative" : "ordinal", title: x },
      // Points that differ only in further parameters (seeds) are averaged into one mark.
      y: { field: "y", type: "quantitative", aggregate: "mean", title: spec.y_label },
      ...(series === null ? {} : { color: { field: "series", type: "nominal", title: series } }),
    },
  };
  return renderVegaLite(chart);
}

/** A Vega-Lite spec rendered to SVG headless (vega's View.toSVG, no browser). */
export async function renderVegaLite(chart: vl.TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(chart).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

function safeName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]+/g, "_");
}
