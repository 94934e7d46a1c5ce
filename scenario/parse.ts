// Reads a scenario file (YAML or JSON): what runs where and when, what goes wrong when, and
// what to measure. Every error is one line "file:line:column: message" (exit 2). The result
// is compiled: node names resolved to ids, times in integer ns, faults as a FaultPlan the
// engine applies (compile_faults.ts), commands as the controller runs them.

import { createHash } from "node:crypto";
import path from "node:path";
import { LineCounter, isMap, isScalar, isSeq, type YAMLMap, type YAMLSeq } from "yaml";
import { InputError } from "../engine/errors.js";
import { readInputText } from "../engine/input_file.js";
import type { TopologySpec } from "../engine/topology.js";
import { loadTopologyFile, topologyFromMap } from "../engine/topology_parse.js";
import type { FaultPlan, ScenarioCommand, ScenarioMetric, ScenarioRunConfig, WorkloadConfig } from "../engine/trace_records.js";
import { Ctx, describe, parseYamlRoot, readFields, scalarText, valueOrKey, type Field, type YamlNode } from "../engine/yaml_fields.js";
import { compileFaults } from "./compile_faults.js";
import { NodeNames } from "./node_names.js";
import { BRACHA_RULES, BRACHA_TRANSPORTS } from "../nodes/inprocess/bracha.js";
import { readBool, readChoice, readDuration, readId, readInt, readIntList, readMemoryMib, readPositiveDuration, readStringList, readTime, seqItems } from "./values.js";

export const TOP_FIELDS = ["name", "topology", "nodes", "seed", "slice_max", "workload", "vm", "commands", "until", "collect", "faults", "metrics"] as const;
const NODE_FIELDS = ["name", "add", "memory", "packages"] as const;
const VM_FIELDS = ["memory", "image", "packages", "add", "rtc_base", "ssh", "snapshot"] as const;
const COMMAND_FIELDS = ["name", "node", "nodes", "run", "at", "after", "delay", "ok_exit", "timeout"] as const;
const UNTIL_FIELDS = ["duration", "all_exited", "output"] as const;
const OUTPUT_FIELDS = ["node", "pattern"] as const;
const COLLECT_FIELDS = ["node", "nodes", "path"] as const;
const METRIC_FIELDS = ["name", "node", "nodes", "pattern", "unit"] as const;
const WORKLOAD_FIELDS = ["kind", "messages", "payload_bytes", "start_spread", "silent", "broadcasters", "transport", "rules", "startup"] as const;
/** A command rides in one agent datagram (qmp/agent.ts); longer scripts go in a file (`add:`). */
export const COMMAND_BYTES_MAX = 1200;
const COMMANDS_MAX = 4096;

export interface ScenarioVm {
  memory_mib: number;
  /** A qcow2 image (path resolved against the scenario's folder), or null for the default guest. */
  image: string | null;
  packages: string[] | null;
  /** --add specs: "HOST:GUEST" or "N:HOST:GUEST" with host paths resolved. */
  adds: string[];
  rtc_base: string;
  /** Whether the host may reach the guests over SSH while the run goes (default: no, a closed world). */
  ssh: boolean;
  /** Start the VMs from a snapshot of the default guest instead of booting them (tapsim run --snapshot). */
  snapshot: boolean;
  /** Per node (nodes: as a list): memory and packages of its own, null where it has none. */
  node_memory_mib: (number | null)[];
  node_packages: (string[] | null)[];
}

export interface Scenario {
  /** The file as given, its folder, and the sha256 of its bytes. */
  source: string;
  dir: string;
  sha256: string;
  name: string;
  topology: TopologySpec;
  seed: number;
  slice_max_ns: number | null;
  /** In-process nodes run this workload; null: VMs. */
  workload: WorkloadConfig | null;
  vm: ScenarioVm | null;
  faults: FaultPlan;
  /** The run's duration cap (until.duration), or null. */
  until_ns: number | null;
  run: ScenarioRunConfig;
}

export interface ScenarioDefaults {
  memory_mib: number;
  rtc_base: string;
}

export function loadScenarioFile(file: string, defaults: ScenarioDefaults): Scenario {
  const text = readInputText(file);
  return parseScenario(text, file, defaults);
}

