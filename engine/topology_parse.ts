// Reads topology files into a TopologySpec. Two formats:
//  - the seed latency matrix (.txt, .mat, anything not YAML/JSON): N lines of N one-way
//    latencies in ms, m[i][j] = latency TO node i FROM node j, read unchanged;
//  - the rich format (.yaml, .yml, .json): node names, defaults and per-link latency,
//    jitter, bandwidth, loss and queue (latency_configs/README.md documents both).
// Every error is an InputError whose message is one line "file:line:column: message".

import path from "node:path";
import { LineCounter, isMap, isScalar, isSeq, type Node as YamlNode, type Scalar, type YAMLMap, type YAMLSeq } from "yaml";
import { InputError, locatedMessage } from "./errors.js";
import { InputFileError, readInputText } from "./input_file.js";
import { LINK_DEFAULTS, NODE_COUNT_MAX, type LinkOverride, type LinkParams, type TopologySpec } from "./topology.js";
import { Ctx, closest, describe, parseYamlRoot, readFields, scalarText, valueOrKey, withUnits, type Field } from "./yaml_fields.js";
import { UnitError, formatDurationNs, parseBandwidthBps, parseDurationNs, parseRatio, parseSizeBytes } from "./units.js";

export interface LoadTopologyOptions {
  /** Node count asked for elsewhere (CLI); a file that says otherwise is an error. */
  nodes?: number;
}

/** Reads `file` (path as given; it becomes spec.source) and parses it by extension. */
export function loadTopologyFile(file: string, opts: LoadTopologyOptions = {}): TopologySpec {
  const text = readText(file);
  const ext = path.extname(file).toLowerCase();
  if (ext === ".yaml" || ext === ".yml" || ext === ".json") {
    return parseTopologyYaml(text, file, path.dirname(file), opts);
  }
  const spec = parseLatencyMatrix(text, file);
  const n = spec.node_names.length;
  if (opts.nodes !== undefined && opts.nodes !== n) {
    throw new InputError(`${file}: latency matrix is ${n}x${n} but ${opts.nodes} nodes were asked for`);
  }
  return spec;
}

/** Regular files of bounded size only: a FIFO or /dev/zero named by mistake must not hang or fill memory. */
function readText(file: string): string {
  return readInputText(file);
}

// ---------------------------------------------------------------------------------------
// Seed matrix format.

interface Token { text: string; line: number; col: number }

