// The header's validator leaves config.scenario alone (the engine never reads it), so the
// results check the parts they read before trusting them: a hand-edited or foreign trace
// gets a one-line problem, not a TypeError half-way through the stream.

import type { RunConfig } from "../engine/trace_records.js";

/** null when config.scenario is absent or has the shape results.ts reads; else the first problem. */
export function checkScenario(config: RunConfig): string | null {
  const s = config.scenario as unknown;
  if (s === undefined) return null;
  if (!isObject(s)) return "not an object";
  if (typeof s["source"] !== "string" || typeof s["sha256"] !== "string") return "source and sha256 must be strings";
  const node_count = config.nodes.length;
  const commands = s["commands"];
  if (!Array.isArray(commands)) return "commands must be a list";
  const ids = new Set<string>();
  for (const [i, c] of commands.entries()) {
    const problem = commandProblem(c, node_count);
    if (problem !== null) return `commands[${i}]: ${problem}`;
    const id = (c as { id: string }).id;
    if (ids.has(id)) return `commands[${i}]: id ${JSON.stringify(id)} is used twice`;
    ids.add(id);
  }
  const metrics = s["metrics"];
  if (!Array.isArray(metrics)) return "metrics must be a list";
  for (const [i, m] of metrics.entries()) {
    const problem = metricProblem(m, node_count);
    if (problem !== null) return `metrics[${i}]: ${problem}`;
  }
  return null;
}

function commandProblem(c: unknown, node_count: number): string | null {
  if (!isObject(c)) return "not an object";
  if (typeof c["id"] !== "string" || typeof c["run"] !== "string") return "id and run must be strings";
  if (!isNodeId(c["node"], node_count)) return `node must be a node id below ${node_count}`;
  const ok_exit = c["ok_exit"];
  if (!Array.isArray(ok_exit) || !ok_exit.every((v) => Number.isSafeInteger(v))) return "ok_exit must be a list of integers";
  const timeout = c["timeout_ns"];
  if (!(timeout === null || (Number.isSafeInteger(timeout) && (timeout as number) >= 0))) return "timeout_ns must be null or a non-negative integer";
  return null;
}

function metricProblem(m: unknown, node_count: number): string | null {
  if (!isObject(m)) return "not an object";
  if (typeof m["name"] !== "string" || typeof m["pattern"] !== "string" || typeof m["unit"] !== "string") return "name, pattern and unit must be strings";
  const nodes = m["nodes"];
  if (!(nodes === null || (Array.isArray(nodes) && nodes.every((n) => isNodeId(n, node_count))))) return `nodes must be null or a list of node ids below ${node_count}`;
  if (Array.isArray(nodes) && new Set(nodes).size !== nodes.length) return "nodes lists a node twice";
  return null;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isNodeId(v: unknown, node_count: number): boolean {
  return Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) < node_count;
}