export function parseScenario(text: string, source: string, defaults: ScenarioDefaults): Scenario {
  const lc = new LineCounter();
  const { doc, root } = parseYamlRoot(text, source, lc, "scenario file", TOP_FIELDS);
  const dir = path.dirname(source);
  const ctx = new Ctx(text, source, dir, lc, doc);
  const fields = readFields(ctx, root, TOP_FIELDS, "top level");
  const topology = readTopology(ctx, fields, root);
  const names = new NodeNames(ctx, topology.node_names);
  const workload = fields.has("workload") ? readWorkload(ctx, fields.get("workload")!) : null;
  if (workload !== null) refuseVmFields(ctx, fields);
  const vm = workload === null ? readVm(ctx, fields, names, defaults) : null;
  if (vm?.image != null && vm.node_packages.some((p) => p !== null)) ctx.fail(fields.get("nodes")!.key, "nodes: packages need the default guest (vm.image is a user's qcow2 image)");
  if (vm?.image != null) for (const name of ["commands", "collect"] as const) {
    const f = fields.get(name);
    if (f !== undefined) ctx.fail(f.key, `${name}: needs the default guest, whose agent runs them (vm.image is a user's qcow2 image)`);
  }
  const until = readUntil(ctx, fields.get("until"), names, workload !== null, fields.has("commands"));
  const commands = fields.has("commands") ? readCommands(ctx, fields.get("commands")!, names) : [];
  const faults = fields.has("faults") ? compileFaults(ctx, fields.get("faults")!, names, { until_ns: until.duration_ns, inprocess: workload !== null }) : { nodes: [], network: [] };
  return {
    source,
    dir,
    sha256: createHash("sha256").update(text).digest("hex"),
    name: fields.has("name") ? readId(ctx, fields.get("name")!, "name") : path.basename(source).replace(/\.(ya?ml|json)$/i, ""),
    topology: { ...topology, node_names: names.names },
    seed: fields.has("seed") ? readInt(ctx, fields.get("seed")!, "seed", 0, 2 ** 32 - 1) : 1,
    slice_max_ns: fields.has("slice_max") ? readPositiveDuration(ctx, fields.get("slice_max")!, "slice_max") : null,
    workload,
    vm,
    faults,
    until_ns: until.duration_ns,
    run: {
      source,
      sha256: createHash("sha256").update(text).digest("hex"),
      commands,
      until,
      collect: fields.has("collect") ? readCollect(ctx, fields.get("collect")!, names) : [],
      metrics: fields.has("metrics") ? readMetrics(ctx, fields.get("metrics")!, names) : [],
    },
  };
}

// ---------------------------------------------------------------------------------------
// topology, nodes, workload, vm

function readTopology(ctx: Ctx, fields: Map<string, Field>, root: YAMLMap): TopologySpec {
  const f = fields.get("topology");
  if (f === undefined) ctx.fail(root, "top level: missing field \"topology\" (a latency matrix or topology file, or an inline topology mapping)");
  const nodes = fields.get("nodes");
  const count = nodes !== undefined && isScalar(nodes.value) ? readInt(ctx, nodes, "nodes", 1, 256) : undefined;
  const list = nodes !== undefined && isSeq(nodes.value) ? (nodes.value as YAMLSeq).items.length : undefined;
  const want = count ?? list;
  if (isMap(f!.value)) return topologyFromMap(ctx, f!.value as YAMLMap, want === undefined ? {} : { nodes: want });
  const file = scalarText(ctx, f!, "top level", "a topology file path or a mapping");
  const resolved = path.resolve(ctx.baseDir, file);
  try {
    return { ...loadTopologyFile(resolved, want === undefined ? {} : { nodes: want }), source: path.relative(process.cwd(), resolved) || resolved };
  } catch (err) {
    // The topology file's own located error, prefixed with where the scenario names it.
    if (err instanceof InputError) ctx.fail(valueOrKey(f!), `topology: ${err.message}`);
    throw err;
  }
}

function refuseVmFields(ctx: Ctx, fields: Map<string, Field>): void {
  for (const name of ["vm", "commands", "collect"] as const) {
    const f = fields.get(name);
    if (f !== undefined) ctx.fail(f.key, `${name}: in-process nodes (workload:) run no guest programs; ${name} needs VM nodes (drop workload:)`);
  }
  const nodes = fields.get("nodes");
  if (nodes !== undefined && isSeq(nodes.value)) ctx.fail(nodes.key, "nodes: per-node settings are for VM nodes; with workload: give a count");
}