/** Data rows: tokens per non-blank line, comments (#) stripped, positions 1-based. */
function matrixRows(text: string): Token[][] {
  const rows: Token[][] = [];
  text.replace(/^\uFEFF/, "").split("\n").forEach((raw, i) => {
    const line = raw.replace(/\r$/, "").replace(/#.*/, "");
    const tokens = [...line.matchAll(/\S+/g)].map((m) => ({ text: m[0], line: i + 1, col: m.index! + 1 }));
    if (tokens.length > 0) rows.push(tokens);
  });
  return rows;
}

/** One matrix entry in ms → exact ns; UnitError-free: throws located InputErrors. */
function matrixEntryNs(source: string, t: Token): number {
  const fail = (message: string): never => { throw new InputError(locatedMessage(source, t.line, t.col, message)); };
  const m = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(.*)$/.exec(t.text);
  if (!m) fail(`not a number: "${t.text}"${t.text.includes(",") ? " (separate entries with spaces)" : ""}`);
  const [, sign, num, suffix] = m!;
  // Letters after the number are a unit; "1e3" is a malformed number, not a unit.
  if (/^\s*[a-zA-Zµμ]+$/.test(suffix!) && !/^e\d/i.test(suffix!)) {
    fail(`unit suffix in "${t.text}": this format takes plain milliseconds (write ${sign}${num})`);
  }
  if (suffix !== "") fail(`not a number: "${t.text}"${t.text.includes(",") ? " (separate entries with spaces)" : ""}`);
  if (sign === "-" && /[1-9]/.test(num!)) fail(`negative latency ${t.text}`);
  try {
    return parseDurationNs(`${num}ms`);
  } catch (e) {
    if (e instanceof UnitError) fail(`latency ${t.text} ms: ${e.message}`);
    throw e;
  }
}

/** Checks the matrix is N rows of N entries; points at the first row or entry at fault. */
function checkSquare(source: string, rows: Token[][]): number {
  if (rows.length === 0) {
    throw new InputError(locatedMessage(source, 1, 1, "empty latency matrix: expected N lines of N one-way latencies in ms"));
  }
  const n = rows[0]!.length;
  if (n > NODE_COUNT_MAX) {
    throw new InputError(locatedMessage(source, 1, 1, `latency matrix has ${n} columns; at most ${NODE_COUNT_MAX} nodes are supported`));
  }
  rows.forEach((row, i) => {
    const first = row[0]!;
    if (i >= n) throw new InputError(locatedMessage(source, first.line, first.col, `row ${i + 1} is one too many: row 1 has ${n} entries, so the matrix has ${n} rows`));
    if (row.length > n) {
      const extra = row[n]!;
      throw new InputError(locatedMessage(source, extra.line, extra.col, `row ${i + 1} has ${row.length} entries, expected ${n}`));
    }
    if (row.length < n) {
      const last = row[row.length - 1]!;
      throw new InputError(locatedMessage(source, last.line, last.col + last.text.length, `row ${i + 1} has ${row.length} entries, expected ${n}`));
    }
  });
  if (rows.length < n) {
    const last = rows[rows.length - 1]!.at(-1)!;
    throw new InputError(locatedMessage(source, last.line, last.col + last.text.length, `matrix has ${rows.length} rows, expected ${n} (row 1 has ${n} entries)`));
  }
  return n;
}

/** Parses the seed format; the diagonal is kept as written but never used. */
export function parseLatencyMatrix(text: string, source: string): TopologySpec {
  const rows = matrixRows(text);
  const n = checkSquare(source, rows);
  const latency_ns = rows.map((row, to) => row.map((t, from) => {
    const ns = matrixEntryNs(source, t);
    if (ns === 0 && to !== from) {
      throw new InputError(locatedMessage(source, t.line, t.col, `latency to ${to} from ${from} is 0: distinct nodes need a positive latency (lookahead)`));
    }
    return ns;
  }));
  return {
    source,
    node_names: Array.from({ length: n }, (_, i) => `n${i}`),
    latency_ns,
    link_defaults: { ...LINK_DEFAULTS },
    link_overrides: [],
  };
}

// ---------------------------------------------------------------------------------------
// Rich format (YAML; JSON is parsed by the same YAML 1.2 parser so positions agree).

const PARAM_FIELDS = ["latency", "jitter", "bandwidth", "loss", "queue"] as const;
const LINK_FIELDS = ["from", "to", "between", ...PARAM_FIELDS] as const;
const TOP_FIELDS = ["nodes", "latency_matrix", "defaults", "links"] as const;

/** Top-level link parameters are a likely slip: say where they belong. */
function fieldHint(name: string, allowed: readonly string[]): string {
  const param = allowed.includes("links") ? closest(name, PARAM_FIELDS) : undefined;
  if (param) return `${param} goes under defaults or a link; expected ${allowed.join(", ")}`;
  return `expected ${allowed.join(", ")}`;
}

export interface Located<T> { value: T; node: YamlNode }

export interface ParamFields {
  latency?: Located<number>;
  jitter?: Located<number>;
  link: Partial<LinkParams>;
}

export function readDuration(ctx: Ctx, f: Field, where: string): Located<number> {
  const text = scalarText(ctx, f, where, "a duration such as 50ms");
  return { value: withUnits(ctx, f, where, () => parseDurationNs(text)), node: valueOrKey(f) };
}

/** queue: a packet count (100, "100p") or a size ("64KiB"); it replaces both limits. */
function readQueue(ctx: Ctx, f: Field, where: string): Pick<LinkParams, "queue_packets_max" | "queue_bytes_max"> {
  const text = scalarText(ctx, f, where, 'a packet count such as 100 or a size such as "64KiB"');
  const packets = /^\s*(\d+)\s*p?\s*$/.exec(text);
  if (packets) {
    const count = Number(packets[1]);
    if (!Number.isSafeInteger(count)) ctx.fail(valueOrKey(f), `${where}.queue: ${text} packets is too large`);
    return { queue_packets_max: count, queue_bytes_max: 0 };
  }
  return { queue_packets_max: 0, queue_bytes_max: withUnits(ctx, f, where, () => parseSizeBytes(text)) };
}

function readLoss(ctx: Ctx, f: Field, where: string): number {
  const v = f.value;
  if (isScalar(v) && typeof v.value === "number") return withUnits(ctx, f, where, () => parseRatio(v.value as number));
  const text = scalarText(ctx, f, where, 'a ratio such as 0.001 or "0.1%"');
  return withUnits(ctx, f, where, () => parseRatio(text));
}

/** latency/jitter/bandwidth/loss/queue of a link or of the defaults. */
export function readParams(ctx: Ctx, fields: Map<string, Field>, where: string): ParamFields {
  const out: ParamFields = { link: {} };
  const get = (name: string): Field | undefined => fields.get(name);
  const latency = get("latency");
  if (latency) {
    out.latency = readDuration(ctx, latency, where);
    if (out.latency.value === 0) ctx.fail(out.latency.node, `${where}.latency: must be > 0: distinct nodes need a positive latency (lookahead)`);
  }
  const jitter = get("jitter");
  if (jitter) {
    out.jitter = readDuration(ctx, jitter, where);
    out.link.jitter_ns = out.jitter.value;
  }
  const bandwidth = get("bandwidth");
  if (bandwidth) {
    const text = scalarText(ctx, bandwidth, where, "a rate such as 100Mbit");
    out.link.bandwidth_bps = withUnits(ctx, bandwidth, where, () => parseBandwidthBps(text));
  }
  const loss = get("loss");
  if (loss) out.link.loss_rate = readLoss(ctx, loss, where);
  const queue = get("queue");
  if (queue) Object.assign(out.link, readQueue(ctx, queue, where));
  return out;
}

// --- nodes -----------------------------------------------------------------------------

interface NodesField { count: number; names?: string[]; node: YamlNode }

function readNodeCount(ctx: Ctx, f: Field): NodesField {
  const v = f.value as Scalar;
  const count = v.value as number;
  if (!Number.isInteger(count) || count < 1 || count > NODE_COUNT_MAX) {
    ctx.fail(v, `nodes: a count must be an integer within 1..${NODE_COUNT_MAX}, got ${describe(v)}`);
  }
  return { count, node: v };
}

function readNodeNames(ctx: Ctx, f: Field): NodesField {
  const seq = f.value as YAMLSeq;
  if (seq.items.length === 0) ctx.fail(seq, "nodes: the list of names is empty");
  if (seq.items.length > NODE_COUNT_MAX) ctx.fail(seq, `nodes: at most ${NODE_COUNT_MAX} nodes are supported, got ${seq.items.length}`);
  const names: string[] = [];
  for (const raw of seq.items) {
    const item = ctx.deref(raw);
    if (!isScalar(item) || typeof item.value !== "string" || item.value === "") {
      ctx.fail(item ?? seq, `nodes: a node name must be a non-empty string, got ${describe(item)}`);
    }
    const name = item.value as string;
    // Names that read as an index or as "*" would make link ends ambiguous.
    if (name === "*" || /^\d+$/.test(name)) ctx.fail(item, `nodes: "${name}" cannot be a node name (it reads as ${name === "*" ? "every node" : "an index"})`);
    if (names.includes(name)) ctx.fail(item, `nodes: duplicate node name "${name}"`);
    names.push(name);
  }
  return { count: names.length, names, node: seq };
}

function readNodes(ctx: Ctx, f: Field): NodesField {
  if (isScalar(f.value) && typeof f.value.value === "number") return readNodeCount(ctx, f);
  if (isSeq(f.value)) return readNodeNames(ctx, f);
  return ctx.fail(valueOrKey(f), `nodes: expected a count or a list of names, got ${describe(f.value)}`);
}

interface MatrixField { spec: TopologySpec; node: YamlNode; file: string }

/** latency_matrix: a seed-format file relative to this file; its own errors name it. */
function readMatrix(ctx: Ctx, f: Field): MatrixField {
  const v = f.value;
  if (!isScalar(v) || typeof v.value !== "string" || v.value === "") {
    ctx.fail(valueOrKey(f), `latency_matrix: expected a file name, got ${describe(v)}`);
  }
  const file = path.isAbsolute(v.value as string) ? (v.value as string) : path.join(ctx.baseDir, v.value as string);
  let text: string;
  try {
    text = readInputText(file);
  } catch (e) {
    if (!(e instanceof InputFileError)) throw e;
    return ctx.fail(v, `latency_matrix: cannot read ${file}: ${e.detail}`);
  }
  return { spec: parseLatencyMatrix(text, file), node: v, file };
}

function nodeCount(ctx: Ctx, root: YamlNode, nodes: NodesField | undefined, matrix: MatrixField | undefined, opts: LoadTopologyOptions): number {
  const m = matrix?.spec.node_names.length;
  if (nodes && matrix && nodes.count !== m) {
    ctx.fail(matrix.node, `latency_matrix: ${matrix.file} is ${m}x${m} but nodes gives ${nodes.count} nodes`);
  }
  const n = nodes?.count ?? m ?? opts.nodes;
  if (n === undefined) ctx.fail(root, "node count unknown: give nodes (a count or a list of names) or latency_matrix");
  if (opts.nodes !== undefined && opts.nodes !== n) {
    ctx.fail(nodes?.node ?? matrix?.node ?? root, `the file describes ${n} nodes but ${opts.nodes} nodes were asked for`);
  }
  if (!Number.isInteger(n) || n < 1 || n > NODE_COUNT_MAX) ctx.fail(root, `node count must be within 1..${NODE_COUNT_MAX}, got ${n}`);
  return n;
}

// --- links -----------------------------------------------------------------------------

/** A link end: one node, or "*" = every node other than the far end. */
type End = { all: true; node: YamlNode } | { all: false; index: number; node: YamlNode };

function readEnd(ctx: Ctx, raw: unknown, names: string[], where: string, fallback: YamlNode): End {
  const node = ctx.deref(raw);
  const n = names.length;
  if (!isScalar(node) || (typeof node.value !== "string" && typeof node.value !== "number")) {
    return ctx.fail(node ?? fallback, `${where}: expected a node name, index or "*", got ${describe(node)}`);
  }
  const v = node.value;
  if (v === "*") return { all: true, node };
  if (typeof v === "string" && names.includes(v)) return { all: false, index: names.indexOf(v), node };
  const index = typeof v === "number" ? v : /^\d+$/.test(v) ? Number(v) : undefined;
  if (index === undefined) {
    const guess = closest(v as string, names);
    const known = names.length <= 12 ? names.join(", ") : `${names.slice(0, 12).join(", ")}, …`;
    ctx.fail(node, `${where}: unknown node "${v}" (${guess ? `did you mean "${guess}"?` : `nodes: ${known}`})`);
  }
  if (!Number.isInteger(index)) ctx.fail(node, `${where}: node index ${v} is not a whole number`);
  if (index! < 0 || index! >= n) {
    ctx.fail(node, `${where}: node index ${v} out of range (${n} nodes: 0..${n - 1})`);
  }
  return { all: false, index: index!, node };
}

/** Directed (to, from) pairs from one end to the other, "*" excluding the far end. */
function directedPairs(ctx: Ctx, from: End, to: End, names: string[], where: string): [number, number][] {
  if (!from.all && !to.all && from.index === to.index) {
    ctx.fail(to.node, `${where}: link from ${names[from.index]} to itself (from and to must differ)`);
  }
  const all = names.map((_, i) => i);
  const froms = from.all ? all : [from.index];
  const tos = to.all ? all : [to.index];
  const pairs: [number, number][] = [];
  for (const f of froms) for (const t of tos) if (f !== t) pairs.push([t, f]);
  return pairs;
}

function linkPairs(ctx: Ctx, map: YAMLMap, fields: Map<string, Field>, names: string[], where: string): [number, number][] {
  const between = fields.get("between");
  if (between) {
    const clash = fields.get("from") ?? fields.get("to");
    if (clash) ctx.fail(clash.key, `${where}: use either between or from/to, not both`);
    const seq = between.value;
    if (!isSeq(seq) || seq.items.length !== 2) ctx.fail(valueOrKey(between), `${where}.between: expected a list of two nodes, got ${describe(seq)}${isSeq(seq) ? ` with ${seq.items.length} items` : ""}`);
    const [a, b] = (seq as YAMLSeq).items.map((item) => readEnd(ctx, item, names, `${where}.between`, seq as YAMLSeq));
    return [...directedPairs(ctx, a!, b!, names, `${where}.between`), ...directedPairs(ctx, b!, a!, names, `${where}.between`)];
  }
  const from = fields.get("from");
  const to = fields.get("to");
  if (!from || !to) ctx.fail(map, `${where}: a link needs from and to, or between`);
  const fromEnd = readEnd(ctx, from!.value, names, `${where}.from`, from!.key);
  const toEnd = readEnd(ctx, to!.value, names, `${where}.to`, to!.key);
  return directedPairs(ctx, fromEnd, toEnd, names, where);
}

interface LinkEntry { pairs: [number, number][]; params: ParamFields }

function readLinks(ctx: Ctx, f: Field, names: string[]): LinkEntry[] {
  if (f.value === null || (isScalar(f.value) && f.value.value === null)) return [];
  if (!isSeq(f.value)) ctx.fail(valueOrKey(f), `links: expected a list of links, got ${describe(f.value)}`);
  return (f.value as YAMLSeq).items.map((raw, i) => {
    const where = `links[${i}]`;
    const map = ctx.deref(raw);
    if (!isMap(map)) return ctx.fail(map ?? f.value, `${where}: expected a mapping such as {from: 0, to: 1, latency: 20ms}, got ${describe(map)}`);
    const fields = readFields(ctx, map, LINK_FIELDS, where, (name) => fieldHint(name, LINK_FIELDS));
    const pairs = linkPairs(ctx, map, fields, names, where);
    if (!PARAM_FIELDS.some((p) => fields.has(p))) ctx.fail(map, `${where}: sets none of ${PARAM_FIELDS.join(", ")}`);
    return { pairs, params: readParams(ctx, fields, where) };
  });
}

// --- assembly --------------------------------------------------------------------------

function readDefaults(ctx: Ctx, f: Field | undefined): ParamFields {
  if (!f || f.value === null || (isScalar(f.value) && f.value.value === null)) return { link: {} };
  if (!isMap(f.value)) ctx.fail(valueOrKey(f), `defaults: expected a mapping of ${PARAM_FIELDS.join(", ")}, got ${describe(f.value)}`);
  return readParams(ctx, readFields(ctx, f.value as YAMLMap, PARAM_FIELDS, "defaults", (name) => fieldHint(name, PARAM_FIELDS)), "defaults");
}

/** Base latencies: defaults.latency < latency_matrix < links (in order); -1 = unset. */
function latencyMatrix(n: number, defaults: ParamFields, matrix: MatrixField | undefined, links: LinkEntry[]): number[][] {
  const fill = defaults.latency?.value ?? -1;
  const m = matrix ? matrix.spec.latency_ns.map((row) => [...row])
    : Array.from({ length: n }, (_, to) => Array.from({ length: n }, (_, from) => (to === from ? 0 : fill)));
  for (const link of links) {
    const ns = link.params.latency?.value;
    if (ns !== undefined) for (const [to, from] of link.pairs) m[to]![from] = ns;
  }
  return m;
}

/** Every off-diagonal link needs a latency, and latency - jitter > 0 (the lookahead). */
function checkLinks(ctx: Ctx, where: YamlNode, names: string[], latency: number[][], defaults: ParamFields, links: LinkEntry[]): void {
  const jitter = new Map<number, Located<number>>();
  const n = names.length;
  for (const link of links) {
    const j = link.params.jitter;
    if (j) for (const [to, from] of link.pairs) jitter.set(to * n + from, j);
  }
  const zero: Located<number> = { value: 0, node: where };
  for (let to = 0; to < n; to++) {
    for (let from = 0; from < n; from++) {
      if (to === from) continue;
      const lat = latency[to]![from]!;
      const label = `link to ${names[to]} from ${names[from]}`;
      if (lat < 0) ctx.fail(where, `no latency for ${label}: set defaults.latency, latency_matrix or a link's latency`);
      const j = jitter.get(to * n + from) ?? defaults.jitter ?? zero;
      if (j.value >= lat) {
        ctx.fail(j.node, `jitter ${formatDurationNs(j.value)} is not below latency ${formatDurationNs(lat)} on ${label}: latency - jitter must stay > 0 (lookahead)`);
      }
    }
  }
}

function overrides(links: LinkEntry[]): LinkOverride[] {
  const out: LinkOverride[] = [];
  for (const link of links) {
    if (Object.keys(link.params.link).length === 0) continue; // latency-only: in latency_ns
    for (const [to, from] of link.pairs) out.push({ to, from, ...link.params.link });
  }
  return out;
}

/** Parses the rich format; baseDir resolves latency_matrix; source names the file in errors. */
export function parseTopologyYaml(text: string, source: string, baseDir: string, opts: LoadTopologyOptions = {}): TopologySpec {
  const lc = new LineCounter();
  const { doc, root } = parseYamlRoot(text, source, lc, "topology file", TOP_FIELDS);
  return topologyFromMap(new Ctx(text, source, baseDir, lc, doc), root, opts);
}

/** The rich format from a mapping inside any located document (a scenario's inline `topology:`). */
export function topologyFromMap(ctx: Ctx, root: YAMLMap, opts: LoadTopologyOptions = {}): TopologySpec {
  const source = ctx.source;
  const fields = readFields(ctx, root, TOP_FIELDS, "top level", (name) => fieldHint(name, TOP_FIELDS));
  const nodesField = fields.get("nodes");
  const nodes = nodesField ? readNodes(ctx, nodesField) : undefined;
  const matrixField = fields.get("latency_matrix");
  const matrix = matrixField ? readMatrix(ctx, matrixField) : undefined;
  const n = nodeCount(ctx, root, nodes, matrix, opts);
  const names = nodes?.names ?? Array.from({ length: n }, (_, i) => `n${i}`);
  const defaults = readDefaults(ctx, fields.get("defaults"));
  const linksField = fields.get("links");
  const links = linksField ? readLinks(ctx, linksField, names) : [];
  const latency_ns = latencyMatrix(n, defaults, matrix, links);
  checkLinks(ctx, nodes?.node ?? root, names, latency_ns, defaults, links);
  return {
    source,
    node_names: names,
    latency_ns,
    link_defaults: { ...LINK_DEFAULTS, ...defaults.link },
    link_overrides: overrides(links),
  };
}