function readWorkload(ctx: Ctx, f: Field): WorkloadConfig {
  if (!isMap(f.value)) ctx.fail(valueOrKey(f), `workload: expected a mapping such as {kind: bracha, messages: 10}, got ${describe(f.value)}`);
  const w = readFields(ctx, f.value as YAMLMap, WORKLOAD_FIELDS, "workload");
  const kind = w.get("kind");
  if (kind === undefined) ctx.fail(f.value, "workload: missing field \"kind\" (bracha)");
  const kind_text = scalarText(ctx, kind!, "workload", "a workload name");
  if (kind_text !== "bracha") ctx.fail(valueOrKey(kind!), `workload.kind: unknown workload "${kind_text}" (expected bracha)`);
  const out: WorkloadConfig = { kind: "bracha" };
  if (w.has("messages")) out["messages_per_node"] = readInt(ctx, w.get("messages")!, "workload.messages", 1, 1_000_000);
  if (w.has("payload_bytes")) out["payload_bytes"] = readInt(ctx, w.get("payload_bytes")!, "workload.payload_bytes", 0, 1400);
  if (w.has("start_spread")) out["start_spread_ns"] = readDuration(ctx, w.get("start_spread")!, "workload.start_spread");
  if (w.has("broadcasters")) out["broadcasters"] = readInt(ctx, w.get("broadcasters")!, "workload.broadcasters", 1, 4096);
  if (w.has("silent")) out["silent_nodes"] = readIntList(ctx, w.get("silent")!, "workload.silent");
  if (w.has("transport")) out["transport"] = readChoice(ctx, w.get("transport")!, "workload.transport", BRACHA_TRANSPORTS);
  if (w.has("rules")) out["rules"] = readChoice(ctx, w.get("rules")!, "workload.rules", BRACHA_RULES);
  if (w.has("startup")) out["startup_ns"] = readDuration(ctx, w.get("startup")!, "workload.startup");
  return out;
}

function readVm(ctx: Ctx, fields: Map<string, Field>, names: NodeNames, defaults: ScenarioDefaults): ScenarioVm {
  const n = names.names.length;
  const vm: ScenarioVm = { memory_mib: defaults.memory_mib, image: null, packages: null, adds: [], rtc_base: defaults.rtc_base, ssh: false, snapshot: false, node_memory_mib: new Array(n).fill(null), node_packages: new Array(n).fill(null) };
  const f = fields.get("vm");
  if (f !== undefined) {
    if (!isMap(f.value)) ctx.fail(valueOrKey(f), `vm: expected a mapping (memory, image, packages, add, rtc_base, ssh, snapshot), got ${describe(f.value)}`);
    const v = readFields(ctx, f.value as YAMLMap, VM_FIELDS, "vm");
    if (v.has("memory")) vm.memory_mib = readMemoryMib(ctx, v.get("memory")!, "vm.memory");
    if (v.has("image")) vm.image = path.resolve(ctx.baseDir, scalarText(ctx, v.get("image")!, "vm", "a qcow2 image path"));
    if (v.has("packages")) vm.packages = readStringList(ctx, v.get("packages")!, "vm.packages").sort();
    if (v.has("add")) vm.adds.push(...readAdds(ctx, v.get("add")!, "vm.add", null));
    if (v.has("rtc_base")) vm.rtc_base = scalarText(ctx, v.get("rtc_base")!, "vm", "a date such as 2025-01-01T00:00:00");
    if (v.has("ssh")) vm.ssh = readBool(ctx, v.get("ssh")!, "vm.ssh");
    if (v.has("snapshot")) vm.snapshot = readBool(ctx, v.get("snapshot")!, "vm.snapshot");
    if (vm.snapshot && vm.image !== null) ctx.fail(v.get("snapshot")!.key, "vm.snapshot needs the default guest (vm.image is a user's qcow2 image)");
  }
  const nodes = fields.get("nodes");
  if (nodes !== undefined && isSeq(nodes.value)) readNodeList(ctx, nodes.value as YAMLSeq, names, vm);
  return vm;
}

/** `nodes:` as a list: per-node names and files. */
function readNodeList(ctx: Ctx, seq: YAMLSeq, names: NodeNames, vm: ScenarioVm): void {
  const renamed: string[] = [...names.names];
  seq.items.forEach((item, i) => {
    const node = ctx.deref(item);
    if (!isMap(node)) ctx.fail(node, `nodes[${i}]: expected a mapping (name, add), got ${describe(node)}`);
    const f = readFields(ctx, node as YAMLMap, NODE_FIELDS, `nodes[${i}]`);
    if (f.has("name")) renamed[i] = readId(ctx, f.get("name")!, `nodes[${i}].name`);
    if (f.has("add")) vm.adds.push(...readAdds(ctx, f.get("add")!, `nodes[${i}].add`, i));
    if (f.has("memory")) vm.node_memory_mib[i] = readMemoryMib(ctx, f.get("memory")!, `nodes[${i}].memory`);
    if (f.has("packages")) vm.node_packages[i] = readStringList(ctx, f.get("packages")!, `nodes[${i}].packages`).sort();
  });
  names.rename(renamed, seq);
}

function readAdds(ctx: Ctx, f: Field, where: string, node: number | null): string[] {
  return readStringList(ctx, f, where).map((spec) => {
    const split = spec.lastIndexOf(":");
    if (split <= 0) ctx.fail(valueOrKey(f), `${where}: "${spec}": expected HOST_PATH:GUEST_PATH`);
    const host = path.resolve(ctx.baseDir, spec.slice(0, split));
    return `${node === null ? "" : `${node}:`}${host}:${spec.slice(split + 1)}`;
  });
}

// ---------------------------------------------------------------------------------------
// commands

function readCommands(ctx: Ctx, f: Field, names: NodeNames): ScenarioCommand[] {
  const items = seqItems(ctx, f, "commands");
  const out: (ScenarioCommand & { after_node: YamlNode | null })[] = [];
  items.forEach((item, k) => {
    const where = `commands[${k}]`;
    if (!isMap(item)) ctx.fail(item, `${where}: expected a mapping (node, run, at, ...), got ${describe(item)}`);
    const c = readFields(ctx, item as YAMLMap, COMMAND_FIELDS, where);
    const nodes = readNodeSelection(ctx, c, names, where, item);
    const run = c.get("run");
    if (run === undefined) ctx.fail(item, `${where}: missing field "run" (the shell command line)`);
    const run_text = scalarText(ctx, run!, where, "a shell command line");
    if (Buffer.byteLength(run_text) > COMMAND_BYTES_MAX) ctx.fail(valueOrKey(run!), `${where}.run: ${Buffer.byteLength(run_text)} bytes; at most ${COMMAND_BYTES_MAX} (put a longer script in a file with add: and run that)`);
    if (c.has("at") && c.has("after")) ctx.fail(c.get("after")!.key, `${where}: give at: or after:, not both`);
    const name = c.has("name") ? readId(ctx, c.get("name")!, `${where}.name`) : `cmd${k}`;
    const at_ns = c.has("after") ? null : c.has("at") ? readTime(ctx, c.get("at")!, `${where}.at`) : 0;
    const after = c.has("after") ? scalarText(ctx, c.get("after")!, where, "a command name (same node) or node.name") : null;
    const delay_ns = c.has("delay") ? readTime(ctx, c.get("delay")!, `${where}.delay`) : 0;
    if (c.has("delay") && after === null) ctx.fail(c.get("delay")!.key, `${where}.delay: only with after: (with at:, add it to the time)`);
    const ok_exit = c.has("ok_exit") ? readExitCodes(ctx, c.get("ok_exit")!, `${where}.ok_exit`) : [0];
    const timeout_ns = c.has("timeout") ? readPositiveDuration(ctx, c.get("timeout")!, `${where}.timeout`) : null;
    for (const node of nodes) {
      const id = `${names.names[node]}.${name}`;
      if (out.some((o) => o.id === id)) ctx.fail(c.get("name")?.value ?? item, `${where}: a second command "${id}" (give each command on a node its own name:)`);
      out.push({ id, node, run: run_text, at_ns, after, delay_ns, ok_exit, timeout_ns, after_node: c.get("after")?.value ?? null });
    }
  });
  if (out.length > COMMANDS_MAX) ctx.fail(f.key, `commands: ${out.length} commands; at most ${COMMANDS_MAX}`);
  resolveAfter(ctx, out, names);
  return out.map(({ after_node: _, ...c }) => c);
}

/** `after: name` means that command on the same node; `after: node.name` any node's. No cycles. */
function resolveAfter(ctx: Ctx, commands: (ScenarioCommand & { after_node: YamlNode | null })[], names: NodeNames): void {
  const ids = new Set(commands.map((c) => c.id));
  for (const c of commands) {
    if (c.after === null) continue;
    const local = `${names.names[c.node]}.${c.after}`;
    const target = ids.has(local) ? local : ids.has(c.after) ? c.after : null;
    if (target === null) ctx.fail(c.after_node, `commands: after: "${c.after}" names no command (expected a name on the same node, or node.name; known: ${[...ids].slice(0, 8).join(", ")}${ids.size > 8 ? ", ..." : ""})`);
    if (target === c.id) ctx.fail(c.after_node, `commands: "${c.id}" cannot start after itself`);
    c.after = target;
  }
  for (const c of commands) {
    const seen = new Set<string>([c.id]);
    for (let at = c.after; at !== null; at = commands.find((o) => o.id === at)!.after) {
      if (seen.has(at)) ctx.fail(c.after_node, `commands: "${c.id}" waits on a cycle of after: (${[...seen, at].join(" -> ")})`);
      seen.add(at);
    }
  }
}

/** `node: n0`, `nodes: [n0, n1]` or `nodes: all`; exactly one of node/nodes. */
function readNodeSelection(ctx: Ctx, c: Map<string, Field>, names: NodeNames, where: string, item: YamlNode): number[] {
  const one = c.get("node");
  const many = c.get("nodes");
  if (one !== undefined && many !== undefined) ctx.fail(many.key, `${where}: give node: or nodes:, not both`);
  if (one !== undefined) return [names.resolve(one.value ?? one.key, `${where}.node`)];
  if (many === undefined) ctx.fail(item, `${where}: missing field "node" (or nodes: [..] / nodes: all)`);
  return names.resolveList(many!, `${where}.nodes`);
}

function readExitCodes(ctx: Ctx, f: Field, where: string): number[] {
  const codes = isSeq(f.value) ? readIntList(ctx, f, where) : [readInt(ctx, f, where, 0, 255)];
  for (const code of codes) if (code > 255) ctx.fail(valueOrKey(f), `${where}: exit codes lie within 0..255, got ${code}`);
  return codes;
}

// ---------------------------------------------------------------------------------------
// until, collect, metrics

function readUntil(ctx: Ctx, f: Field | undefined, names: NodeNames, inprocess: boolean, has_commands: boolean): ScenarioRunConfig["until"] {
  const until: ScenarioRunConfig["until"] = { duration_ns: null, all_exited: false, output: [] };
  if (f === undefined) {
    if (has_commands) return { ...until, all_exited: true };
    if (inprocess) return until; // quiescence ends it
    ctx.failAt(0, "top level: missing field \"until\" (a duration such as 60s, all_exited, or a mapping with duration/all_exited/output): a VM run never goes quiet");
  }
  const v = f!.value;
  if (isScalar(v)) {
    const text = scalarText(ctx, f!, "until", "a duration, all_exited, or a mapping");
    if (text === "all_exited" || text === "all commands exited") return { ...until, all_exited: true };
    return { ...until, duration_ns: readPositiveDuration(ctx, f!, "until") };
  }
  if (!isMap(v)) ctx.fail(valueOrKey(f!), `until: expected a duration, all_exited, or a mapping, got ${describe(v)}`);
  const u = readFields(ctx, v as YAMLMap, UNTIL_FIELDS, "until");
  if (u.has("duration")) until.duration_ns = readPositiveDuration(ctx, u.get("duration")!, "until.duration");
  if (u.has("all_exited")) until.all_exited = readBool(ctx, u.get("all_exited")!, "until.all_exited");
  if (u.has("output")) until.output = readOutputConditions(ctx, u.get("output")!, names);
  if (until.all_exited && !has_commands) ctx.fail(u.get("all_exited")!.key, "until.all_exited: the scenario has no commands");
  if (until.duration_ns === null && !until.all_exited && until.output.length === 0 && !inprocess) ctx.fail(v, "until: give at least one of duration, all_exited, output");
  return until;
}

function readOutputConditions(ctx: Ctx, f: Field, names: NodeNames): { node: number; pattern: string }[] {
  const items = isSeq(f.value) ? seqItems(ctx, f, "until.output") : [f.value];
  return items.map((item, k) => {
    const where = `until.output${isSeq(f.value) ? `[${k}]` : ""}`;
    if (!isMap(item)) ctx.fail(item ?? f.key, `${where}: expected a mapping {node, pattern}, got ${describe(item ?? null)}`);
    const o = readFields(ctx, item as YAMLMap, OUTPUT_FIELDS, where);
    const node = o.get("node");
    const pattern = o.get("pattern");
    if (node === undefined || pattern === undefined) ctx.fail(item, `${where}: needs node and pattern`);
    return { node: names.resolve(node!.value ?? node!.key, `${where}.node`), pattern: readRegex(ctx, pattern!, `${where}.pattern`, 0) };
  });
}

function readCollect(ctx: Ctx, f: Field, names: NodeNames): ScenarioRunConfig["collect"] {
  const out: ScenarioRunConfig["collect"] = [];
  seqItems(ctx, f, "collect").forEach((item, k) => {
    const where = `collect[${k}]`;
    if (!isMap(item)) ctx.fail(item, `${where}: expected a mapping {node, path}, got ${describe(item)}`);
    const c = readFields(ctx, item as YAMLMap, COLLECT_FIELDS, where);
    const nodes = readNodeSelection(ctx, c, names, where, item);
    const p = c.get("path");
    if (p === undefined) ctx.fail(item, `${where}: missing field "path" (an absolute path in the guest)`);
    const guest_path = scalarText(ctx, p!, where, "an absolute guest path");
    if (!guest_path.startsWith("/") || guest_path.split("/").includes("..") || /[\s]/.test(guest_path)) ctx.fail(valueOrKey(p!), `${where}.path: "${guest_path}" must be absolute, without '..' or spaces`);
    for (const node of nodes) out.push({ node, guest_path });
  });
  return out;
}

function readMetrics(ctx: Ctx, f: Field, names: NodeNames): ScenarioMetric[] {
  const seen = new Set<string>();
  return seqItems(ctx, f, "metrics").map((item, k) => {
    const where = `metrics[${k}]`;
    if (!isMap(item)) ctx.fail(item, `${where}: expected a mapping {name, pattern, node(s), unit}, got ${describe(item)}`);
    const m = readFields(ctx, item as YAMLMap, METRIC_FIELDS, where);
    const name = m.get("name");
    const pattern = m.get("pattern");
    if (name === undefined || pattern === undefined) ctx.fail(item, `${where}: needs name and pattern (a regex whose first group captures a number)`);
    const name_text = readId(ctx, name!, `${where}.name`);
    if (seen.has(name_text)) ctx.fail(valueOrKey(name!), `${where}.name: "${name_text}" is used twice`);
    seen.add(name_text);
    const nodes = m.has("node") || m.has("nodes") ? readNodeSelection(ctx, m, names, where, item) : null;
    return { name: name_text, nodes, pattern: readRegex(ctx, pattern!, `${where}.pattern`, 1), unit: m.has("unit") ? scalarText(ctx, m.get("unit")!, where, "a unit name") : "" };
  });
}

/** A JavaScript regex source; `groups`: how many capture groups it must have at least. */
function readRegex(ctx: Ctx, f: Field, where: string, groups: number): string {
  const text = scalarText(ctx, f, where.split(".").slice(0, -1).join("."), "a regular expression");
  let re: RegExp;
  try {
    re = new RegExp(text);
  } catch (err) {
    ctx.fail(valueOrKey(f), `${where}: not a regular expression: ${(err as Error).message}`);
  }
  const found = new RegExp(`${re!.source}|`).exec("")!.length - 1;
  if (found < groups) ctx.fail(valueOrKey(f), `${where}: needs a capture group ( ... ) around the number to measure`);
  return text;
}

